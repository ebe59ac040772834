"""Reviewed corrections offered to new questions: accepted feedback whose question is close
to the new one (by the question embedding stored with the feedback).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from core.chat.conversation import question_before
from core.platform.config import get_settings
from core.platform.models import ChatMessage, MessageFeedback
from core.platform.statuses import ReviewStatus


@dataclass(frozen=True)
class TrustedCorrection:
    """An accepted correction whose original question is close to the new one."""

    feedback_id: int
    message_id: int
    question: str
    correction: str
    distance: float


def trusted_corrections(
    session: Session,
    *,
    question_embedding: Sequence[float],
    limit: int = 2,
    max_distance: float | None = None,
) -> list[TrustedCorrection]:
    """Accepted corrections whose question is within `max_distance` (cosine) of this one. Read-only.

    Closest first; at most `limit`. The question text is the user message that preceded
    the corrected answer in its chat. Accepted corrections are team knowledge: a reviewer
    approved them, so they are offered to every user.
    """
    threshold = get_settings().correction_max_distance if max_distance is None else max_distance
    answered = aliased(ChatMessage, name="answered")
    question = question_before(answered)
    distance = MessageFeedback.question_embedding.cosine_distance(list(question_embedding))
    rows = session.execute(
        select(
            MessageFeedback.id,
            MessageFeedback.message_id,
            question.label("question"),
            MessageFeedback.correction,
            distance.label("distance"),
        )
        .join(answered, answered.id == MessageFeedback.message_id)
        .where(
            MessageFeedback.review_status == ReviewStatus.ACCEPTED,
            MessageFeedback.correction.is_not(None),
            func.length(func.btrim(MessageFeedback.correction)) > 0,
            MessageFeedback.question_embedding.is_not(None),
            distance <= threshold,
        )
        .order_by(distance, MessageFeedback.id)
        .limit(limit)
    ).all()
    return [
        TrustedCorrection(
            feedback_id=row.id,
            message_id=row.message_id,
            question=row.question or "",
            correction=row.correction,
            distance=float(row.distance),
        )
        for row in rows
    ]
