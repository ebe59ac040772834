"""Feedback review: admins read how users rated answers and turn corrections into knowledge.

A reviewer (review_feedback) sees each rating with the question that was asked (the user
message just before the rated answer in its chat), the answer, the correction, who gave
it and when, and the sources the answer cited. They set a review status:

- new: not looked at yet (every rating starts here);
- accepted: the correction is right. An accepted correction becomes trusted context:
  its question's embedding is stored (question_embedding) so retrieval
  (core.chat.corrections.trusted_corrections) offers the correction, cited as a reviewed
  correction, to later questions close to this one;
- rejected: the correction is wrong or not useful; it is never offered.

Moving an accepted correction to rejected or new withdraws it at once (retrieval reads
only accepted rows); the stored embedding is kept so accepting again costs nothing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import aliased

from core.access.audit import record_audit
from core.access.rbac import Actor, require
from core.chat.conversation import question_before
from core.chat.retrieval import embed_question
from core.chat.sources import Source
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound
from core.platform.models import ChatMessage, MessageFeedback, User
from core.platform.statuses import REVIEW_STATUSES, ReviewStatus
from core.platform.tabular import to_csv_bytes, to_xlsx_bytes

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 500
EXPORT_LIMIT = 50_000
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class FeedbackFilters:
    """Which feedback to show; None matches everything. since/until are UTC days, inclusive."""

    rating: str | None = None  # "good" or "bad"
    review_status: str | None = None  # "new", "accepted" or "rejected"
    user_id: int | None = None
    since: date | None = None
    until: date | None = None
    with_correction: bool | None = None  # True: only rows with a correction
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class FeedbackItem:
    """One rating as the review table shows it."""

    id: int
    created_at: datetime
    rating: str
    question: str
    answer: str
    correction: str | None
    user_id: int
    username: str
    sources: list[str]
    review_status: str
    reviewer: str | None
    reviewer_note: str | None
    reviewed_at: datetime | None
    trusted: bool  # accepted, with a correction and its question embedding: offered to retrieval
    chat_id: int
    message_id: int


FEEDBACK_COLUMNS = tuple(f.name for f in fields(FeedbackItem))


def source_label(source: Any) -> str:
    """A short readable label, "[n] label", for one cited source as core.chat.answers stores it."""
    if not isinstance(source, dict):
        return str(source)
    parsed = Source.from_json(source)
    return f"[{parsed.number}] {parsed.label}" if parsed.number else parsed.label


def _query(filters: FeedbackFilters) -> Select[Any]:
    answer = aliased(ChatMessage, name="answer")
    rater = aliased(User, name="rater")
    reviewer = aliased(User, name="reviewer")
    question = question_before(answer)
    query = (
        select(
            MessageFeedback,
            question.label("question"),
            answer.content.label("answer"),
            answer.sources.label("sources"),
            answer.chat_id.label("chat_id"),
            rater.username.label("username"),
            reviewer.username.label("reviewer"),
        )
        .join(answer, answer.id == MessageFeedback.message_id)
        .join(rater, rater.id == MessageFeedback.user_id)
        .outerjoin(reviewer, reviewer.id == MessageFeedback.reviewer_id)
    )
    if filters.rating:
        query = query.where(MessageFeedback.rating == filters.rating)
    if filters.review_status:
        query = query.where(MessageFeedback.review_status == filters.review_status)
    if filters.user_id is not None:
        query = query.where(MessageFeedback.user_id == filters.user_id)
    if filters.since:
        query = query.where(MessageFeedback.created_at >= datetime.combine(filters.since, time.min, tzinfo=UTC))
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), time.min, tzinfo=UTC)
        query = query.where(MessageFeedback.created_at < end)
    if filters.with_correction is True:
        query = query.where(func.length(func.btrim(func.coalesce(MessageFeedback.correction, ""))) > 0)
    elif filters.with_correction is False:
        query = query.where(func.length(func.btrim(func.coalesce(MessageFeedback.correction, ""))) == 0)
    return query.order_by(MessageFeedback.created_at.desc(), MessageFeedback.id.desc())


def _item(row: Any) -> FeedbackItem:
    feedback: MessageFeedback = row.MessageFeedback
    sources = row.sources if isinstance(row.sources, list) else []
    correction = feedback.correction if feedback.correction and feedback.correction.strip() else None
    return FeedbackItem(
        id=feedback.id,
        created_at=feedback.created_at,
        rating=feedback.rating,
        question=row.question or "",
        answer=row.answer,
        correction=correction,
        user_id=feedback.user_id,
        username=row.username,
        sources=[source_label(source) for source in sources],
        review_status=feedback.review_status,
        reviewer=row.reviewer,
        reviewer_note=feedback.reviewer_note,
        reviewed_at=feedback.reviewed_at,
        trusted=feedback.review_status == ReviewStatus.ACCEPTED
        and correction is not None
        and feedback.question_embedding is not None,
        chat_id=row.chat_id,
        message_id=feedback.message_id,
    )


def _check_filters(filters: FeedbackFilters) -> None:
    if filters.rating not in (None, "good", "bad"):
        raise InvalidInput("Ratings are 'good' or 'bad'.")
    if filters.review_status not in (None, *REVIEW_STATUSES):
        raise InvalidInput(f"Review statuses are {', '.join(REVIEW_STATUSES)}.")


def list_feedback(*, actor: Actor, filters: FeedbackFilters | None = None) -> list[FeedbackItem]:
    """Feedback matching `filters`, newest first, at most filters.limit. Read-only.

    Raises PermissionDenied without review_feedback; InvalidInput for an unknown rating or
    status.
    """
    require(actor, "review_feedback")
    filters = filters or FeedbackFilters()
    _check_filters(filters)
    with session_scope() as session:
        return [_item(row) for row in session.execute(_query(filters).limit(max(1, filters.limit)))]


def feedback_raters(*, actor: Actor) -> list[tuple[int, str]]:
    """(user id, username) of everyone who gave feedback, for the user filter. Read-only.

    Raises PermissionDenied without review_feedback.
    """
    require(actor, "review_feedback")
    with session_scope() as session:
        rows = session.execute(
            select(User.id, User.username)
            .where(User.id.in_(select(MessageFeedback.user_id).distinct()))
            .order_by(func.lower(User.username))
        ).tuples()
        return list(rows.all())


def _question_embedding(*, actor: Actor, question: str) -> list[float]:
    from core.ai import get_provider
    from core.ai.embedding_space import ensure_embedding_space

    provider = get_provider()
    ensure_embedding_space(provider)  # the stored vector must be comparable with later questions
    return embed_question(provider, question=question, user_id=actor.id)


def review_feedback(*, actor: Actor, feedback_id: int, status: str, note: str | None = None) -> FeedbackItem:
    """Set a rating's review status (new, accepted, rejected) and the reviewer's note.

    Accepting a rating that carries a correction makes the correction trusted context:
    when its question embedding is missing it is computed first with the configured
    provider (one embedding call, recorded in the usage ledger). Commits the review with
    an audit row (feedback.review). Idempotent for the same status and note.

    Raises PermissionDenied without review_feedback; InvalidInput for an unknown status or
    an over-long note; NotFound for an unknown feedback id; ProviderError or
    EmbeddingSpaceMismatch when the embedding cannot be made (nothing is changed then).
    """
    require(actor, "review_feedback")
    if status not in REVIEW_STATUSES:
        raise InvalidInput(f"Review statuses are {', '.join(REVIEW_STATUSES)}.")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"Keep the reviewer note under {MAX_NOTE_CHARS} characters.")

    with session_scope() as session:
        row = session.execute(_query(FeedbackFilters()).where(MessageFeedback.id == feedback_id)).first()
        if row is None:
            raise NotFound(f"Feedback {feedback_id} does not exist.")
        current = _item(row)
        needs_embedding = (
            status == ReviewStatus.ACCEPTED
            and current.correction is not None
            and row.MessageFeedback.question_embedding is None
        )
    # The embedding call happens outside any transaction: no row lock is held during it.
    embedding = (
        _question_embedding(actor=actor, question=current.question or current.answer) if needs_embedding else None
    )

    with session_scope() as session:
        feedback = session.scalar(select(MessageFeedback).where(MessageFeedback.id == feedback_id).with_for_update())
        if feedback is None:
            raise NotFound(f"Feedback {feedback_id} does not exist.")
        before = {"status": feedback.review_status, "note": feedback.reviewer_note}
        feedback.review_status = status
        feedback.reviewer_note = note
        feedback.reviewer_id = actor.id
        feedback.reviewed_at = datetime.now(UTC)
        if embedding is not None and feedback.question_embedding is None:
            feedback.question_embedding = embedding
        record_audit(
            session,
            actor=actor,
            action="feedback.review",
            target_type="feedback",
            target_id=feedback.id,
            details={
                "from": before["status"],
                "to": status,
                "note": note,
                "rating": feedback.rating,
                "has_correction": current.correction is not None,
            },
        )
        session.flush()
        row = session.execute(_query(FeedbackFilters()).where(MessageFeedback.id == feedback_id)).one()
        return _item(row)


def _export_rows(actor: Actor, filters: FeedbackFilters | None, export_format: str) -> list[dict[str, Any]]:
    require(actor, "review_feedback")
    filters = filters or FeedbackFilters()
    _check_filters(filters)
    with session_scope() as session:
        rows = [asdict(_item(row)) for row in session.execute(_query(filters).limit(EXPORT_LIMIT))]
        record_audit(
            session,
            actor=actor,
            action="feedback.export",
            target_type="feedback",
            target_id=None,
            details={"format": export_format, "rows": len(rows)},
        )
    return rows


def export_feedback_csv(*, actor: Actor, filters: FeedbackFilters | None = None) -> bytes:
    """The filtered feedback table as CSV bytes (up to 50,000 rows, newest first).

    Commits an audit row (feedback.export). Raises PermissionDenied without review_feedback.
    """
    return to_csv_bytes(_export_rows(actor, filters, "csv"), FEEDBACK_COLUMNS)


def export_feedback_xlsx(*, actor: Actor, filters: FeedbackFilters | None = None) -> bytes:
    """The filtered feedback table as an .xlsx workbook (sheet "Feedback"), like the CSV."""
    return to_xlsx_bytes(_export_rows(actor, filters, "xlsx"), FEEDBACK_COLUMNS, sheet_name="Feedback")
