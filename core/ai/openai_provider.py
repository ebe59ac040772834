"""The OpenAI provider, on the official openai client; works with any OpenAI-compatible server.

Retries are the client's own: it retries 408/409/429/5xx, timeouts and dropped connections
with exponential backoff (0.5 s doubling, capped at 8 s, with jitter) and honours
Retry-After / retry-after-ms up to its cap, settings.openai_max_retries times. Other 4xx
fail at once. Failures surface as ProviderError (worth retrying later) or ProviderRejected
(fix the settings or the input first) with a message a user can act on.

Every call writes one usage-ledger row per API request, tagged with the caller's purpose.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import openai
from openai import OpenAI

from core.ai.base import (
    Completion,
    EmbeddingSpaceKey,
    Message,
    StreamResult,
    Transcription,
    TranscriptPiece,
    UsageContext,
)
from core.ai.rate_budget import RateBudget
from core.ai.usage import record_usage
from core.platform.config import Settings, get_settings
from core.platform.errors import InvalidInput, ProviderError, ProviderRejected
from core.platform.tokens import count_tokens, encoding_for_model

log = logging.getLogger(__name__)

PROVIDER_NAME = "openai"

# The embeddings endpoint's limits (API reference, checked 2026-08).
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_REQUEST_TOKENS = 300_000
MAX_EMBEDDING_INPUT_TOKENS = 8192
# whisper-1 reads only the last 224 tokens of `prompt`; keep a margin.
MAX_PROMPT_TOKENS = 200


def transcription_format(model: str) -> str:
    """The richest response_format `model` offers: verbose_json (whisper-1, segment
    timestamps), diarized_json (speaker labels) or json (gpt-4o transcribe models)."""
    if "diarize" in model:
        return "diarized_json"
    if model.startswith("gpt-4o") or "transcribe" in model:
        return "json"
    return "verbose_json"


def plan_embedding_batches(
    token_counts: Sequence[int], *, max_inputs: int, max_tokens: int = MAX_EMBEDDING_REQUEST_TOKENS
) -> list[range]:
    """Consecutive index ranges, each within `max_inputs` inputs and `max_tokens` tokens.

    Pure. Every single count must already be <= max_tokens.
    """
    batches: list[range] = []
    start, tokens = 0, 0
    for index, count in enumerate(token_counts):
        if index > start and (index - start >= max_inputs or tokens + count > max_tokens):
            batches.append(range(start, index))
            start, tokens = index, 0
        tokens += count
    if start < len(token_counts):
        batches.append(range(start, len(token_counts)))
    return batches


def _audio_seconds(path: Path) -> float:
    """Duration by ffprobe, for responses that do not report it; 0.0 if it cannot tell."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return float(probe.stdout.strip())
    except ValueError:
        return 0.0


def _api_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return error.message


