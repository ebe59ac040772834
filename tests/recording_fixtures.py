"""Fixtures and helpers for the recording tests: real audio, the app pointed at the fake
OpenAI server or at the offline provider, and submitting a file as a user would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.access.rbac import Actor
from core.ai.embedding_space import current_embedding_space, reset_embedding_space
from core.meetings import submit_recording
from tests import audio_samples
from tests.fake_openai import CLIENT_TIMEOUT_SECONDS, FakeOpenAI, restore_settings, use_fake_openai

SENTENCES = [
    "Good morning everyone, welcome to the planning meeting.",
    "The budget review is moved to Thursday.",
    "The marketing report is due on Friday.",
    "We decided to hire two engineers for the mobile team.",
    "Any questions before we finish?",
]


@pytest.fixture(scope="module")
def meeting_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 25 s of espeak-ng speech: five sentences with 1.5 s pauses between them."""
    folder = tmp_path_factory.mktemp("meeting")
    parts: list[Path] = []
    for number, sentence in enumerate(SENTENCES):
        if parts:
            parts.append(audio_samples.silence(folder / f"pause{number}.wav", 1.5))
        parts.append(audio_samples.speech(folder / f"line{number}.wav", sentence))
    return audio_samples.concat(folder / "meeting.wav", parts)


@pytest.fixture(scope="module")
def long_tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two minutes of tone bursts (5 s) and pauses (2 s), as an mp3."""
    folder = tmp_path_factory.mktemp("tones")
    return audio_samples.long_recording(folder / "standup.mp3", hours=2 / 60)


@pytest.fixture
def own_embedding_space(database: str) -> Iterator[None]:
    """The test's embedder records the embedding space; the one stored before comes back after."""
    saved = current_embedding_space()
    reset_embedding_space()
    yield
    reset_embedding_space(space=saved)


@pytest.fixture
def fake_api(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, own_embedding_space: None, redis_server: str
) -> Iterator[Callable[..., FakeOpenAI]]:
    """configure(**settings): point the app at the fake server with these QUORUM_ settings."""

    def configure(**settings: object) -> FakeOpenAI:
        values = {
            "openai_timeout_seconds": CLIENT_TIMEOUT_SECONDS,
            "openai_transcription_timeout_seconds": CLIENT_TIMEOUT_SECONDS,
            "openai_max_retries": "0",
            **settings,
        }
        use_fake_openai(monkeypatch, fake_openai, **{k: str(v) for k, v in values.items()})
        return fake_openai

    yield configure
    monkeypatch.undo()
    restore_settings()


@pytest.fixture
def offline(
    monkeypatch: pytest.MonkeyPatch, own_embedding_space: None, redis_server: str
) -> Iterator[Callable[..., None]]:
    def configure(**settings: object) -> None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        for name, value in settings.items():
            monkeypatch.setenv(f"QUORUM_{name.upper()}", str(value))
        restore_settings()

    yield configure
    monkeypatch.undo()
    restore_settings()


def numbered_transcripts(fake: FakeOpenAI) -> list[dict[str, Any]]:
    """Make the fake answer each request with text naming the request, one piece per 5 s."""
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def handler(request: dict[str, Any]) -> list[dict[str, Any]]:
        with lock:
            seen.append(request)
            number = len(seen)
        duration = float(request["duration"])
        pieces, start = [], 0.0
        while start < duration - 0.5:
            end = min(duration, start + 5.0)
            pieces.append({"start": start, "end": end, "text": f"Request {number} words {int(start)}."})
            start = end
        return pieces

    fake.transcription_handler = handler
    return seen


def submit(
    actor: Actor, path: Path, *, filename: str | None = None, visibility: str = "team", again: bool = False
) -> int:
    """Upload `path` as `actor`; `again` transcribes it even if they uploaded it before."""
    with path.open("rb") as handle:
        return submit_recording(
            actor=actor, file=handle, filename=filename or path.name, visibility=visibility, transcribe_again=again
        ).id
