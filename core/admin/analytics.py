"""Usage analytics for the admin page: plain rows, one list per chart.

Tokens and cost come from the usage ledger (core.ai.usage.summarize_usage); audio hours,
jobs per day and the thumbs-up share come from the jobs, documents and feedback tables.
Days are UTC. Every list is sorted by day; pd.DataFrame(rows) gives a chart-ready frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

from core.access.rbac import Actor, require
from core.ai.usage import UsageSummary, summarize_usage
from core.platform.db import session_scope
from core.platform.models import Document, MessageFeedback, TranscriptionJob
from core.platform.statuses import Rating, RecordingStatus


@dataclass(frozen=True)
class JobsOnDay:
    """Jobs created on one day, by kind (transcription, indexing) and current status."""

    day: date
    kind: str
    status: str
    jobs: int


@dataclass(frozen=True)
class AudioOnDay:
    """Recordings whose transcription completed on one day, and their total length."""

    day: date
    recordings: int
    audio_hours: float


@dataclass(frozen=True)
class FeedbackOnDay:
    """Ratings given on one day; share_good is thumbs-up / all ratings (0..1)."""

    day: date
    good: int
    bad: int
    share_good: float


@dataclass(frozen=True)
class UsageAnalytics:
    since: date | None
    usage: UsageSummary  # tokens and cost by day x purpose, by day x user, by model
    jobs_per_day: list[JobsOnDay]
    audio_per_day: list[AudioOnDay]
    feedback_per_day: list[FeedbackOnDay]
    audio_hours: float  # transcribed recordings, all days shown
    share_good: float | None  # over all ratings shown; None when there are none


def _utc_day(column: Any) -> ColumnElement[date]:
    return cast(func.timezone("UTC", column), Date)


def usage_analytics(*, actor: Actor, since: date | None = None) -> UsageAnalytics:
    """Everything the Usage tab charts, from `since` (a UTC day, inclusive; None for all
    time). Read-only. Raises PermissionDenied without view_jobs.
    """
    require(actor, "view_jobs")
    usage = summarize_usage(actor=actor, since=since)
    start = datetime.combine(since, time.min, tzinfo=UTC) if since else None

    with session_scope() as session:
        jobs: list[JobsOnDay] = []
        transcription_day = _utc_day(TranscriptionJob.created_at)
        query = select(
            transcription_day.label("day"), TranscriptionJob.status, func.count(TranscriptionJob.id).label("jobs")
        ).group_by(transcription_day, TranscriptionJob.status)
        if start:
            query = query.where(TranscriptionJob.created_at >= start)
        jobs += [
            JobsOnDay(day=row.day, kind="transcription", status=row.status, jobs=int(row.jobs))
            for row in session.execute(query)
        ]

        document_day = _utc_day(Document.upload_date)
        query = select(document_day.label("day"), Document.status, func.count(Document.id).label("jobs")).group_by(
            document_day, Document.status
        )
        if start:
            query = query.where(Document.upload_date >= start)
        jobs += [
            JobsOnDay(day=row.day, kind="indexing", status=row.status, jobs=int(row.jobs))
            for row in session.execute(query)
        ]
        jobs.sort(key=lambda row: (row.day, row.kind, row.status))

        completed_day = _utc_day(TranscriptionJob.completed_at)
        audio_query = (
            select(
                completed_day.label("day"),
                func.count(TranscriptionJob.id).label("recordings"),
                func.coalesce(func.sum(TranscriptionJob.duration_seconds), 0.0).label("audio_seconds"),
            )
            .where(TranscriptionJob.status == RecordingStatus.COMPLETED, TranscriptionJob.completed_at.is_not(None))
            .group_by(completed_day)
            .order_by(completed_day)
        )
        if start:
            audio_query = audio_query.where(TranscriptionJob.completed_at >= start)
        audio = [
            AudioOnDay(day=row.day, recordings=int(row.recordings), audio_hours=float(row.audio_seconds) / 3600.0)
            for row in session.execute(audio_query)
        ]

        feedback_day = _utc_day(MessageFeedback.created_at)
        good = func.count(MessageFeedback.id).filter(MessageFeedback.rating == Rating.GOOD)
        bad = func.count(MessageFeedback.id).filter(MessageFeedback.rating == Rating.BAD)
        feedback_query = (
            select(feedback_day.label("day"), good.label("good"), bad.label("bad"))
            .group_by(feedback_day)
            .order_by(feedback_day)
        )
        if start:
            feedback_query = feedback_query.where(MessageFeedback.created_at >= start)
        feedback = [
            FeedbackOnDay(day=row.day, good=row.good, bad=row.bad, share_good=row.good / max(1, row.good + row.bad))
            for row in session.execute(feedback_query)
        ]

    ratings = sum(row.good + row.bad for row in feedback)
    return UsageAnalytics(
        since=since,
        usage=usage,
        jobs_per_day=jobs,
        audio_per_day=audio,
        feedback_per_day=feedback,
        audio_hours=sum(row.audio_hours for row in audio),
        share_good=(sum(row.good for row in feedback) / ratings) if ratings else None,
    )