class OpenAIProvider:
    """Transcription, chat and embeddings through the OpenAI API or a compatible server."""

    name = PROVIDER_NAME
    generates_text = True

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        if not self.settings.openai_api_key:
            raise ProviderRejected("OPENAI_API_KEY is not set: the OpenAI provider needs an API key.")
        self.chat_model = self.settings.chat_model
        self.host = self.settings.openai_host  # errors name the host only, never the whole URL
        self.client = OpenAI(
            api_key=self.settings.openai_api_key,
            base_url=self.settings.openai_base_url,
            timeout=self.settings.openai_timeout_seconds,
            max_retries=self.settings.openai_max_retries,
        )
        # One provider per process (core.ai.get_provider): these are shared by all its threads.
        concurrency = max(1, self.settings.embedding_concurrency)
        self._embedding_budget = RateBudget(concurrency)
        self._embedding_pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="embedding")

    @property
    def embedding_space(self) -> EmbeddingSpaceKey:
        return EmbeddingSpaceKey(
            provider=PROVIDER_NAME, model=self.settings.embedding_model, dimensions=self.settings.embedding_dim
        )

    # Errors ------------------------------------------------------------------------------

    def _fail(self, error: openai.OpenAIError, *, what: str, model: str) -> NoReturn:
        """Raise the ProviderError a user can act on for a failed `what` call."""
        retries = self.settings.openai_max_retries
        if isinstance(error, openai.APITimeoutError):
            raise ProviderError(
                f"The AI service did not answer the {what} request in time (after {retries} retries). "
                "Try again later, or raise QUORUM_OPENAI_TIMEOUT_SECONDS."
            ) from error
        if isinstance(error, openai.APIConnectionError):
            raise ProviderError(
                f"Could not reach the AI service at {self.host} (after {retries} retries): "
                "check OPENAI_BASE_URL and the network."
            ) from error
        if not isinstance(error, openai.APIStatusError):
            raise ProviderError(f"The {what} request failed: {error}") from error
        status, detail = error.status_code, _api_message(error)
        if status == 401:
            raise ProviderRejected(f"The API key was rejected: check OPENAI_API_KEY. ({detail})") from error
        if status == 403:
            raise ProviderRejected(
                f"The API refused access to {model} (403): the key's project, organisation or region may not "
                f"be allowed to use it. ({detail})"
            ) from error
        if status == 404:
            raise ProviderRejected(
                f"Model {model} or the endpoint was not found (404): check the model setting and "
                f"OPENAI_BASE_URL (host {self.host}). ({detail})"
            ) from error
        if status == 413:
            raise ProviderRejected(
                "The file is too large for one request (the API takes at most 25 MB): split or re-encode "
                f"the audio smaller. ({detail})"
            ) from error
        if status == 429:
            raise ProviderError(
                f"The AI service is rate limiting or the quota is used up (429, after {retries} retries): "
                f"try again later or check the account's limits. ({detail})"
            ) from error
        if status >= 500:
            raise ProviderError(
                f"The AI service failed ({status}) on the {what} request after {retries} retries: "
                f"try again later. ({detail})"
            ) from error
        raise ProviderRejected(f"The API rejected the {what} request ({status}): {detail}") from error

    # Transcription -----------------------------------------------------------------------

    def transcribe(
        self, audio_path: Path, *, usage: UsageContext, language: str | None = None, prompt: str | None = None
    ) -> Transcription:
        """Transcribe one audio file (under the API's 25 MB) with settings.transcription_model.

        Timestamps are relative to this file. whisper-1 gives segment timestamps
        (verbose_json); diarize models give speaker labels; other gpt-4o transcribe models
        give text only, as one piece spanning the file. `prompt` (context from the previous
        segment) is cut to its last 200 tokens and not sent to diarize models.
        Raises InvalidInput for a missing file, ProviderRejected/ProviderError on failure.
        """
        path = Path(audio_path)
        if not path.is_file():
            raise InvalidInput(f"Audio file not found: {path.name}")
        model = self.settings.transcription_model
        response_format = transcription_format(model)
        options: dict[str, Any] = {"model": model, "response_format": response_format}
        if language:
            options["language"] = language
        if prompt and response_format != "diarized_json":
            encoding = encoding_for_model(model)
            options["prompt"] = encoding.decode(encoding.encode(prompt, disallowed_special=())[-MAX_PROMPT_TOKENS:])
        if response_format == "verbose_json":
            options["timestamp_granularities"] = ["segment"]
        if response_format == "diarized_json":
            options["chunking_strategy"] = "auto"
        try:
            with path.open("rb") as audio:
                response: Any = self.client.audio.transcriptions.create(
                    file=(path.name, audio),
                    timeout=self.settings.openai_transcription_timeout_seconds,
                    **options,
                )
        except openai.OpenAIError as error:
            self._fail(error, what="transcription", model=model)

        text = str(getattr(response, "text", response) or "").strip()
        duration = getattr(response, "duration", None)
        pieces: list[TranscriptPiece] = []
        for segment in getattr(response, "segments", None) or []:
            piece_text = str(segment.text).strip()
            if piece_text:
                pieces.append(
                    TranscriptPiece(
                        start=float(segment.start),
                        end=float(segment.end),
                        text=piece_text,
                        speaker=getattr(segment, "speaker", None),
                        no_speech_prob=getattr(segment, "no_speech_prob", None),
                    )
                )
        input_tokens = output_tokens = 0
        reported = getattr(response, "usage", None)
        if duration is None and reported is not None and getattr(reported, "type", "") == "duration":
            duration = float(reported.seconds)
        if reported is not None and getattr(reported, "type", "") == "tokens":
            input_tokens = int(getattr(reported, "input_tokens", 0) or 0)
            output_tokens = int(getattr(reported, "output_tokens", 0) or 0)
        seconds = float(duration) if duration is not None else _audio_seconds(path)
        if not pieces and text:
            pieces.append(TranscriptPiece(start=0.0, end=seconds, text=text))
        record_usage(
            usage=usage,
            provider=PROVIDER_NAME,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            audio_seconds=seconds,
        )
        return Transcription(
            text=text or " ".join(p.text for p in pieces),
            pieces=pieces,
            model=model,
            language=getattr(response, "language", None) or language,
            duration_seconds=seconds,
        )

    # Chat --------------------------------------------------------------------------------

    def _chat_options(self, messages: Sequence[Message], max_tokens: int | None) -> dict[str, Any]:
        options: dict[str, Any] = {
            "model": self.chat_model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if max_tokens is not None:
            # Reasoning models take only max_completion_tokens; compatible servers know max_tokens.
            reasoning = self.chat_model.startswith(("o1", "o3", "o4", "gpt-5"))
            options["max_completion_tokens" if reasoning else "max_tokens"] = max_tokens
        return options

    def _prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(count_tokens(m.content, self.chat_model) + 4 for m in messages) + 3

    def complete(
        self,
        messages: Sequence[Message],
        *,
        usage: UsageContext,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> Completion:
        """One chat completion with settings.chat_model; json_mode asks for a JSON object.

        Token counts come from the response, or tiktoken when a server omits them.
        Raises ProviderRejected/ProviderError on failure.
        """
        if not messages:
            raise InvalidInput("A chat completion needs at least one message.")
        options = self._chat_options(messages, max_tokens)
        if json_mode:
            options["response_format"] = {"type": "json_object"}
        try:
            response = self.client.chat.completions.create(**options)
        except openai.OpenAIError as error:
            self._fail(error, what="chat", model=self.chat_model)
        text = (response.choices[0].message.content or "") if response.choices else ""
        if response.usage is not None:
            input_tokens, output_tokens = response.usage.prompt_tokens, response.usage.completion_tokens
        else:
            input_tokens, output_tokens = self._prompt_tokens(messages), count_tokens(text, self.chat_model)
        model = response.model or self.chat_model
        record_usage(
            usage=usage,
            provider=PROVIDER_NAME,
            model=self.chat_model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        return Completion(text=text, model=model, input_tokens=input_tokens, output_tokens=output_tokens)

    def stream(
        self, messages: Sequence[Message], *, usage: UsageContext, result: StreamResult | None = None
    ) -> Iterator[str]:
        """Yield the reply's text deltas as they arrive; fill `result` and the ledger at the end.

        The usage comes from the stream's last chunk (stream_options.include_usage); when a
        server omits it, or the consumer stops early, tokens are counted with tiktoken.
        Raises ProviderRejected/ProviderError, before the first delta or mid-stream.
        """
        if not messages:
            raise InvalidInput("A chat completion needs at least one message.")
        result = result if result is not None else StreamResult()
        result.model = self.chat_model
        options = self._chat_options(messages, None)
        reported: Any = None
        started = False
        try:
            try:
                stream = self.client.chat.completions.create(
                    **options, stream=True, stream_options={"include_usage": True}
                )
                started = True
                with stream:
                    for chunk in stream:
                        if chunk.usage is not None:
                            reported = chunk.usage
                        if chunk.model:
                            result.model = chunk.model
                        for choice in chunk.choices:
                            delta = choice.delta.content if choice.delta else None
                            if delta:
                                result.chunks.append(delta)
                                yield delta
            except openai.OpenAIError as error:
                self._fail(error, what="chat", model=self.chat_model)
        finally:
            result.text = "".join(result.chunks)
            if started:  # a request went out, so it may have cost something
                if reported is not None:
                    result.input_tokens, result.output_tokens = reported.prompt_tokens, reported.completion_tokens
                else:
                    result.input_tokens = self._prompt_tokens(messages)
                    result.output_tokens = count_tokens(result.text, self.chat_model)
                record_usage(
                    usage=usage,
                    provider=PROVIDER_NAME,
                    model=self.chat_model,
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                )

    # Embeddings --------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, usage: UsageContext) -> list[list[float]]:
        """One vector of settings.embedding_dim per text, in order, in as few requests as the
        limits allow (<= 2,048 inputs, <= 300,000 tokens, <= settings.embedding_batch_size, and
        within a whole rate window's tokens once the server has reported its limit).

        Requests run settings.embedding_concurrency at a time per process (shared by every
        thread), each sent only within the request and token budgets the server reported in
        its x-ratelimit-* headers (one at a time until a first reply reports them).
        Raises InvalidInput, before any request, for an empty text or one over 8,192 tokens
        (texts are never cut silently: chunk them smaller). Raises ProviderError when the
        service returns vectors of another length than EMBEDDING_DIM.
        """
        model = self.settings.embedding_model
        counts: list[int] = []
        for index, text in enumerate(texts):
            if not text or not text.strip():
                raise InvalidInput(f"Text {index + 1} of {len(texts)} is empty: empty text cannot be embedded.")
            tokens = count_tokens(text, model)
            if tokens > MAX_EMBEDDING_INPUT_TOKENS:
                raise InvalidInput(
                    f"Text {index + 1} of {len(texts)} has {tokens} tokens; {model} takes at most "
                    f"{MAX_EMBEDDING_INPUT_TOKENS} per input. Split it into smaller chunks."
                )
            counts.append(tokens)
        max_inputs = max(1, min(MAX_EMBEDDING_INPUTS, self.settings.embedding_batch_size))
        # A request over a whole window's tokens would be refused (429) however long it waited.
        max_tokens = min(
            MAX_EMBEDDING_REQUEST_TOKENS, self._embedding_budget.token_limit or MAX_EMBEDDING_REQUEST_TOKENS
        )
        batches = plan_embedding_batches(counts, max_inputs=max_inputs, max_tokens=max_tokens)
        if len(batches) <= 1:
            return [vector for batch in batches for vector in self._embed_batch(texts, counts, batch, usage)]
        futures = [self._embedding_pool.submit(self._embed_batch, texts, counts, batch, usage) for batch in batches]
        try:
            return [vector for future in futures for vector in future.result()]
        finally:
            for future in futures:
                future.cancel()  # after a failure, requests not yet sent are not sent

    def _embed_batch(
        self, texts: Sequence[str], counts: Sequence[int], batch: range, usage: UsageContext
    ) -> list[list[float]]:
        model = self.settings.embedding_model
        options: dict[str, Any] = {"model": model}
        if model.startswith("text-embedding-3"):
            options["dimensions"] = self.settings.embedding_dim
        tokens = sum(counts[i] for i in batch)
        with self._embedding_budget.spend(tokens):
            try:
                raw = self.client.embeddings.with_raw_response.create(input=[texts[i] for i in batch], **options)
            except openai.APIStatusError as error:
                self._embedding_budget.observe(error.response.headers)
                self._fail(error, what="embedding", model=model)
            except openai.OpenAIError as error:
                self._fail(error, what="embedding", model=model)
            self._embedding_budget.observe(raw.headers)
        response = raw.parse()
        ordered = sorted(response.data, key=lambda item: item.index)
        if len(ordered) != len(batch):
            raise ProviderError(f"The embedding service returned {len(ordered)} vectors for {len(batch)} texts.")
        vectors: list[list[float]] = []
        for item in ordered:
            if len(item.embedding) != self.settings.embedding_dim:
                raise ProviderError(
                    f"{model} returned {len(item.embedding)}-dimensional vectors but EMBEDDING_DIM is "
                    f"{self.settings.embedding_dim}: set QUORUM_EMBEDDING_DIM to match the model (and re-index) "
                    "or pick a model that supports `dimensions`."
                )
            vectors.append(list(item.embedding))
        prompt_tokens = response.usage.prompt_tokens if response.usage else tokens
        record_usage(usage=usage, provider=PROVIDER_NAME, model=model, input_tokens=prompt_tokens)
        return vectors

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` for settings.chat_model (tiktoken, offline)."""
        return count_tokens(text, self.chat_model)
