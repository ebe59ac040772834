"""Users rate answers: thumbs up or down and an optional correction, one row per user and answer.

The review side (listing, accepting, rejecting, exporting) is core.chat.feedback_review. An
accepted correction becomes trusted context for later, similar questions
(core.chat.corrections.trusted_corrections), which is why the question's embedding is stored
with every correction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from core.access.rbac import Actor, require
from core.ai.base import AIProvider
from core.chat.conversation import question_before
from core.chat.retrieval import embed_question
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound
from core.platform.models import Chat, ChatMessage, MessageFeedback
from core.platform.statuses import RATINGS, MessageRole

log = logging.getLogger(__name__)

MAX_CORRECTION_CHARS = 4000


@dataclass(frozen=True)
class Feedback:
    """The actor's rating of one answer as stored."""

    id: int
    message_id: int
    rating: str
    correction: str | None
    review_status: str
    updated_at: datetime


def rate_message(
    *,
    actor: Actor,
    message_id: int,
    rating: str,
    correction: str | None = None,
    provider: AIProvider | None = None,
) -> Feedback:
    """Record the actor's rating of an answer in one of their own chats. Commits. Idempotent.

    One row per (message, user): rating again updates that row (changing one's mind never
    duplicates it). `correction` replaces any earlier one; None or blank removes it. When a
    correction is given, the embedding of the question it answers is stored with it so an
    accepted correction can be found for similar questions later. Changing the text of a
    correction sends it back to review (status "new"): an accepted correction is only
    trusted as the reviewer saw it.

    Raises NotFound (no such answer, or not in the actor's chats) and InvalidInput (rating
    not "good"/"bad", correction too long).
    """
    require(actor, "use_chat")
    if rating not in RATINGS:
        raise InvalidInput('Rate an answer "good" or "bad".')
    text = (correction or "").strip() or None
    if text and len(text) > MAX_CORRECTION_CHARS:
        raise InvalidInput(f"Corrections are limited to {MAX_CORRECTION_CHARS} characters.")

    with session_scope() as session:
        message = session.scalar(
            select(ChatMessage)
            .join(Chat, Chat.id == ChatMessage.chat_id)
            .where(ChatMessage.id == message_id, Chat.owner_id == actor.id, ChatMessage.role == MessageRole.ASSISTANT)
        )
        if message is None:
            raise NotFound("That answer does not exist or is not in one of your chats.")
        question = session.scalar(select(question_before(message))) or ""
        previous = session.scalar(
            select(MessageFeedback).where(MessageFeedback.message_id == message_id, MessageFeedback.user_id == actor.id)
        )
        previous_correction = previous.correction if previous else None
        previous_embedding = previous.question_embedding if previous is not None else None

    correction_changed = text != previous_correction
    embedding = None
    if text and (correction_changed or previous_embedding is None):
        from core.ai import get_provider
        from core.ai.embedding_space import ensure_embedding_space

        embedder = provider or get_provider()
        ensure_embedding_space(embedder)  # the stored question vector must be comparable later
        embedding = embed_question(embedder, question=question or text, user_id=actor.id)

    now = datetime.now(UTC)
    values: dict[str, object] = {"rating": rating, "correction": text, "updated_at": now}
    if text is None:
        values["question_embedding"] = None
    elif embedding is not None:
        values["question_embedding"] = embedding
    if correction_changed:
        values |= {"review_status": "new", "reviewer_id": None, "reviewer_note": None, "reviewed_at": None}

    statement = insert(MessageFeedback).values(
        message_id=message_id,
        user_id=actor.id,
        rating=rating,
        correction=text,
        question_embedding=embedding,
    )
    statement = statement.on_conflict_do_update(constraint="uq_message_feedback_message_user", set_=values)
    with session_scope() as session:
        feedback_id = session.scalar(statement.returning(MessageFeedback.id))
        row = session.get_one(MessageFeedback, feedback_id, populate_existing=True)
        return Feedback(
            id=row.id,
            message_id=row.message_id,
            rating=row.rating,
            correction=row.correction,
            review_status=row.review_status,
            updated_at=row.updated_at,
        )


def clear_rating(*, actor: Actor, message_id: int) -> None:
    """Withdraw the actor's rating (and correction) of an answer. Commits. Idempotent."""
    require(actor, "use_chat")
    with session_scope() as session:
        feedback = session.scalar(
            select(MessageFeedback).where(MessageFeedback.message_id == message_id, MessageFeedback.user_id == actor.id)
        )
        if feedback is not None:
            session.delete(feedback)
