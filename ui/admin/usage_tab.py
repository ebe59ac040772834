"""The Usage tab: tokens, cost, audio hours, jobs and thumbs-up share over time. UI only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from core.access import Actor
from core.admin import usage_analytics
from ui.common import format_seconds, run_action

NO_COST = "No cost in this period (the offline provider is free)."


def _frame(rows: list[Any]) -> pd.DataFrame:
    return pd.DataFrame([vars(row) for row in rows])


def _bar_chart(title: str, frame: pd.DataFrame, *, y: str, color: str | None = None, empty: str = "") -> None:
    """A titled bar chart per day, or a sentence when there is nothing to draw: an all-zero
    series would be drawn as an empty plot with an axis of "0.000000" ticks."""
    st.markdown(f"**{title}**")
    if frame.empty or not frame[y].abs().sum():
        st.caption(empty or "Nothing in this period.")
        return
    st.bar_chart(frame, x="day", y=y, color=color, x_label="", y_label="")


def usage_tab(actor: Actor) -> None:
    periods = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "All time": None}
    period = st.segmented_control("Period", list(periods), default="Last 30 days", key="admin_usage_period")
    days = periods.get(period or "Last 30 days")
    since = (datetime.now(UTC) - timedelta(days=days - 1)).date() if days else None
    data = run_action(lambda: usage_analytics(actor=actor, since=since)).value
    if data is None:
        return
    usage = data.usage
    cols = st.columns(4)
    cols[0].metric("Estimated cost", f"${usage.cost_usd:,.2f}")
    cols[1].metric("Tokens", f"{usage.input_tokens + usage.output_tokens:,}")
    cols[2].metric("Audio transcribed", format_seconds(data.audio_hours * 3600), help="hours:minutes:seconds")
    cols[3].metric("Thumbs up", "—" if data.share_good is None else f"{data.share_good:.0%}")

    if usage.by_day_purpose:
        purposes = _frame(usage.by_day_purpose)
        purposes["tokens"] = purposes["input_tokens"] + purposes["output_tokens"]
        left, right = st.columns(2)
        with left:
            _bar_chart("Tokens per day by purpose", purposes, y="tokens", color="purpose")
        with right:
            _bar_chart("Cost per day by purpose (USD)", purposes, y="cost_usd", color="purpose", empty=NO_COST)
    else:
        st.caption("No AI calls recorded in this period.")
    if usage.by_day_user:
        users = _frame(usage.by_day_user)
        left, right = st.columns(2)
        with left:
            _bar_chart("Tokens per day by user", users, y="tokens", color="username")
        with right:
            _bar_chart("Cost per day by user (USD)", users, y="cost_usd", color="username", empty=NO_COST)

    left, right = st.columns(2)
    with left:
        audio = _frame(data.audio_per_day) if data.audio_per_day else pd.DataFrame({"day": [], "audio_hours": []})
        audio["audio_minutes"] = audio["audio_hours"] * 60
        _bar_chart(
            "Audio minutes transcribed per day",
            audio,
            y="audio_minutes",
            empty="No recordings transcribed in this period.",
        )
    with right:
        st.markdown("**Jobs per day**")
        if data.jobs_per_day:
            jobs = _frame(data.jobs_per_day).groupby(["day", "kind"], as_index=False)["jobs"].sum()
            st.bar_chart(jobs, x="day", y="jobs", color="kind")
        else:
            st.caption("No jobs in this period.")
    st.markdown("**Share of thumbs up per day**")
    if data.feedback_per_day:
        st.line_chart(_frame(data.feedback_per_day), x="day", y="share_good")
    else:
        st.caption("No ratings in this period.")
    if usage.by_model:
        st.markdown("**By model**")
        st.dataframe(_frame(usage.by_model), hide_index=True)
