"""What the UI says about the AI provider in use."""

from __future__ import annotations

from core.config import get_settings


def provider_notice() -> str | None:
    """A one-line notice for every page when the offline provider is active, else None."""
    settings = get_settings()
    if not settings.offline:
        return None
    return (
        "Offline mode: no OPENAI_API_KEY is set, so Quorum transcribes with a local Whisper "
        "(tiny.en), writes extractive minutes and answers by quoting your sources. "
        "Set OPENAI_API_KEY (and optionally OPENAI_BASE_URL) for AI-written minutes and answers."
    )
