"""Rows the admin tests need, written straight to the real database (unique every time)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select, update

from core.platform.db import session_scope
from core.platform.models import (
    Chat,
    ChatMessage,
    Document,
    MessageFeedback,
    Permission,
    RolePermission,
    TranscriptionJob,
    User,
)
from core.platform.storage import new_key
from tests.conftest import unique


def make_chat(
    owner_id: int, turns: list[tuple[str, str]], *, sources: list[Any] | None = None
) -> tuple[int, list[int]]:
    """A chat with (question, answer) turns. Returns (chat id, assistant message ids)."""
    with session_scope() as session:
        chat = Chat(owner_id=owner_id, title=unique("chat"))
        session.add(chat)
        session.flush()
        answers = []
        for question, answer in turns:
            session.add(ChatMessage(chat_id=chat.id, role="user", content=question))
            session.flush()
            message = ChatMessage(chat_id=chat.id, role="assistant", content=answer, sources=sources or [])
            session.add(message)
            session.flush()
            answers.append(message.id)
        return chat.id, answers


def make_feedback(message_id: int, user_id: int, *, rating: str = "bad", correction: str | None = None) -> int:
    with session_scope() as session:
        feedback = MessageFeedback(message_id=message_id, user_id=user_id, rating=rating, correction=correction)
        session.add(feedback)
        session.flush()
        return feedback.id


def make_document(uploaded_by: int | None, **fields: Any) -> int:
    name = unique("doc")
    values: dict[str, Any] = {
        "filename": f"{name}.txt",
        "sha256": hashlib.sha256(name.encode()).hexdigest(),
        "uploaded_by": uploaded_by,
    }
    values.update(fields)
    with session_scope() as session:
        document = Document(**values)
        session.add(document)
        session.flush()
        return document.id


def make_recording(owner_id: int | None, **fields: Any) -> int:
    name = unique("rec")
    values: dict[str, Any] = {
        "filename": f"{name}.mp3",
        "storage_key": new_key("audio", ".mp3"),
        "sha256": hashlib.sha256(name.encode()).hexdigest(),
        "owner_id": owner_id,
    }
    values.update(fields)
    with session_scope() as session:
        job = TranscriptionJob(**values)
        session.add(job)
        session.flush()
        return job.id


def set_fields(model: type[Any], row_id: int, **values: Any) -> None:
    with session_scope() as session:
        session.execute(update(model).where(model.id == row_id).values(**values))


def get_row(model: type[Any], row_id: int) -> Any:
    with session_scope() as session:
        return session.get(model, row_id)


@contextmanager
def only_manager(user_id: int) -> Iterator[None]:
    """Make `user_id` the only active user holding manage_users and manage_roles; undo after."""
    managing_roles = (
        select(RolePermission.role_id)
        .join(Permission, Permission.id == RolePermission.permission_id)
        .where(Permission.name.in_(("manage_users", "manage_roles")))
        .group_by(RolePermission.role_id)
        .having(func.count(distinct(Permission.name)) == 2)
    )
    with session_scope() as session:
        others = list(
            session.scalars(
                select(User.id).where(User.is_active.is_(True), User.id != user_id, User.role_id.in_(managing_roles))
            )
        )
        session.execute(update(User).where(User.id.in_(others)).values(is_active=False))
    try:
        yield
    finally:
        with session_scope() as session:
            session.execute(update(User).where(User.id.in_(others)).values(is_active=True))


def audit_actions_for(target_type: str, target_id: int, since: datetime | None = None) -> list[tuple[str, str]]:
    """(action, actor_username) of the audit rows about one target, oldest first."""
    from core.platform.models import AuditLog

    with session_scope() as session:
        query = select(AuditLog.action, AuditLog.actor_username).where(
            AuditLog.target_type == target_type, AuditLog.target_id == str(target_id)
        )
        if since is not None:
            query = query.where(AuditLog.created_at >= since)
        return [tuple(row) for row in session.execute(query.order_by(AuditLog.id))]  # type: ignore[misc]
