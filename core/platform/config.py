"""The one Settings object. No other module reads os.environ.

Settings come from environment variables (or a .env file). Standard names such as
DATABASE_URL, REDIS_URL and OPENAI_API_KEY are read as they are; Quorum's own settings
carry the QUORUM_ prefix (QUORUM_DATA_DIR, QUORUM_CHUNK_SIZE_TOKENS, ...).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import string
from collections import Counter
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that were ever shipped as examples or defaults: public, so never a secret.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me-quorum-development-cookie-key",
        "replace-with-64-random-characters-from-openssl-rand-hex-32",
        "replace-me",
        "replace-me-too",
    }
)
# Words that mark a value as an example someone forgot to replace.
PLACEHOLDER_WORDS = ("change", "replace", "example", "placeholder", "secret", "quorum", "password", "cookie")
MIN_COOKIE_KEY_BITS = 256  # 32 random bytes
MIN_PRODUCTION_ADMIN_PASSWORD = 12
COOKIE_KEY_FILE = "cookie_key"  # in data_dir, made once in development
_BASE64_CHARACTERS = frozenset(string.ascii_letters + string.digits + "+/=-_")
GENERATE_KEY_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"

# USD prices used to estimate cost in the usage ledger. Per 1M tokens for text models,
# per minute of audio for transcription models. Checked 2026-08; override with
# QUORUM_PRICES='{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}'.
DEFAULT_PRICES: dict[str, dict[str, Decimal]] = {
    "whisper-1": {"audio_minute": Decimal("0.006")},
    "gpt-4o-transcribe": {"audio_minute": Decimal("0.006")},
    "gpt-4o-mini-transcribe": {"audio_minute": Decimal("0.003")},
    "gpt-4o-transcribe-diarize": {"audio_minute": Decimal("0.006")},
    "gpt-4o-mini": {"input": Decimal("0.15"), "output": Decimal("0.60")},
    "gpt-4o": {"input": Decimal("2.50"), "output": Decimal("10.00")},
    "gpt-4.1-mini": {"input": Decimal("0.40"), "output": Decimal("1.60")},
    "text-embedding-3-small": {"input": Decimal("0.02")},
    "text-embedding-3-large": {"input": Decimal("0.13")},
}

# Longest audio, in seconds, a transcription model accepts in one request. Not in the
# API spec; observed limits, kept here so they can be changed without a release.
DEFAULT_MODEL_DURATION_CAPS: dict[str, float] = {
    "gpt-4o-transcribe-diarize": 1400.0,
    "gpt-4o-transcribe": 1500.0,
    "gpt-4o-mini-transcribe": 1500.0,
}


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def _estimated_bits(secret: str) -> float:
    """A generous estimate of a string's randomness: its length times the bits per character
    of the alphabet it is spelled in (hex, base64, or the character classes present), cut
    down when characters or patterns repeat (aaaa..., abab..., 0123456789 0123456789...)."""
    if not secret:
        return 0.0
    if all(ch in string.hexdigits for ch in secret):
        alphabet = 16
    elif all(ch in _BASE64_CHARACTERS for ch in secret) and secret.lower() != secret != secret.upper():
        alphabet = 64
    else:
        classes = (
            (26, str.islower),
            (26, str.isupper),
            (10, str.isdigit),
            (33, lambda ch: not ch.isalnum()),
        )
        alphabet = sum(size for size, test in classes if any(test(ch) for ch in secret))
    counts = Counter(secret)
    observed = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    per_character = math.log2(alphabet) if observed >= 3.0 else observed
    # A repeated pattern (0123456789 0123456789 ...) is worth only its distinct part.
    trigrams = [secret[i : i + 3] for i in range(len(secret) - 2)]
    distinct = len(set(trigrams))
    counted = len(secret) if not trigrams or distinct >= 0.8 * len(trigrams) else distinct
    return counted * per_character


def cookie_key_problem(key: str | None) -> str | None:
    """Why `key` cannot sign production sessions, or None when it looks like 32+ random bytes."""
    if not key:
        return f"production needs QUORUM_COOKIE_KEY: a random secret of at least 32 bytes ({GENERATE_KEY_HINT})"
    lowered = key.lower()
    if key in PLACEHOLDER_SECRETS or any(word in lowered for word in PLACEHOLDER_WORDS):
        return f"QUORUM_COOKIE_KEY is an example value, public to anyone; {GENERATE_KEY_HINT}"
    if _estimated_bits(key) < MIN_COOKIE_KEY_BITS:
        return f"QUORUM_COOKIE_KEY is too weak: it needs at least 32 random bytes; {GENERATE_KEY_HINT}"
    return None


def admin_password_problem(password: str | None) -> str | None:
    """Why `password` is not fit for the first admin of a production install, or None."""
    if not password:
        return "production needs QUORUM_ADMIN_PASSWORD set for the first admin"
    lowered = password.lower()
    if password in PLACEHOLDER_SECRETS or any(word in lowered for word in (*PLACEHOLDER_WORDS, "admin")):
        return "QUORUM_ADMIN_PASSWORD is an example value; choose a real password"
    if len(password) < MIN_PRODUCTION_ADMIN_PASSWORD or len(set(password)) < 6 or _estimated_bits(password) < 60:
        return (
            f"QUORUM_ADMIN_PASSWORD is too weak: use {MIN_PRODUCTION_ADMIN_PASSWORD}+ characters, "
            "not a word or a pattern (a passphrase or a generated password)"
        )
    return None


class Settings(BaseSettings):
    """Validated configuration for every Quorum process."""

    model_config = SettingsConfigDict(
        env_prefix="QUORUM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default=Path(".quorum"), validation_alias=_env("QUORUM_DATA_DIR", "data_dir"))

    # Services. Unset means "start the embedded one in data_dir".
    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL", "database_url"))
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL", "redis_url"))
    storage_url: str | None = Field(default=None, validation_alias=_env("STORAGE_URL", "storage_url"))
    embedded_redis_port: int = 6399
    db_pool_size: int = 5
    # Embedded PostgreSQL sizing (core.platform.embedded.embedded_postgres_settings): unset
    # means sized from this machine's memory and CPUs. Production sets its own server's.
    embedded_pg_shared_buffers_mb: int | None = Field(default=None, ge=16)
    embedded_pg_maintenance_work_mem_mb: int | None = Field(default=None, ge=64)

    # AI provider. No key means the offline provider.
    openai_api_key: str | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY", "openai_api_key"))
    openai_base_url: str | None = Field(default=None, validation_alias=_env("OPENAI_BASE_URL", "openai_base_url"))
    openai_timeout_seconds: float = 60.0
    openai_transcription_timeout_seconds: float = 600.0
    openai_max_retries: int = 3
    transcription_model: str = "whisper-1"
    chat_model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    embedding_dim: int = 1536
    chat_context_tokens: int = 128_000
    prices: dict[str, dict[str, Decimal]] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    # Most a user's own actions may cost in AI calls (usage ledger, USD) over a rolling
    # window; unset = no limit. Checked before chat answers, regenerations, minutes and uploads.
    user_ai_budget_usd: Decimal | None = None
    user_ai_budget_days: int = 30
    offline_whisper_model_dir: Path | None = None
    offline_whisper_threads: int = 2
    # Offline embedder: "hashing" (lexical, built in) or "minilm" (semantic; needs
    # requirements-semantic.txt). Changing it changes the embedding space: re-index.
    offline_embedder: Literal["hashing", "minilm"] = "hashing"

    # Uploads.
    max_document_mb: int = 50
    max_audio_mb: int = 1024
    # What one document may cost to read: a small file can expand enormously (a PDF whose
    # pages share one compressed stream, an XLSX repeating one shared string). Reading runs
    # in a child process held to a deadline and a memory cap.
    max_document_pages: int = 2000
    max_document_characters: int = 10_000_000
    max_document_chunks: int = 10_000
    extraction_timeout_seconds: float = 300.0
    extraction_memory_mb: int = 2048
    # Longest recording accepted: checked from the container at upload (no full decode) and
    # again while the worker decodes it, which stops there.
    max_recording_hours: float = 6.0

    # Chunking and retrieval.
    chunk_size_tokens: int = 500
    chunk_overlap_tokens: int = 60
    # Texts per embedding request (the API takes 2,048 and 300,000 tokens; both caps apply).
    embedding_batch_size: int = 2048
    # Embedding requests in flight per process, within the rate limits the API reports.
    embedding_concurrency: int = Field(default=4, ge=1)
    retrieval_k: int = 8
    retrieval_candidates: int = 40
    hnsw_ef_search: int = 100
    # Filters that leave at most this many chunks are scanned exactly instead of via HNSW
    # (ef_search raised by the filter's selectivity). Hybrid CPU at 1536 dimensions, 500-token
    # chunks, 100k rows, vectors stored in the row: exact / HNSW p50 19 / 20 ms for 2,000
    # chunks, 37 / 41 for 5,000, 59 / 33 for 10,000 (HNSW top 10: 97-98% of exact's).
    retrieval_exact_scan_chunks: int = 6_000
    # Vector index segments (core.documents.vector_segments): new chunks are scanned exactly
    # until this many are waiting, then indexed in bulk; indexes of similar size are merged
    # this many at a time; a tail untouched this long is indexed whatever its size.
    vector_tail_rows: int = Field(default=2000, ge=1)
    vector_merge_factor: int = Field(default=4, ge=2)
    vector_idle_seconds: float = 30.0
    # While chunks are still being written, no merge builds an index of a larger size tier
    # (vector_tail_rows x vector_merge_factor^n) than one of this many rows:
    # a long build lets the exactly-scanned tail grow behind it (26,000 rows during a 32,000-row
    # merge, benchmarks/results/ingest.md). Everything is merged into one once writing stops.
    vector_merge_max_rows_while_writing: int = Field(default=10_000, ge=1)
    # maintenance_work_mem of an index build; unset = the server's (embedded: sized for the machine).
    vector_index_build_memory_mb: int | None = Field(default=None, ge=64)
    # A chunk found only by vector similarity counts as relevant below this cosine distance.
    retrieval_max_distance: float = 0.8
    # BM25 of the full-text arm: k1 (term-frequency saturation) and b (length normalisation).
    retrieval_bm25_k1: float = Field(default=0.9, ge=0)
    retrieval_bm25_b: float = Field(default=0.4, ge=0, le=1)
    # Full-text candidates: the chunks holding the question's rare words (while they add up to
    # this many) and this many more holding the most of its rarest words (common words re-rank).
    # 150 kept BM25's exact top 10 in full on 100k chunks (100: 99.4%), ~1 ms a search less than 250.
    retrieval_text_scan_chunks: int = Field(default=150, ge=1)
    # An accepted correction is offered for a new question this close (cosine distance).
    correction_max_distance: float = 0.25
    answer_history_tokens: int = 3000
    answer_context_tokens: int = 6000

    # Audio and transcription.
    transcription_max_request_mb: float = 24.0
    transcription_segment_seconds: float = 600.0
    transcription_overlap_seconds: float = 2.0
    transcription_concurrency: int = 4
    model_duration_caps: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MODEL_DURATION_CAPS))
    minutes_chunk_tokens: int = 6000

    # Jobs.
    job_stale_after_seconds: int = 120
    job_heartbeat_seconds: float = 10.0
    job_time_limit_seconds: int = 4 * 3600
    job_stale_check_seconds: int = 60  # how often the maintenance actor looks for stale jobs
    job_max_attempts: int = 5  # a job found stale after this many claims is failed, not requeued
    # Dramatiq's RedisBroker puts a dead worker's unacked messages back after this long without
    # its heartbeat (Dramatiq's default). The redelivered job resumes only if its own heartbeat
    # is older than job_stale_after_seconds by then; otherwise the stale-job watch requeues it.
    broker_heartbeat_timeout_seconds: float = 60.0
    # Commands out of a million that also run that check on their queue (Dramatiq's default).
    broker_maintenance_chance: int = 1000

    # Sign-in.
    cookie_name: str = "quorum_auth"
    # Signs the sign-in cookie. Unset in development: a random key made once in data_dir.
    cookie_key: str | None = None
    # Secure flag of the sign-in cookie. Unset: set when the page is served over https
    # (directly or behind a proxy sending X-Forwarded-Proto: https).
    cookie_secure: bool | None = None
    cookie_expiry_days: float = 7.0
    # Wrong passwords for one account from one client address before each further one makes
    # that address wait (1 s, doubling, up to login_lockout_minutes) - see sign_in_throttle.
    login_max_failures: int = 5
    login_address_max_failures: int = 20  # the same for all accounts tried from one address
    login_account_max_failures: int = 50  # from anywhere: the account locks for new sign-ins
    login_lockout_minutes: int = 15
    # Behind reverse proxies, the client address is this many entries from the right of
    # X-Forwarded-For (0: the connecting address; never trust the header without a proxy).
    forwarded_for_hops: int = 0
    admin_username: str = "admin"
    admin_email: str = "admin@example.com"
    admin_password: str | None = None
    # False hides the username/password form (single sign-on only). Passwords stay stored.
    password_sign_in: bool = True

    # Single sign-on with OpenID Connect: on when an issuer (or metadata URL) and a client id
    # are set. core.access.oidc turns these into Streamlit's [auth] settings at start.
    oidc_issuer: str | None = None
    oidc_metadata_url: str | None = None  # default: <issuer>/.well-known/openid-configuration
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # Register exactly this URL with the provider. Streamlit fills in {port}.
    oidc_redirect_url: str = "http://localhost:{port}/oauth2callback"
    oidc_provider_label: str = "single sign-on"  # the button reads "Sign in with <label>"
    oidc_scopes: str = "openid email profile"
    oidc_prompt: str = "select_account"  # sent to the provider; "" sends none
    # First sign-in of someone Quorum does not know: "active" (ready at once), "approval"
    # (an admin approves first) or "refuse" (only people an admin created may sign in).
    oidc_new_users: Literal["active", "approval", "refuse"] = "approval"
    # Role of new users; "" with a role map refuses people none of whose groups is mapped.
    oidc_default_role: str = "user"
    oidc_roles_claim: str | None = None  # e.g. "groups" or "roles"
    # {"claim value": "Quorum role"}; the first entry the user's claim holds wins, at every sign-in.
    oidc_role_map: dict[str, str] = Field(default_factory=dict)
    # Providers that never send email_verified (Entra ID): trust their email claim anyway.
    oidc_trust_unverified_email: bool = False

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        """Accept postgres:// and postgresql:// URLs but always talk through psycopg 3."""
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError("DATABASE_URL must be a PostgreSQL URL (postgresql://...)")
        return value

    @field_validator(
        "openai_api_key", "openai_base_url", "redis_url", "storage_url", "oidc_issuer", "oidc_metadata_url",
        "oidc_client_id", "oidc_client_secret", "oidc_roles_claim",
    )  # fmt: skip
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.environment == "production":
            problem = cookie_key_problem(self.cookie_key) or admin_password_problem(self.admin_password)
            if problem:
                raise ValueError(problem)
        self._check_sign_in_methods()
        if self.chunk_overlap_tokens >= self.chunk_size_tokens:
            raise ValueError("QUORUM_CHUNK_OVERLAP_TOKENS must be smaller than QUORUM_CHUNK_SIZE_TOKENS")
        return self

    @cached_property
    def cookie_signing_key(self) -> bytes:
        """The key signing sign-in cookies: QUORUM_COOKIE_KEY, or in development a random
        key generated once into data_dir (so no two installs share one and it survives
        restarts). Creates that file (mode 0600) on first use."""
        if self.cookie_key:
            return self.cookie_key.encode("utf-8")
        if self.environment == "production":  # refused by the validator; kept for mypy and safety
            raise ValueError("production needs QUORUM_COOKIE_KEY")
        path = self.data_dir / COOKIE_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f"{COOKIE_KEY_FILE}.{secrets.token_hex(8)}.tmp")
            draft.write_text(secrets.token_urlsafe(48), encoding="ascii")
            draft.chmod(0o600)
            # link() is atomic and refuses an existing name: when the app and a worker start
            # together exactly one key wins, and nobody reads a half-written file.
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
            draft.unlink()
        return path.read_text(encoding="ascii").strip().encode("ascii")

    def _check_sign_in_methods(self) -> None:
        oidc_parts = (self.oidc_issuer or self.oidc_metadata_url, self.oidc_client_id, self.oidc_client_secret)
        if any(oidc_parts) and not all(oidc_parts):
            raise ValueError(
                "single sign-on needs QUORUM_OIDC_ISSUER (or QUORUM_OIDC_METADATA_URL), QUORUM_OIDC_CLIENT_ID "
                "and QUORUM_OIDC_CLIENT_SECRET together"
            )
        if not self.password_sign_in and not self.oidc_enabled:
            raise ValueError("QUORUM_PASSWORD_SIGN_IN=false needs single sign-on (QUORUM_OIDC_*) configured")
        if self.oidc_enabled:
            if not self.oidc_redirect_url.rstrip("/").endswith("/oauth2callback"):
                raise ValueError("QUORUM_OIDC_REDIRECT_URL must end with /oauth2callback")
            if self.environment == "production" and "{port}" in self.oidc_redirect_url:
                raise ValueError(
                    "production needs QUORUM_OIDC_REDIRECT_URL set to the public URL, e.g. "
                    "https://quorum.example.com/oauth2callback"
                )

    @property
    def oidc_enabled(self) -> bool:
        """True when single sign-on (OpenID Connect) is configured."""
        return bool((self.oidc_issuer or self.oidc_metadata_url) and self.oidc_client_id and self.oidc_client_secret)

    @property
    def oidc_server_metadata_url(self) -> str | None:
        if self.oidc_metadata_url:
            return self.oidc_metadata_url
        if self.oidc_issuer:
            return self.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
        return None

    @property
    def offline(self) -> bool:
        """True when no API key is configured and the offline provider answers."""
        return not self.openai_api_key

    @property
    def embedding_requests_in_flight(self) -> int:
        """Embedding requests worth running at once in a process: embedding_concurrency with
        an API (they wait on the network), 1 offline (the embedder is this process's CPU)."""
        return 1 if self.offline else max(1, self.embedding_concurrency)

    @property
    def openai_host(self) -> str:
        """Where AI calls go, for people to read: the host (and port) of OPENAI_BASE_URL only,
        never its user, password, path or query (a gateway URL may carry a key in them)."""
        parts = urlsplit(self.openai_base_url or "https://api.openai.com/v1")
        try:
            port = parts.port
        except ValueError:
            port = None
        host = parts.hostname or "an unreadable OPENAI_BASE_URL"
        return f"{host}:{port}" if port else host

    @property
    def max_document_bytes(self) -> int:
        return self.max_document_mb * 1024 * 1024

    @property
    def max_audio_bytes(self) -> int:
        return self.max_audio_mb * 1024 * 1024

    @property
    def max_recording_seconds(self) -> float:
        return self.max_recording_hours * 3600

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "files"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
