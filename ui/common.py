"""Small UI helpers every page shares. UI only: no database, no AI client, no queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, NoReturn, TypeVar

import streamlit as st

from core.access import Actor
from core.platform.errors import QuorumError
from core.platform.statuses import Visibility
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


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a core call gave back. `ok` is False when it raised a QuorumError (already shown
    to the user); `value` is what it returned, which may itself be None (a delete)."""

    ok: bool
    value: T | None = None


def run_action(action: Callable[[], T], *, success: str | None = None) -> Outcome[T]:
    """Call a core service; show its QuorumError as a readable message instead of a traceback.

    Success and value are separate: `run_action(...).ok` for "did it work", `.value` for what
    it returned (None when it failed).
    """
    try:
        result = action()
    except QuorumError as error:
        st.error(str(error), icon=":material/error:")
        return Outcome(ok=False)
    if success:
        st.toast(success, icon=":material/check_circle:")
    return Outcome(ok=True, value=result)


def flash_and_rerun(message: str) -> NoReturn:
    """Rerun the app (so every table shows the change) and say `message` once at the top of
    the page that show_flash() draws next."""
    st.session_state[session_keys.FLASH] = message
    st.rerun()


def show_flash() -> None:
    """The message a flash_and_rerun() left for this run, shown once."""
    message = st.session_state.pop(session_keys.FLASH, None)
    if message:
        st.success(message, icon=":material/check_circle:")


def date_range_input(label: str, *, key: str, container: Any = None) -> tuple[date | None, date | None]:
    """A from-to date picker: (first day, last day), both inclusive; (None, None) when unset.
    Choosing one day so far means that day alone."""
    picked = (container or st).date_input(label, value=[], key=key, format="YYYY-MM-DD")
    if isinstance(picked, date):
        return picked, picked
    days = [day for day in picked or () if isinstance(day, date)]
    if not days:
        return None, None
    return days[0], days[-1]


def visibility_input(label: str, *, readers: str, key: str) -> str:
    """Who may find an upload: "team" (`readers`, e.g. "everyone who reads documents") or
    "private" (the uploader and admins), as radio buttons; the Visibility value chosen."""
    labels = {Visibility.TEAM.value: f"My team ({readers})", Visibility.PRIVATE.value: "Only me and admins"}
    return str(st.radio(label, options=list(labels), format_func=labels.__getitem__, horizontal=True, key=key))


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
