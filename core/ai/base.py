"""The provider interface every AI backend implements, and the values it passes around."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Purpose = Literal["transcription", "minutes", "embedding", "chat"]


@dataclass(frozen=True)
class UsageContext:
    """Who and what an AI call is for, so the usage ledger can attribute it."""

    purpose: Purpose
    user_id: int | None = None
    transcription_job_id: int | None = None
    document_id: int | None = None


@dataclass(frozen=True)
class TranscriptPiece:
    """A timestamped stretch of speech, seconds relative to the audio that was sent."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    no_speech_prob: float | None = None


@dataclass(frozen=True)
class Transcription:
    text: str
    pieces: list[TranscriptPiece]
    model: str
    language: str | None = None
    duration_seconds: float | None = None


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class EmbeddingSpaceKey:
    """What makes two vectors comparable: who made them, with which model, how long."""

    provider: str
    model: str
    dimensions: int

    def describe(self) -> str:
        return f"{self.provider}/{self.model} ({self.dimensions} dimensions)"


@dataclass
class StreamResult:
    """Filled in when a stream ends: the full text and the tokens it cost."""

    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    chunks: list[str] = field(default_factory=list)


class AIProvider(Protocol):
    """Transcribe, complete (streamed or not), embed, count tokens.

    Every call records its tokens and estimated cost in the usage ledger under `usage`.
    Errors a user can act on are raised as core.platform.errors.ProviderError with a plain message.
    """

    name: str
    chat_model: str
    generates_text: bool  # False for the offline provider: callers use extractive methods

    @property
    def embedding_space(self) -> EmbeddingSpaceKey: ...

    def transcribe(
        self, audio_path: Path, *, usage: UsageContext, language: str | None = None, prompt: str | None = None
    ) -> Transcription: ...

    def complete(
        self,
        messages: Sequence[Message],
        *,
        usage: UsageContext,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> Completion: ...

    def stream(
        self, messages: Sequence[Message], *, usage: UsageContext, result: StreamResult | None = None
    ) -> Iterator[str]: ...

    def embed(self, texts: Sequence[str], *, usage: UsageContext) -> list[list[float]]: ...

    def count_tokens(self, text: str) -> int: ...
