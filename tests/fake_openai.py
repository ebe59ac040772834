"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests, and its pytest fixtures.

The official openai client talks to it over loopback exactly as it would to the API, so
retries, timeouts, multipart uploads, SSE streaming and base64 embeddings are exercised for
real. It implements:

- POST /v1/audio/transcriptions  multipart; json, text, verbose_json (segments) and
  diarized_json (speakers A, B, ...); 413 over 25 MiB with the API's message; 400 for
  audio ffprobe cannot read. Default transcript: one segment per 10 s of the uploaded
  audio, "Segment at N seconds." (set `transcription_handler` to change it).
- POST /v1/chat/completions      plain and streamed (SSE, usage in a last chunk when
  stream_options.include_usage). Default reply: with numbered sources "[1] ..." in the
  prompt, a sentence of source 1 followed by " [1]"; in json_object mode a JSON object
  with summary/decisions/action_items/topics. Set `chat_handler` to change it.
- POST /v1/embeddings            base64 float32 little-endian (the client's default) or
  floats; the API's limits as 400s (2,048 inputs, 300,000 tokens per request, 8,192 per
  input, no empty strings); `dimensions` honoured. Vectors come from the offline hashing
  embedder, so retrieval through the fake finds the right chunks.
- GET  /v1/models

Fault injection: `fail_next(n, status, retry_after=...)`, `delay_next(n, seconds)`.
Realism for throughput tests: `embedding_latency` (seconds every embeddings request takes)
plus `embedding_latency_per_token` (seconds per input token, as the API takes longer for
bigger requests), `limit_embeddings(requests=..., tokens=..., window_seconds=...)` (budgets reported in the
API's x-ratelimit-* headers, 429 with Retry-After beyond them) and `embeddings_in_flight_peak`.
Every request is logged in `requests` (path, JSON body or form fields, number of inputs).

Loaded as a pytest plugin from the root conftest before the test environment is final:
nothing from core is imported at module level.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

MAX_UPLOAD_BYTES = 26_214_400  # 25 MiB, the API's request limit
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_REQUEST_TOKENS = 300_000
MAX_EMBEDDING_INPUT_TOKENS = 8192
DEFAULT_EMBEDDING_DIM = 1536
SEGMENT_SECONDS = 10.0

ChatHandler = Callable[[dict[str, Any]], str]
TranscriptionHandler = Callable[[dict[str, Any]], list[dict[str, Any]]]

_ERROR_TYPES = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `no-such-model` does not exist or you do not have access to it.",
    ),
    408: ("server_error", None, "Request timed out."),
    409: ("server_error", None, "Conflict."),
    413: ("server_error", None, "Maximum content size limit (26214400) exceeded."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class LoggedRequest:
    """One request the fake received. `inputs` and `tokens` count an embeddings request's input."""

    method: str
    path: str
    body: dict[str, Any]
    status: int
    inputs: int | None = None
    tokens: int | None = None
    file_bytes: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    remaining: int
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    message: str | None = None
    path: str | None = None


@dataclass
class _RateWindow:
    """Fixed-window budgets, like the API's per-minute request and token limits."""

    requests: int
    tokens: int
    seconds: float
    started: float = field(default_factory=time.monotonic)
    used_requests: int = 0
    used_tokens: int = 0

    def spend(self, tokens: int) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        if now - self.started >= self.seconds:
            self.started, self.used_requests, self.used_tokens = now, 0, 0
        allowed = self.used_requests < self.requests and self.used_tokens + tokens <= self.tokens
        if allowed:
            self.used_requests += 1
            self.used_tokens += tokens
        reset = max(self.seconds - (now - self.started), 0.001)
        headers = {
            "x-ratelimit-limit-requests": str(self.requests),
            "x-ratelimit-remaining-requests": str(self.requests - self.used_requests),
            "x-ratelimit-reset-requests": f"{reset:.3f}s",
            "x-ratelimit-limit-tokens": str(self.tokens),
            "x-ratelimit-remaining-tokens": str(self.tokens - self.used_tokens),
            "x-ratelimit-reset-tokens": f"{reset:.3f}s",
        }
        if not allowed:
            headers["retry-after-ms"] = str(int(reset * 1000) + 1)
        return allowed, headers


class FakeOpenAI:
    """The server's state: handlers, queued faults and the request log. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.requests: list[LoggedRequest] = []
        self.received: list[str] = []  # every request's path, logged on arrival (before any delay)
        self.chat_handler: ChatHandler | None = None
        self.transcription_handler: TranscriptionHandler | None = None
        self.required_api_key: str | None = None
        self.embedding_latency = 0.0
        self.embedding_latency_per_token = 0.0
        self.dense_embeddings = False  # True: dense_projection of the hashing vectors (like a model's)
        self._rate: _RateWindow | None = None
        self._in_flight = 0
        self.embeddings_in_flight_peak = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        """Forget faults, handlers and the request log (between tests)."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.received.clear()
        self.chat_handler = None
        self.transcription_handler = None
        self.required_api_key = None
        self.embedding_latency = 0.0
        self.embedding_latency_per_token = 0.0
        self._rate = None
        self._in_flight = 0
        self.embeddings_in_flight_peak = 0

    def limit_embeddings(self, *, requests: int, tokens: int, window_seconds: float = 60.0) -> None:
        """Budgets of embeddings requests and tokens per window, reported as the API reports them."""
        with self._lock:
            self._rate = _RateWindow(requests, tokens, window_seconds)

    def _embedding_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.embeddings_in_flight_peak = max(self.embeddings_in_flight_peak, self._in_flight)

    def _embedding_finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _spend(self, tokens: int) -> tuple[bool, dict[str, str]]:
        """Charge one request of `tokens` to the rate window: (allowed, x-ratelimit headers)."""
        with self._lock:
            return (True, {}) if self._rate is None else self._rate.spend(tokens)

    # Fault injection ---------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next `count` requests (to `path` if given, e.g. "/v1/embeddings") answer `status`.

        retry_after adds a Retry-After header (seconds, may be fractional).
        """
        with self._lock:
            self._faults.append(_Fault(count, status=status, retry_after=retry_after, message=message, path=path))

    def delay_next(self, count: int, seconds: float, *, path: str | None = None) -> None:
        """The next `count` requests wait `seconds` before answering normally."""
        with self._lock:
            self._faults.append(_Fault(count, delay=seconds, path=path))

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.path is None or fault.path == path):
                    fault.remaining -= 1
                    return fault
        return None

    def _arrived(self, path: str) -> None:
        with self._lock:
            self.received.append(path)

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    # Assertions helpers ------------------------------------------------------------------

    def calls(self, path: str) -> list[LoggedRequest]:
        """Answered requests to `path` ("/v1/embeddings", ...), in order."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def arrivals(self, path: str) -> int:
        """How many requests to `path` arrived, answered or not (a timed-out one counts)."""
        with self._lock:
            return sum(1 for p in self.received if p == path)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closed its socket before a delayed reply: expected here.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    state: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        return

    # Plumbing ----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        chunks: list[bytes] = []
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None, param: str | None = None
    ) -> None:
        kind, code, default = _ERROR_TYPES.get(status, ("server_error", None, "Error."))
        error = {"message": message or default, "type": kind, "param": param, "code": code}
        self._send_json(status, {"error": error}, headers)

    # Routing -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.state._arrived(path)
        if self._before(path, {}):
            return
        if path == "/v1/models":
            models = ["whisper-1", "gpt-4o-mini", "gpt-4o-transcribe", "text-embedding-3-small"]
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in models],
                },
            )
            self._log_request("GET", path, {}, 200)
        else:
            self._send_error(404, f"Unknown path {path}")
            self._log_request("GET", path, {}, 404)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        self.state._arrived(path)
        raw = self._read_body()  # always drained, so an error reply never resets the connection
        if path == "/v1/audio/transcriptions":
            self._transcriptions(path, raw)
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_error(400, "We could not parse the JSON body of your request.")
            self._log_request("POST", path, {}, 400)
            return
        if self._before(path, body):
            return
        if path == "/v1/chat/completions":
            self._chat(path, body)
        elif path == "/v1/embeddings":
            self._embeddings(path, body)
        else:
            self._send_error(404, f"Unknown path {path}")
            self._log_request("POST", path, body, 404)

    def _log_request(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        status: int,
        *,
        inputs: int | None = None,
        tokens: int | None = None,
        file_bytes: int | None = None,
    ) -> None:
        headers = {
            k.lower(): v for k, v in self.headers.items() if k.lower() in ("authorization", "x-stainless-retry-count")
        }
        self.state._log(
            LoggedRequest(
                method, path, body, status, inputs=inputs, tokens=tokens, file_bytes=file_bytes, headers=headers
            )
        )

    def _before(self, path: str, body: dict[str, Any], *, file_bytes: int | None = None) -> bool:
        """Apply auth and any queued fault. True when a reply was already sent."""
        required = self.state.required_api_key
        if required is not None and self.headers.get("Authorization") != f"Bearer {required}":
            self._send_error(401)
            self._log_request(self.command, path, body, 401, file_bytes=file_bytes)
            return True
        fault = self.state._take_fault(path)
        if fault is None:
            return False
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status is None:
            return False
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        self._send_error(fault.status, fault.message, headers)
        self._log_request(self.command, path, body, fault.status, file_bytes=file_bytes)
        return True

    # Transcriptions ----------------------------------------------------------------------

    def _transcriptions(self, path: str, raw: bytes) -> None:
        if len(raw) > MAX_UPLOAD_BYTES:
            message = f"Maximum content size limit ({MAX_UPLOAD_BYTES}) exceeded ({len(raw)} bytes read)"
            self._send_error(413, message)
            self._log_request("POST", path, {}, 413, file_bytes=len(raw))
            return
        fields, filename, audio = _parse_multipart(self.headers.get("Content-Type", ""), raw)
        if self._before(path, fields, file_bytes=len(audio)):
            return
        duration = _audio_duration(audio, filename)
        if duration is None:
            self._send_error(
                400,
                "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', "
                "'wav', 'webm']",
                param="file",
            )
            self._log_request("POST", path, fields, 400, file_bytes=len(audio))
            return
        response_format = fields.get("response_format", "json")
        request = {**fields, "duration": duration, "filename": filename, "file_bytes": len(audio)}
        handler = self.state.transcription_handler
        segments = handler(request) if handler else _default_segments(duration)
        text = " ".join(s["text"].strip() for s in segments).strip()
        if response_format == "text":
            self._send_text(200, text)
        elif response_format == "verbose_json":
            self._send_json(
                200,
                {
                    "task": "transcribe",
                    "language": fields.get("language") or "english",
                    "duration": duration,
                    "text": text,
                    "segments": [
                        {
                            "id": i,
                            "seek": 0,
                            "start": s["start"],
                            "end": s["end"],
                            "text": " " + s["text"].strip(),
                            "tokens": [],
                            "temperature": 0.0,
                            "avg_logprob": -0.2,
                            "compression_ratio": 1.2,
                            "no_speech_prob": s.get("no_speech_prob", 0.01),
                        }
                        for i, s in enumerate(segments)
                    ],
                },
            )
        elif response_format == "diarized_json":
            self._send_json(
                200,
                {
                    "task": "transcribe",
                    "duration": duration,
                    "text": text,
                    "segments": [
                        {
                            "type": "transcript.text.segment",
                            "id": f"seg_{i}",
                            "start": s["start"],
                            "end": s["end"],
                            "text": s["text"].strip(),
                            "speaker": s.get("speaker") or "AB"[i % 2],
                        }
                        for i, s in enumerate(segments)
                    ],
                    "usage": {"type": "duration", "seconds": round(duration)},
                },
            )
        elif response_format == "json":
            self._send_json(200, {"text": text, "usage": {"type": "duration", "seconds": round(duration)}})
        else:
            self._send_error(
                400, f"response_format '{response_format}' is not supported by the fake", param="response_format"
            )
            self._log_request("POST", path, fields, 400, file_bytes=len(audio))
            return
        self._log_request("POST", path, fields, 200, file_bytes=len(audio))

    # Chat --------------------------------------------------------------------------------

    def _chat(self, path: str, body: dict[str, Any]) -> None:
        from core.platform.tokens import count_tokens, encoding_for_model

        messages = body.get("messages") or []
        if not messages:
            self._send_error(400, "[] is too short - 'messages'", param="messages")
            self._log_request("POST", path, body, 400)
            return
        model = str(body.get("model", "gpt-4o-mini"))
        json_mode = (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
        handler = self.state.chat_handler
        reply = handler(body) if handler else _default_reply(messages, json_mode=json_mode)
        finish = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        encoding = encoding_for_model(model)
        if limit and count_tokens(reply, model) > int(limit):
            reply = encoding.decode(encoding.encode(reply, disallowed_special=())[: int(limit)])
            finish = "length"
        prompt_tokens = sum(count_tokens(_content_text(m.get("content")), model) + 4 for m in messages) + 3
        completion_tokens = count_tokens(reply, model)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        created = int(time.time())
        ident = f"chatcmpl-fake{len(self.state.requests)}"
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply, "refusal": None},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                },
            )
            self._log_request("POST", path, body, 200)
            return

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }

        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in re.findall(r"\S+\s*|\s+", reply)]
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self._log_request("POST", path, body, 200)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # Embeddings --------------------------------------------------------------------------

    def _embeddings(self, path: str, body: dict[str, Any]) -> None:
        import numpy as np

        from core.ai.hashing import hashing_embed
        from core.platform.tokens import count_tokens, encoding_for_model

        raw_input = body.get("input")
        model = str(body.get("model", "text-embedding-3-small"))
        texts: list[str]
        if isinstance(raw_input, str):
            texts = [raw_input]
        elif isinstance(raw_input, list) and all(isinstance(t, str) for t in raw_input):
            texts = list(raw_input)
        elif isinstance(raw_input, list) and all(isinstance(t, int) for t in raw_input):
            texts = [encoding_for_model(model).decode(raw_input)]
        elif isinstance(raw_input, list) and all(isinstance(t, list) for t in raw_input):
            texts = [encoding_for_model(model).decode(t) for t in raw_input]
        else:
            texts = []

        def refuse(message: str) -> None:
            self._send_error(400, message, param="input")
            self._log_request("POST", path, body, 400, inputs=len(texts))

        if not texts or any(t == "" for t in texts):
            return refuse(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
            )
        if len(texts) > MAX_EMBEDDING_INPUTS:
            return refuse(
                f"'$.input' is invalid: too many inputs ({len(texts)}); the maximum is {MAX_EMBEDDING_INPUTS}."
            )
        counts = [count_tokens(t, model) for t in texts]
        longest = max(counts)
        if longest > MAX_EMBEDDING_INPUT_TOKENS:
            return refuse(
                f"This model's maximum context length is {MAX_EMBEDDING_INPUT_TOKENS} tokens, however you requested "
                f"{longest} tokens ({longest} in your prompt; 0 for the completion). Please reduce your prompt; or "
                "completion length."
            )
        if sum(counts) > MAX_EMBEDDING_REQUEST_TOKENS:
            return refuse(f"Requested {sum(counts)} tokens, max {MAX_EMBEDDING_REQUEST_TOKENS} tokens per request")
        total = sum(counts)
        allowed, rate_headers = self.state._spend(total)
        if not allowed:
            self._send_error(429, "Rate limit reached for requests", rate_headers)
            self._log_request("POST", path, body, 429, inputs=len(texts), tokens=total)
            return None
        self.state._embedding_started()
        try:
            time.sleep(self.state.embedding_latency + self.state.embedding_latency_per_token * total)
        finally:
            self.state._embedding_finished()
        dimensions = int(body.get("dimensions") or DEFAULT_EMBEDDING_DIM)
        vectors = hashing_embed(texts, dimensions)
        if self.state.dense_embeddings:
            vectors = dense_projection(vectors)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(vector.astype("<f4").tobytes()).decode()
                    if as_base64
                    else vector.astype(np.float64).tolist()
                ),
            }
            for i, vector in enumerate(vectors)
        ]
        self._send_json(
            200,
            {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": total, "total_tokens": total}},
            rate_headers,
        )
        self._log_request("POST", path, body, 200, inputs=len(texts), tokens=total)


# Helpers -------------------------------------------------------------------------------

_PROJECTIONS: dict[int, Any] = {}


def dense_projection(vectors: Any) -> Any:
    """Dense unit vectors with nearly the same cosine similarities as `vectors` (n, dim).

    A fixed random rotation-like projection (seeded Gaussian, Johnson-Lindenstrauss): every
    coordinate of every vector is non-zero, as in a model's embeddings, while texts that the
    hashing embedder finds similar stay similar, so retrieval quality is kept. Benchmarks
    project their query vectors the same way.
    """
    import numpy as np

    dim = int(vectors.shape[1])
    if dim not in _PROJECTIONS:
        rng = np.random.default_rng(20261203)
        _PROJECTIONS[dim] = (rng.standard_normal((dim, dim)) / np.sqrt(dim)).astype(np.float32)
    dense = np.asarray(vectors, dtype=np.float32) @ _PROJECTIONS[dim]
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return dense / np.where(norms == 0, 1.0, norms)


def _parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, Any], str, bytes]:
    """Form fields (repeated names become lists), the file's name and its bytes."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, Any] = {}
    filename, audio = "", b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        part_filename = part.get_filename()
        if part_filename is not None or name == "file":
            filename, audio = part_filename or "audio", payload
            continue
        value: Any = payload.decode("utf-8", "replace")
        key = str(name)
        if key.endswith("[]"):
            fields.setdefault(key[:-2], []).append(value)
        else:
            fields[key] = value
    return fields, filename, audio


def _audio_duration(audio: bytes, filename: str) -> float | None:
    """Duration in seconds as ffprobe reads it, or None when it is not audio."""
    suffix = Path(filename).suffix or ".bin"
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(audio)
        handle.flush()
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", handle.name],
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        duration = float(probe.stdout.strip())
    except ValueError:
        return None
    return duration if probe.returncode == 0 and duration > 0 else None


def _default_segments(duration: float) -> list[dict[str, Any]]:
    segments = []
    start = 0.0
    while start < duration:
        end = min(duration, start + SEGMENT_SECONDS)
        segments.append({"start": round(start, 2), "end": round(end, 2), "text": f"Segment at {int(start)} seconds."})
        start = end
    return segments


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _default_reply(messages: list[dict[str, Any]], *, json_mode: bool) -> str:
    from core.ai.extractive import find_action_items, find_decisions, split_sentences, top_sentences

    everything = "\n".join(_content_text(m.get("content")) for m in messages)
    user_text = next((_content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    if json_mode:
        sentences = split_sentences(user_text)
        return json.dumps(
            {
                "summary": " ".join(top_sentences(sentences, limit=3)),
                "decisions": find_decisions(sentences),
                "action_items": [
                    {"task": a.text, "owner": a.owner, "due": a.due} for a in find_action_items(sentences)
                ],
                "topics": [],
            }
        )
    source = re.search(r"\[1\](.*?)(?=\n\s*\[2\]|\Z)", everything, re.S)
    if source:
        sentences = split_sentences(source.group(1)) or [source.group(1).strip()]
        best = next((s for s in sentences if len(s.split()) >= 4), sentences[0])
        return f"{best.rstrip()} [1]"
    return f"Fake answer to: {user_text.strip()[:200]}"


# Fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake OpenAI server, clean for this test (no faults, handlers or log)."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


# Timeouts of the client in tests: far above any fake answer on a busy machine (see openai_provider).
CLIENT_TIMEOUT_SECONDS = "120"


def use_fake_openai(monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, **settings: str) -> Any:
    """Point the settings at `fake` (plus QUORUM_<NAME>=value for each extra setting) and
    return a fresh provider. The caller's monkeypatch undoes the environment; call
    `restore_settings()` after it to drop the cached settings and provider.
    """
    from core.ai import get_provider, reset_provider
    from core.platform.config import get_settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    for name, value in settings.items():
        monkeypatch.setenv(f"QUORUM_{name.upper()}", str(value))
    get_settings.cache_clear()
    reset_provider()
    return get_provider()


def restore_settings() -> None:
    from core.ai import reset_provider
    from core.platform.config import get_settings

    get_settings.cache_clear()
    reset_provider()


@pytest.fixture
def openai_provider(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """get_provider() as an OpenAIProvider talking to the fake server, for this test only.

    Client timeouts are generous (CLIENT_TIMEOUT_SECONDS): on a loaded shared machine the
    fake's ffprobe and the database can be slow, and a timed-out request would be retried,
    doubling the calls tests count. Tests of timeouts set their own short ones. Settings and
    provider caches are cleared before and after, so later tests see the offline default again.
    """
    provider = use_fake_openai(
        monkeypatch,
        fake_openai,
        openai_timeout_seconds=CLIENT_TIMEOUT_SECONDS,
        openai_transcription_timeout_seconds=CLIENT_TIMEOUT_SECONDS,
    )
    yield provider
    monkeypatch.undo()
    restore_settings()


@pytest.fixture
def configure(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """configure(**settings) -> a fresh OpenAIProvider on the fake with those QUORUM_ settings
    (client timeouts CLIENT_TIMEOUT_SECONDS unless given), for this test only."""

    def _configure(**settings: str) -> Any:
        settings.setdefault("openai_timeout_seconds", CLIENT_TIMEOUT_SECONDS)
        settings.setdefault("openai_transcription_timeout_seconds", CLIENT_TIMEOUT_SECONDS)
        return use_fake_openai(monkeypatch, fake_openai, **settings)

    yield _configure
    monkeypatch.undo()
    restore_settings()


@pytest.fixture
def offline_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """get_provider() as the OfflineProvider (no API key), caches cleared before and after."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    restore_settings()
    from core.ai import get_provider

    yield get_provider()
    monkeypatch.undo()
    restore_settings()
