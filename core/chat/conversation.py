"""Queries about the shape of a conversation, shared by retrieval, feedback and its review."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, select

from core.platform.models import ChatMessage
from core.platform.statuses import MessageRole


def question_before(answer: Any) -> ScalarSelect[str]:
    """The user message just before `answer` in its chat: the question that answer replies to.

    `answer` is ChatMessage or an alias of it; the result is a correlated scalar subquery
    to select beside it (NULL when the chat has no earlier user message).
    """
    asked = ChatMessage.__table__.alias("asked")
    return (
        select(asked.c.content)
        .where(asked.c.chat_id == answer.chat_id, asked.c.role == MessageRole.USER, asked.c.id < answer.id)
        .order_by(asked.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
