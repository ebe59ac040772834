"""What every upload is checked for, whatever it holds: a name safe to store and show, and
a known visibility. core.documents.upload and core.meetings.recording_upload both use it."""

from __future__ import annotations

from core.platform.errors import InvalidInput
from core.platform.statuses import VISIBILITIES

MAX_FILENAME_CHARS = 255


def clean_filename(name: str | None, *, fallback: str = "unnamed") -> str:
    """The display name of an upload: its last path part, printable, at most 255 characters
    (keeping a short extension); `fallback` when nothing is left.

    Control and format characters (NUL, DEL, C1, the bidi overrides that make
    "x\\u202egpj.mp3" display as "x3pm.jpg") never reach a stored name.
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip() or fallback
    if len(base) > MAX_FILENAME_CHARS:
        dot = base.rfind(".")
        suffix = base[dot:] if dot > 0 and len(base) - dot <= 16 else ""
        base = base[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return base


def check_visibility(visibility: str) -> None:
    """Raise InvalidInput unless `visibility` is one of the Visibility values."""
    if visibility not in VISIBILITIES:
        raise InvalidInput(f"Visibility must be one of: {', '.join(VISIBILITIES)}.")
