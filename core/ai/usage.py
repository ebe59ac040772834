"""The usage ledger: one row per AI call, its tokens, audio seconds and estimated cost.

Providers call record_usage after every call; the admin page calls summarize_usage.
Costs are estimates from the price table in Settings (USD per 1M tokens for text models,
per minute of audio for transcription models); a model missing from the table costs 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.access.rbac import Actor, require
from core.ai.base import UsageContext
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import QuotaExceeded
from core.platform.models import UsageRecord, User

log = logging.getLogger(__name__)

_MILLION = Decimal(1_000_000)
_COST_QUANTUM = Decimal("0.000001")  # the ledger column is NUMERIC(12, 6)


def estimate_cost(*, model: str, input_tokens: int = 0, output_tokens: int = 0, audio_seconds: float = 0.0) -> Decimal:
    """Estimated USD cost of one call from Settings.prices; 0 for a model without a price.

    Prices: "input" and "output" per 1M tokens, "audio_minute" per minute of audio.
    Pure; rounds to the ledger's six decimal places.
    """
    prices = get_settings().prices.get(model, {})
    cost = Decimal(0)
    cost += Decimal(input_tokens) * Decimal(prices.get("input", 0)) / _MILLION
    cost += Decimal(output_tokens) * Decimal(prices.get("output", 0)) / _MILLION
    cost += Decimal(str(audio_seconds)) / Decimal(60) * Decimal(prices.get("audio_minute", 0))
    return cost.quantize(_COST_QUANTUM)


def record_usage(
    *,
    usage: UsageContext,
    provider: str,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    audio_seconds: float = 0.0,
) -> None:
    """Write one ledger row for an AI call that has already happened. Commits its own session.

    Never raises on a database error: the call it records is done (and paid for), so
    failing it now would only make a caller retry and pay twice. The error is logged.
    """
    cost = estimate_cost(
        model=model, input_tokens=input_tokens, output_tokens=output_tokens, audio_seconds=audio_seconds
    )
    try:
        with session_scope() as session:
            session.add(
                UsageRecord(
                    purpose=usage.purpose,
                    provider=provider,
                    model=model,
                    input_tokens=int(input_tokens),
                    output_tokens=int(output_tokens),
                    audio_seconds=float(audio_seconds),
                    cost_usd=cost,
                    user_id=usage.user_id,
                    transcription_job_id=usage.transcription_job_id,
                    document_id=usage.document_id,
                )
            )
    except SQLAlchemyError:
        log.exception("could not record AI usage (%s %s %s)", usage.purpose, provider, model)


@dataclass(frozen=True)
class UsageByDayPurpose:
    """Ledger totals for one UTC day and one purpose (transcription, minutes, embedding, chat)."""

    day: date
    purpose: str
    calls: int
    input_tokens: int
    output_tokens: int
    audio_seconds: float
    cost_usd: float


@dataclass(frozen=True)
class UsageByDayUser:
    """Ledger totals for one UTC day and one user; user_id None is work done for no one user."""

    day: date
    user_id: int | None
    username: str
    calls: int
    tokens: int
    audio_seconds: float
    cost_usd: float


@dataclass(frozen=True)
class UsageByModel:
    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    audio_seconds: float
    cost_usd: float


@dataclass(frozen=True)
class UsageSummary:
    """What the admin page shows. Rows are plain dataclasses: pd.DataFrame(summary.by_day_purpose)."""

    since: date | None
    calls: int
    input_tokens: int
    output_tokens: int
    audio_hours: float
    cost_usd: float
    by_day_purpose: list[UsageByDayPurpose]
    by_day_user: list[UsageByDayUser]
    by_model: list[UsageByModel]


_COST = func.coalesce(func.sum(UsageRecord.cost_usd), 0)


def _totals(*, tokens_together: bool = False) -> list[Any]:
    """The summed columns every breakdown shows, labelled so rows are read by name."""
    columns: list[Any] = [func.count(UsageRecord.id).label("calls")]
    if tokens_together:
        columns.append(func.coalesce(func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens), 0).label("tokens"))
    else:
        columns += [
            func.coalesce(func.sum(UsageRecord.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(UsageRecord.output_tokens), 0).label("output_tokens"),
        ]
    columns += [
        func.coalesce(func.sum(UsageRecord.audio_seconds), 0.0).label("audio_seconds"),
        _COST.label("cost_usd"),
    ]
    return columns


def _amounts(row: Any) -> dict[str, Any]:
    """The summed columns of a _totals() row, as the dataclass fields of the same names."""
    return {
        "calls": int(row.calls),
        "input_tokens": int(row.input_tokens),
        "output_tokens": int(row.output_tokens),
        "audio_seconds": float(row.audio_seconds),
        "cost_usd": float(row.cost_usd),
    }


def _by_day_purpose(session: Session, filters: list[Any], day: Any) -> list[UsageByDayPurpose]:
    rows = session.execute(
        select(day, UsageRecord.purpose, *_totals())
        .where(*filters)
        .group_by(day, UsageRecord.purpose)
        .order_by(day, UsageRecord.purpose)
    ).all()
    return [
        UsageByDayPurpose(
            day=row.day,
            purpose=row.purpose,
            **_amounts(row),
        )
        for row in rows
    ]


def _by_day_user(session: Session, filters: list[Any], day: Any) -> list[UsageByDayUser]:
    rows = session.execute(
        select(day, UsageRecord.user_id, User.username, *_totals(tokens_together=True))
        .outerjoin(User, User.id == UsageRecord.user_id)
        .where(*filters)
        .group_by(day, UsageRecord.user_id, User.username)
        .order_by(day, User.username)
    ).all()
    return [
        UsageByDayUser(
            day=row.day,
            user_id=row.user_id,
            username=row.username or ("(system)" if row.user_id is None else f"user {row.user_id}"),
            calls=int(row.calls),
            tokens=int(row.tokens),
            audio_seconds=float(row.audio_seconds),
            cost_usd=float(row.cost_usd),
        )
        for row in rows
    ]


def _by_model(session: Session, filters: list[Any]) -> list[UsageByModel]:
    rows = session.execute(
        select(UsageRecord.provider, UsageRecord.model, *_totals())
        .where(*filters)
        .group_by(UsageRecord.provider, UsageRecord.model)
        .order_by(_COST.desc(), UsageRecord.model)
    ).all()
    return [
        UsageByModel(
            provider=row.provider,
            model=row.model,
            **_amounts(row),
        )
        for row in rows
    ]


def summarize_usage(*, actor: Actor, since: date | None = None) -> UsageSummary:
    """Totals of the ledger from `since` (a UTC day, inclusive; None for all time). Read-only.

    Raises PermissionDenied unless the actor holds view_jobs.
    """
    require(actor, "view_jobs")
    day = cast(func.timezone("UTC", UsageRecord.created_at), Date).label("day")
    filters: list[Any] = []
    if since is not None:
        filters.append(UsageRecord.created_at >= datetime.combine(since, time.min, tzinfo=UTC))
    with session_scope() as session:
        total = session.execute(select(*_totals()).where(*filters)).one()
        return UsageSummary(
            since=since,
            calls=int(total.calls),
            input_tokens=int(total.input_tokens),
            output_tokens=int(total.output_tokens),
            audio_hours=float(total.audio_seconds) / 3600.0,
            cost_usd=float(total.cost_usd),
            by_day_purpose=_by_day_purpose(session, filters, day),
            by_day_user=_by_day_user(session, filters, day),
            by_model=_by_model(session, filters),
        )


def check_ai_budget(actor: Actor) -> None:
    """Refuse a new AI-costing action of `actor` once their ledger total over the last
    settings.user_ai_budget_days days reaches settings.user_ai_budget_usd (no limit when
    unset). Read-only. Raises QuotaExceeded with when it frees up; work already queued runs."""
    settings = get_settings()
    budget = settings.user_ai_budget_usd
    if budget is None:
        return
    since = datetime.now(UTC) - timedelta(days=settings.user_ai_budget_days)
    with session_scope() as session:
        spent, oldest = session.execute(
            select(func.coalesce(func.sum(UsageRecord.cost_usd), 0), func.min(UsageRecord.created_at)).where(
                UsageRecord.user_id == actor.id, UsageRecord.created_at >= since
            )
        ).one()
    if Decimal(spent) < budget:
        return
    frees = (oldest + timedelta(days=settings.user_ai_budget_days)) if oldest else datetime.now(UTC)
    raise QuotaExceeded(
        f"You have used ${Decimal(spent):.2f} of your ${budget:.2f} AI budget for the last "
        f"{settings.user_ai_budget_days} days, so Quorum cannot start more AI work for you now. "
        f"Ask an admin to raise QUORUM_USER_AI_BUDGET_USD, or try again after {frees:%Y-%m-%d %H:%M} UTC."
    )
