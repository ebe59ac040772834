"""The OpenAI provider through the real openai client against the fake server on loopback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Generator
from pathlib import Path
from typing import Any, cast

import numpy as np
import openai
import pytest
from sqlalchemy import select

from core.access.rbac import Actor
from core.ai import get_provider, provider_status
from core.ai.base import Message, StreamResult, UsageContext
from core.ai.openai_provider import OpenAIProvider, plan_embedding_batches, transcription_format
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, ProviderError, ProviderRejected
from core.platform.models import UsageRecord
from core.platform.tokens import count_tokens
from tests.fake_openai import FakeOpenAI, restore_settings

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
TRANSCRIPTIONS = "/v1/audio/transcriptions"


@pytest.fixture(autouse=True)
def _ledger(database: str) -> None:
    """Every provider call writes the usage ledger, so these tests need the database."""


def _ledger_rows(user_id: int) -> list[UsageRecord]:
    with session_scope() as session:
        return list(session.scalars(select(UsageRecord).where(UsageRecord.user_id == user_id).order_by(UsageRecord.id)))


def _wav(path: Path, seconds: float) -> Path:
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(path), "synth", str(seconds), "sine", "440"], check=True)
    return path


# Provider selection -----------------------------------------------------------------------


def test_get_provider_is_openai_with_a_key(openai_provider: OpenAIProvider, fake_openai: FakeOpenAI) -> None:
    assert isinstance(openai_provider, OpenAIProvider)
    assert get_provider() is openai_provider and openai_provider.generates_text
    status = provider_status()
    assert status.startswith(f"OpenAI-compatible API at 127.0.0.1:{fake_openai.port},")
    assert "gpt-4o-mini" in status and "text-embedding-3-small" in status
    space = openai_provider.embedding_space
    assert (space.provider, space.model, space.dimensions) == (
        "openai",
        "text-embedding-3-small",
        get_settings().embedding_dim,
    )


def test_the_offline_provider_is_back_after_an_openai_test(offline_provider: Any) -> None:
    assert offline_provider.name == "offline" and get_settings().openai_api_key is None


# Chat -------------------------------------------------------------------------------------


def test_complete_answers_from_source_one_and_records_usage(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, member: Actor
) -> None:
    prompt = (
        "Answer from the sources.\n[1] The launch moved to March 3 after the security review. Other text.\n"
        "[2] Lunch is at noon.\nQuestion: when is the launch?"
    )
    completion = openai_provider.complete(
        [Message("system", "Cite sources."), Message("user", prompt)],
        usage=UsageContext(purpose="chat", user_id=member.id),
    )
    assert completion.text == "The launch moved to March 3 after the security review. [1]"
    assert completion.input_tokens > 0 and completion.output_tokens == count_tokens(completion.text)
    (row,) = _ledger_rows(member.id)
    assert (row.purpose, row.provider, row.model) == ("chat", "openai", "gpt-4o-mini")
    assert (row.input_tokens, row.output_tokens) == (completion.input_tokens, completion.output_tokens)
    assert row.cost_usd > 0
    (request,) = fake_openai.calls(CHAT)
    assert request.body["model"] == "gpt-4o-mini" and request.headers["authorization"] == "Bearer sk-test-fake"


def test_complete_json_mode_and_handler_and_max_tokens(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI
) -> None:
    notes = "We decided to ship on Friday. Alice will write the release notes by Thursday."
    data = json.loads(
        openai_provider.complete([Message("user", notes)], usage=UsageContext(purpose="minutes"), json_mode=True).text
    )
    assert data["decisions"] == ["We decided to ship on Friday."]
    assert data["action_items"][0]["owner"] == "Alice"
    assert fake_openai.calls(CHAT)[0].body["response_format"] == {"type": "json_object"}

    fake_openai.chat_handler = lambda request: "one two three four five six seven eight nine ten " * 5
    short = openai_provider.complete([Message("user", "count")], usage=UsageContext(purpose="chat"), max_tokens=5)
    assert short.output_tokens == 5 and short.text.split() == ["one", "two", "three", "four", "five"]
    assert fake_openai.calls(CHAT)[-1].body["max_tokens"] == 5


def test_stream_yields_deltas_and_records_the_usage_of_the_last_chunk(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, member: Actor
) -> None:
    fake_openai.chat_handler = lambda request: "Streaming works one word at a time."
    result = StreamResult()
    deltas = list(
        openai_provider.stream(
            [Message("user", "Say something")], usage=UsageContext(purpose="chat", user_id=member.id), result=result
        )
    )
    assert len(deltas) > 3 and "".join(deltas) == result.text == "Streaming works one word at a time."
    assert result.output_tokens == count_tokens(result.text) and result.input_tokens > 0
    assert result.model == "gpt-4o-mini"
    (request,) = fake_openai.calls(CHAT)
    assert request.body["stream"] is True and request.body["stream_options"] == {"include_usage": True}
    (row,) = _ledger_rows(member.id)
    assert (row.input_tokens, row.output_tokens) == (result.input_tokens, result.output_tokens)


def test_a_stream_stopped_early_still_records_its_usage(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, member: Actor
) -> None:
    fake_openai.chat_handler = lambda request: "alpha beta gamma delta epsilon"
    stream = cast(
        Generator[str, None, None],
        openai_provider.stream([Message("user", "Go")], usage=UsageContext(purpose="chat", user_id=member.id)),
    )
    assert next(stream) == "alpha "
    stream.close()
    (row,) = _ledger_rows(member.id)
    assert row.output_tokens >= 1 and row.input_tokens > 0


# Embeddings -------------------------------------------------------------------------------


def test_embed_returns_configured_dimensions_and_meaningful_vectors(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, member: Actor
) -> None:
    texts = [
        "When is the product launch?",
        "The product launch moved to March because of the security review.",
        "The coffee machine in the kitchen is broken.",
    ]
    vectors = openai_provider.embed(texts, usage=UsageContext(purpose="embedding", user_id=member.id))
    dim = get_settings().embedding_dim
    assert [len(v) for v in vectors] == [dim, dim, dim]
    query, related, unrelated = (np.array(v) for v in vectors)
    assert float(query @ related) > float(query @ unrelated) + 0.2
    (request,) = fake_openai.calls(EMBEDDINGS)
    # The client asks for base64 by default; the provider asks for EMBEDDING_DIM dimensions.
    assert request.body["encoding_format"] == "base64" and request.body["dimensions"] == dim
    (row,) = _ledger_rows(member.id)
    assert row.purpose == "embedding" and row.input_tokens == sum(
        count_tokens(t, "text-embedding-3-small") for t in texts
    )


def test_embed_batches_within_the_input_limit(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(embedding_batch_size="5000")  # above the API's 2,048: the API limit wins
    texts = [f"note number {i}" for i in range(2500)]
    vectors = provider.embed(texts, usage=UsageContext(purpose="embedding"))
    assert len(vectors) == 2500
    assert sorted(r.inputs or 0 for r in fake_openai.calls(EMBEDDINGS)) == [452, 2048]  # sent concurrently
    # Order is kept across batches: the same text embeds the same wherever it sits.
    again = provider.embed([texts[2100]], usage=UsageContext(purpose="embedding"))
    assert np.allclose(again[0], vectors[2100])


def test_embed_batches_within_the_token_limit(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(embedding_batch_size="2048")
    text = "budget " * 7000  # about 7,000 tokens; 45 of them are 315,000 tokens, over one request
    tokens = count_tokens(text, "text-embedding-3-small")
    assert 6000 < tokens <= 8192
    vectors = provider.embed([text] * 45, usage=UsageContext(purpose="embedding"))
    assert len(vectors) == 45
    batches = [r.inputs or 0 for r in fake_openai.calls(EMBEDDINGS)]
    assert len(batches) == 2 and sum(batches) == 45
    assert all(size * tokens <= 300_000 for size in batches)


def test_embed_respects_the_configured_batch_size(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(embedding_batch_size="3")
    provider.embed([f"text {i}" for i in range(7)], usage=UsageContext(purpose="embedding"))
    assert sorted(r.inputs or 0 for r in fake_openai.calls(EMBEDDINGS)) == [1, 3, 3]


def test_embed_keeps_several_requests_in_flight_and_the_order_of_texts(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(embedding_batch_size="10", embedding_concurrency="4")
    fake_openai.embedding_latency = 0.3  # a realistic round trip: requests overlap or wait
    texts = [f"minutes of meeting {i} about topic {i % 7}" for i in range(80)]
    vectors = provider.embed(texts, usage=UsageContext(purpose="embedding"))
    calls = fake_openai.calls(EMBEDDINGS)
    assert len(calls) == 8 and all(call.status == 200 for call in calls)
    assert 2 <= fake_openai.embeddings_in_flight_peak <= 4
    from core.ai.hashing import hashing_embed

    assert np.allclose(np.asarray(vectors), hashing_embed(texts, get_settings().embedding_dim), atol=1e-6)


def test_embed_stays_within_the_rate_limits_the_server_reports(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(embedding_batch_size="5", embedding_concurrency="4")
    fake_openai.limit_embeddings(requests=3, tokens=1_000_000, window_seconds=0.5)
    fake_openai.embedding_latency = 0.05
    texts = [f"action item {i}" for i in range(40)]  # 8 requests, 3 allowed per window
    vectors = provider.embed(texts, usage=UsageContext(purpose="embedding"))
    assert len(vectors) == 40
    statuses = [call.status for call in fake_openai.calls(EMBEDDINGS)]
    assert statuses == [200] * 8  # never refused: it waited for the window instead


def test_reset_durations_read_as_the_api_writes_them() -> None:
    from core.ai.rate_budget import parse_reset

    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("20ms") == pytest.approx(0.02)
    assert parse_reset("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset("soon") is None and parse_reset(None) is None


def test_embed_refuses_an_input_over_8192_tokens_before_any_request(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(InvalidInput, match=r"Text 2 of 2 has \d+ tokens.*at most 8192.*Split it"):
        openai_provider.embed(["fine", "word " * 9000], usage=UsageContext(purpose="embedding"))
    with pytest.raises(InvalidInput, match="empty"):
        openai_provider.embed(["fine", "  "], usage=UsageContext(purpose="embedding"))
    assert fake_openai.arrivals(EMBEDDINGS) == 0


def test_embed_refuses_vectors_of_the_wrong_length(configure: Any) -> None:
    # ada-002 takes no `dimensions`, so the server answers 1536 floats: never store them as 256.
    provider = configure(embedding_model="text-embedding-ada-002", embedding_dim="256")
    with pytest.raises(ProviderError, match=r"1536-dimensional.*EMBEDDING_DIM is 256"):
        provider.embed(["hello"], usage=UsageContext(purpose="embedding"))


def test_the_fake_enforces_the_embedding_limits_like_the_api(fake_openai: FakeOpenAI) -> None:
    client = openai.OpenAI(api_key="sk-x", base_url=fake_openai.base_url, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="maximum is 2048"):
        client.embeddings.create(model="text-embedding-3-small", input=["a"] * 2049)
    with pytest.raises(openai.BadRequestError, match="maximum context length is 8192"):
        client.embeddings.create(model="text-embedding-3-small", input=["word " * 9000])
    with pytest.raises(openai.BadRequestError, match="max 300000 tokens per request"):
        client.embeddings.create(model="text-embedding-3-small", input=["budget " * 7000] * 45)
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["hello"], encoding_format="float", dimensions=8
    )
    assert len(floats.data[0].embedding) == 8


def test_plan_embedding_batches() -> None:
    assert plan_embedding_batches([], max_inputs=3) == []
    assert plan_embedding_batches([1] * 7, max_inputs=3) == [range(0, 3), range(3, 6), range(6, 7)]
    assert plan_embedding_batches([6, 5, 5, 1], max_inputs=10, max_tokens=10) == [
        range(0, 1),
        range(1, 3),
        range(3, 4),
    ]
    assert plan_embedding_batches([10, 10], max_inputs=10, max_tokens=10) == [range(0, 1), range(1, 2)]


# Retries and fail-fast errors -------------------------------------------------------------


def test_429_with_retry_after_is_retried_then_succeeds(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(1, 429, retry_after=0.05)
    vectors = openai_provider.embed(["hello"], usage=UsageContext(purpose="embedding"))
    assert len(vectors) == 1
    assert [r.status for r in fake_openai.calls(EMBEDDINGS)] == [429, 200]
    assert fake_openai.calls(EMBEDDINGS)[1].headers.get("x-stainless-retry-count") == "1"


def test_500_twice_is_retried_with_backoff_then_succeeds(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(2, 500)
    completion = openai_provider.complete([Message("user", "hi")], usage=UsageContext(purpose="chat"))
    assert completion.text.startswith("Fake answer to: hi")
    assert [r.status for r in fake_openai.calls(CHAT)] == [500, 500, 200]


def test_429_that_never_ends_gives_up_after_the_configured_retries(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(openai_max_retries="2")
    fake_openai.fail_next(10, 429, retry_after=0.01)
    with pytest.raises(ProviderError, match=r"rate limiting or the quota is used up \(429, after 2 retries\)") as info:
        provider.complete([Message("user", "hi")], usage=UsageContext(purpose="chat"))
    assert not isinstance(info.value, ProviderRejected)
    assert fake_openai.arrivals(CHAT) == 3


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, r"The API rejected the chat request \(400\)"),
        (401, r"The API key was rejected: check OPENAI_API_KEY"),
        (403, r"refused access to gpt-4o-mini \(403\)"),
        (404, r"Model gpt-4o-mini or the endpoint was not found \(404\): check the model setting and OPENAI_BASE_URL"),
        (413, r"too large for one request"),
    ],
)
def test_client_errors_fail_at_once_with_an_actionable_message(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, status: int, message: str, member: Actor
) -> None:
    fake_openai.fail_next(5, status)
    with pytest.raises(ProviderRejected, match=message):
        openai_provider.complete([Message("user", "hi")], usage=UsageContext(purpose="chat", user_id=member.id))
    assert fake_openai.arrivals(CHAT) == 1
    assert _ledger_rows(member.id) == []  # a refused call costs nothing and is not recorded


def test_a_slow_answer_times_out_and_is_retried(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(openai_timeout_seconds="0.5", openai_max_retries="1")
    fake_openai.delay_next(1, 2.0)
    completion = provider.complete([Message("user", "hi")], usage=UsageContext(purpose="chat"))
    assert completion.text.startswith("Fake answer")
    assert fake_openai.arrivals(CHAT) == 2


def test_a_server_that_never_answers_in_time_gives_a_timeout_error(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(openai_timeout_seconds="0.3", openai_max_retries="0")
    fake_openai.delay_next(1, 1.0)
    with pytest.raises(ProviderError, match="did not answer the chat request in time"):
        provider.complete([Message("user", "hi")], usage=UsageContext(purpose="chat"))


def test_an_unreachable_server_names_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("QUORUM_OPENAI_MAX_RETRIES", "0")
    restore_settings()
    try:
        with pytest.raises(ProviderError, match=rf"Could not reach the AI service at 127\.0\.0\.1:{port} \("):
            get_provider().embed(["x"], usage=UsageContext(purpose="embedding"))
    finally:
        monkeypatch.undo()
        restore_settings()


# Transcription ----------------------------------------------------------------------------


def test_whisper_1_transcribes_with_segment_timestamps_and_records_audio_minutes(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, tmp_path: Path, member: Actor
) -> None:
    audio = _wav(tmp_path / "meeting.wav", 25)
    long_prompt = " ".join(f"word{i}" for i in range(600)) + " the previous segment ended here"
    transcription = openai_provider.transcribe(
        audio, usage=UsageContext(purpose="transcription", user_id=member.id), language="en", prompt=long_prompt
    )
    assert [(p.start, p.end, p.text) for p in transcription.pieces] == [
        (0.0, 10.0, "Segment at 0 seconds."),
        (10.0, 20.0, "Segment at 10 seconds."),
        (20.0, 25.0, "Segment at 20 seconds."),
    ]
    assert transcription.text == "Segment at 0 seconds. Segment at 10 seconds. Segment at 20 seconds."
    assert transcription.duration_seconds == pytest.approx(25.0)
    assert all(p.no_speech_prob is not None and p.speaker is None for p in transcription.pieces)
    (request,) = fake_openai.calls(TRANSCRIPTIONS)
    assert request.body["model"] == "whisper-1" and request.body["response_format"] == "verbose_json"
    assert request.body["timestamp_granularities"] == ["segment"] and request.body["language"] == "en"
    assert request.body["prompt"].endswith("the previous segment ended here")
    assert count_tokens(request.body["prompt"], "whisper-1") <= 200
    (row,) = _ledger_rows(member.id)
    assert row.purpose == "transcription" and row.audio_seconds == pytest.approx(25.0)
    assert float(row.cost_usd) == pytest.approx(0.0025)  # 25 s at $0.006 a minute


def test_gpt_4o_transcribe_uses_json_and_gives_one_piece(
    configure: Any, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    provider = configure(transcription_model="gpt-4o-mini-transcribe")
    audio = _wav(tmp_path / "short.wav", 12)
    transcription = provider.transcribe(audio, usage=UsageContext(purpose="transcription"))
    assert fake_openai.calls(TRANSCRIPTIONS)[0].body["response_format"] == "json"
    assert [(p.start, p.text) for p in transcription.pieces] == [(0.0, "Segment at 0 seconds. Segment at 10 seconds.")]
    assert transcription.pieces[0].end == pytest.approx(12.0, abs=1.0)


def test_diarize_model_keeps_speaker_labels(configure: Any, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    provider = configure(transcription_model="gpt-4o-transcribe-diarize")
    audio = _wav(tmp_path / "two.wav", 20)
    transcription = provider.transcribe(audio, usage=UsageContext(purpose="transcription"), prompt="ignored")
    assert [p.speaker for p in transcription.pieces] == ["A", "B"]
    (request,) = fake_openai.calls(TRANSCRIPTIONS)
    assert request.body["response_format"] == "diarized_json" and request.body["chunking_strategy"] == "auto"
    assert "prompt" not in request.body


def test_transcription_handler_and_transcription_format() -> None:
    assert transcription_format("whisper-1") == "verbose_json"
    assert transcription_format("gpt-4o-transcribe") == "json"
    assert transcription_format("gpt-4o-mini-transcribe") == "json"
    assert transcription_format("gpt-4o-transcribe-diarize") == "diarized_json"


def test_a_file_over_25_mib_fails_at_once_with_413(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    big = tmp_path / "big.wav"
    with big.open("wb") as handle:
        handle.truncate(26 * 1024 * 1024)
    with pytest.raises(ProviderRejected, match=r"too large for one request.*Maximum content size limit \(26214400\)"):
        openai_provider.transcribe(big, usage=UsageContext(purpose="transcription"))
    assert fake_openai.arrivals(TRANSCRIPTIONS) == 1


def test_a_file_that_is_not_audio_is_rejected(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake = tmp_path / "notes.wav"
    fake.write_text("not audio at all")
    with pytest.raises(ProviderRejected, match="Invalid file format"):
        openai_provider.transcribe(fake, usage=UsageContext(purpose="transcription"))
    with pytest.raises(InvalidInput, match="not found"):
        openai_provider.transcribe(tmp_path / "missing.wav", usage=UsageContext(purpose="transcription"))


def test_a_transcription_handler_controls_the_text(
    openai_provider: OpenAIProvider, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.transcription_handler = lambda request: [
        {"start": 0.0, "end": 1.5, "text": f"Hello from {request['filename']}"},
        {"start": 1.5, "end": 3.0, "text": "Thank you for watching", "no_speech_prob": 0.9},
    ]
    transcription = openai_provider.transcribe(_wav(tmp_path / "x.wav", 3), usage=UsageContext(purpose="transcription"))
    assert transcription.pieces[0].text == "Hello from x.wav"
    assert transcription.pieces[1].no_speech_prob == pytest.approx(0.9)
