"""Small UI helpers every page shares. UI only: no database, no AI client, no queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from core.access.rbac import Actor
from core.platform.errors import QuorumError
from core.platform.timecodes import short_clock
from ui import session_keys, untrusted

T = TypeVar("T")


def current_actor() -> Actor:
    """The signed-in user. streamlit_app.py guarantees one exists on every routed page."""
    actor = st.session_state.get(session_keys.ACTOR)
    if actor is None:
        st.error("Your session has ended. Sign in again.")
        st.stop()
    assert isinstance(actor, Actor)
    return actor


def run_action(action: Callable[[], T], *, success: str | None = None) -> T | None:
    """Call a core service; show its QuorumError as a readable message instead of a traceback."""
    try:
        result = action()
    except QuorumError as error:
        st.error(str(error), icon=":material/error:")
        return None
    if success:
        st.toast(success, icon=":material/check_circle:")
    return result


def format_seconds(seconds: float | None) -> str:
    """1:02:03 or 2:03 for a position or duration in seconds; a dash when unknown."""
    return "—" if seconds is None else short_clock(seconds)


def format_bytes(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def plain(text: str) -> str:
    """Untrusted text (transcripts, names, model output) made inert for st.markdown/caption,
    on one line: ui.untrusted.plain (no link, no image, no formatting, no bare URL link)."""
    return untrusted.plain(" ".join(text.split()))
