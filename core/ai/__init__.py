"""The one place that talks to AI APIs. Import the provider with get_provider().

    from core.ai import get_provider
    provider = get_provider()          # OpenAIProvider with OPENAI_API_KEY, else OfflineProvider

Submodules import lazily here so core.ai.base stays importable from anywhere (core.ai.usage
imports it, and the providers import core.ai.usage).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from core.platform.config import get_settings

if TYPE_CHECKING:
    from core.ai.base import AIProvider

_lock = threading.Lock()
_provider: AIProvider | None = None


def get_provider() -> AIProvider:
    """The process's provider: OpenAI-compatible when OPENAI_API_KEY is set, else offline.

    Built once per process; call reset_provider() after changing settings (tests).
    """
    global _provider
    provider = _provider
    if provider is not None:
        return provider
    with _lock:
        if _provider is None:
            if get_settings().openai_api_key:
                from core.ai.openai_provider import OpenAIProvider

                _provider = OpenAIProvider()
            else:
                from core.ai.offline import OfflineProvider

                _provider = OfflineProvider()
        return _provider


def reset_provider() -> None:
    """Forget the cached provider so the next get_provider() reads the settings again."""
    global _provider
    with _lock:
        _provider = None


def provider_status() -> str:
    """One line for the UI saying which AI provider answers and with which models."""
    settings = get_settings()
    if not settings.openai_api_key:
        embeddings = (
            "local semantic search embeddings (all-MiniLM-L6-v2)"
            if settings.offline_embedder == "minilm"
            else "lexical search embeddings"
        )
        return (
            f"Offline mode: no OPENAI_API_KEY set; local Whisper tiny.en, extractive minutes and answers, {embeddings}"
        )
    where = settings.openai_host + ("" if settings.openai_base_url else " (default)")
    return (
        f"OpenAI-compatible API at {where}, models: transcription {settings.transcription_model}, "
        f"chat {settings.chat_model}, embeddings {settings.embedding_model} ({settings.embedding_dim} dimensions)"
    )


def is_offline() -> bool:
    """True when the offline provider answers (no OPENAI_API_KEY): pages show a notice."""
    return not get_settings().openai_api_key
