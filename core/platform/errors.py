"""Errors core raises. Their messages are written for the person who will read them."""

from __future__ import annotations


class QuorumError(Exception):
    """Base of every error Quorum raises on purpose; str(error) is safe to show a user."""


class PermissionDenied(QuorumError):
    """The signed-in user lacks the permission an action needs."""


class NotFound(QuorumError):
    """The thing asked for does not exist, or the user may not see it."""


class InvalidInput(QuorumError):
    """Input that can never succeed as given (wrong type, empty, too large, corrupt)."""


class Conflict(QuorumError):
    """The action would break a rule of the system (duplicate, last admin, ...)."""


class PermanentError(QuorumError):
    """A job failed in a way retrying cannot fix; actors do not retry it."""


class ProviderError(QuorumError):
    """An AI provider call failed; the message says what to do about it."""


class EmbeddingSpaceMismatch(QuorumError):
    """The configured embedder differs from the one the stored vectors were built with."""


class ProviderRejected(ProviderError, PermanentError):
    """The AI provider refused the request in a way retrying cannot fix (bad key, bad
    request, unknown model, file too large); the message says what to change."""


class DuplicateRecording(Conflict):
    """The same recording (same content, same owner) was uploaded before.

    `job_id` and `filename` name the earlier one so the page can open it.
    """

    def __init__(self, message: str, *, job_id: int, filename: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.filename = filename


def describe_error(error: BaseException) -> str:
    """One line for the person who will read it: a QuorumError's own message, else the
    exception's type and the first line of its text (at most 500 characters)."""
    if isinstance(error, QuorumError):
        return str(error)
    text_ = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text_}"[:500] if text_ else type(error).__name__


class QuotaExceeded(QuorumError):
    """The user has spent their AI budget (Settings.user_ai_budget_usd) for now."""
