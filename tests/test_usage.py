"""core.ai.usage: cost estimates, the ledger write, and the admin summary."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import select

from core.access.rbac import Actor
from core.ai.base import UsageContext
from core.ai.usage import estimate_cost, record_usage, summarize_usage
from core.platform.db import session_scope
from core.platform.errors import PermissionDenied
from core.platform.models import UsageRecord


def test_estimate_cost_uses_the_price_table() -> None:
    # gpt-4o-mini: $0.15 in / $0.60 out per 1M tokens.
    assert estimate_cost(model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=500_000) == Decimal("0.450000")
    # whisper-1: $0.006 per minute.
    assert estimate_cost(model="whisper-1", audio_seconds=90) == Decimal("0.009000")
    assert estimate_cost(model="text-embedding-3-small", input_tokens=1000) == Decimal("0.000020")
    assert estimate_cost(model="no-such-model", input_tokens=10**9) == Decimal(0)


def _rows_for(user_id: int) -> list[UsageRecord]:
    with session_scope() as session:
        return list(session.scalars(select(UsageRecord).where(UsageRecord.user_id == user_id).order_by(UsageRecord.id)))


def test_record_usage_writes_one_row_with_cost_and_attribution(member: Actor) -> None:
    record_usage(
        usage=UsageContext(purpose="chat", user_id=member.id),
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=2000,
        output_tokens=100,
    )
    (row,) = _rows_for(member.id)
    assert (row.purpose, row.provider, row.model, row.input_tokens, row.output_tokens) == (
        "chat",
        "openai",
        "gpt-4o-mini",
        2000,
        100,
    )
    assert row.cost_usd == Decimal("0.000360")
    assert row.transcription_job_id is None and row.document_id is None


def test_summarize_usage_totals_per_day_purpose_and_user(admin: Actor, member: Actor) -> None:
    record_usage(
        usage=UsageContext(purpose="transcription", user_id=member.id),
        provider="openai",
        model="whisper-1",
        audio_seconds=1800,
    )
    record_usage(
        usage=UsageContext(purpose="embedding", user_id=member.id),
        provider="openai",
        model="text-embedding-3-small",
        input_tokens=5000,
    )
    before = summarize_usage(actor=admin)
    record_usage(
        usage=UsageContext(purpose="minutes", user_id=member.id),
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1000,
        output_tokens=1000,
    )
    summary = summarize_usage(actor=admin, since=datetime.now(UTC).date())
    after = summarize_usage(actor=admin)
    assert after.calls == before.calls + 1
    assert after.output_tokens == before.output_tokens + 1000
    assert summary.audio_hours >= 0.5

    today = datetime.now(UTC).date()
    mine = [r for r in summary.by_day_user if r.user_id == member.id]
    assert len(mine) == 1
    assert mine[0].day == today and mine[0].username == member.username
    assert mine[0].calls == 3 and mine[0].tokens == 7000 and mine[0].audio_seconds == 1800
    assert mine[0].cost_usd == pytest.approx(0.18 + 0.0001 + 0.00075)

    purposes = {r.purpose for r in summary.by_day_purpose if r.day == today}
    assert {"transcription", "embedding", "minutes"} <= purposes
    assert any(r.model == "whisper-1" and r.audio_seconds >= 1800 for r in summary.by_model)

    frame = pd.DataFrame(summary.by_day_purpose)
    assert {"day", "purpose", "cost_usd", "calls"} <= set(frame.columns)
    pivot = frame.pivot_table(index="day", columns="purpose", values="cost_usd", aggfunc="sum")
    assert pivot["transcription"][today] >= 0.18


def test_summarize_usage_since_a_later_day_is_empty(admin: Actor) -> None:
    # Later than any row any test writes (the analytics test writes on a day in 2031).
    summary = summarize_usage(actor=admin, since=date(2099, 1, 1))
    assert summary.calls == 0 and summary.cost_usd == 0 and summary.audio_hours == 0
    assert summary.by_day_purpose == [] and summary.by_day_user == [] and summary.by_model == []


def test_summarize_usage_needs_view_jobs(member: Actor) -> None:
    with pytest.raises(PermissionDenied, match="view_jobs"):
        summarize_usage(actor=member)
