"""Small pieces the admin tabs share. UI only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import streamlit as st

from ui.common import flash_and_rerun, run_action

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ALL = "All"
RATING_WORDS = {"good": "Thumbs up", "bad": "Thumbs down"}
CUT_CHARACTERS = 90


def apply_action(action: Callable[[], object], success: str) -> None:
    """Run a core action; on success rerun so every table refreshes, and say `success`."""
    if run_action(action).ok:
        flash_and_rerun(success)


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= CUT_CHARACTERS else text[: CUT_CHARACTERS - 1].rstrip() + "…"


def choice(value: str) -> str | None:
    return None if value == ALL else value


def export_buttons(name: str, *, csv: Callable[[], bytes], xlsx: Callable[[], bytes]) -> None:
    """CSV and Excel download buttons. The export runs (and is audited) only when clicked."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    csv_col, xlsx_col, _ = st.columns([1, 1, 4])
    for column, label, data, suffix, mime in (
        (csv_col, "CSV", csv, "csv", "text/csv"),
        (xlsx_col, "Excel", xlsx, "xlsx", XLSX_MIME),
    ):
        column.download_button(
            label,
            data=data,
            file_name=f"quorum-{name}-{stamp}.{suffix}",
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            key=f"admin_{name}_{suffix}",
        )
