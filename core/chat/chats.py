"""A user's chats: create, list, rename, delete, and the messages of one. Chats belong to
their owner: every function checks ownership in the query and raises NotFound for someone
else's chat, the same as for a chat that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.rbac import Actor, require
from core.chat.sources import Source
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound
from core.platform.models import Chat, ChatMessage, MessageFeedback

DEFAULT_TITLE = "New chat"
MAX_TITLE_CHARS = 80


@dataclass(frozen=True)
class ChatSummary:
    id: int
    title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ChatMessageView:
    """A message as the chat page shows it, with the viewer's own rating of it."""

    id: int
    role: str
    content: str
    sources: tuple[Source, ...]
    model: str | None
    created_at: datetime
    my_rating: str | None = None
    my_correction: str | None = None


def owned_chat(session: Session, actor: Actor, chat_id: int) -> Chat:
    chat = session.scalar(select(Chat).where(Chat.id == chat_id, Chat.owner_id == actor.id))
    if chat is None:
        raise NotFound("That chat does not exist or is not yours.")
    return chat


def _summary(chat: Chat) -> ChatSummary:
    return ChatSummary(id=chat.id, title=chat.title, created_at=chat.created_at, updated_at=chat.updated_at)


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise InvalidInput("A chat title cannot be empty.")
    return title[:MAX_TITLE_CHARS]


def title_from_question(question: str) -> str:
    """A chat title from its first question: the first words, cut at a word under 60 characters."""
    words = " ".join(question.split())
    if len(words) <= 60:
        return words
    cut = words[:60].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def create_chat(*, actor: Actor, title: str | None = None) -> ChatSummary:
    """Create an empty chat owned by `actor`. Commits. Requires use_chat."""
    require(actor, "use_chat")
    with session_scope() as session:
        chat = Chat(owner_id=actor.id, title=_clean_title(title) if title else DEFAULT_TITLE)
        session.add(chat)
        session.flush()
        session.refresh(chat)
        return _summary(chat)


def list_chats(*, actor: Actor) -> list[ChatSummary]:
    """The actor's own chats, most recently active first. Read-only. Requires use_chat."""
    require(actor, "use_chat")
    with session_scope() as session:
        chats = session.scalars(
            select(Chat).where(Chat.owner_id == actor.id).order_by(Chat.updated_at.desc(), Chat.id.desc())
        )
        return [_summary(chat) for chat in chats]


def rename_chat(*, actor: Actor, chat_id: int, title: str) -> ChatSummary:
    """Rename one of the actor's chats. Commits. Raises NotFound, InvalidInput (empty title)."""
    require(actor, "use_chat")
    with session_scope() as session:
        chat = owned_chat(session, actor, chat_id)
        chat.title = _clean_title(title)
        session.flush()
        return _summary(chat)


def delete_chat(*, actor: Actor, chat_id: int) -> None:
    """Delete one of the actor's chats with its messages and their feedback. Commits.

    Raises NotFound for a chat that does not exist or is someone else's.
    """
    require(actor, "use_chat")
    with session_scope() as session:
        chat = owned_chat(session, actor, chat_id)
        session.delete(chat)


def list_messages(*, actor: Actor, chat_id: int) -> list[ChatMessageView]:
    """The messages of one of the actor's chats, oldest first, with the actor's ratings. Read-only."""
    require(actor, "use_chat")
    with session_scope() as session:
        owned_chat(session, actor, chat_id)
        rows = session.execute(
            select(ChatMessage, MessageFeedback.rating, MessageFeedback.correction)
            .outerjoin(
                MessageFeedback,
                (MessageFeedback.message_id == ChatMessage.id) & (MessageFeedback.user_id == actor.id),
            )
            .where(ChatMessage.chat_id == chat_id)
            .order_by(ChatMessage.id)
        ).all()
        return [
            ChatMessageView(
                id=message.id,
                role=message.role,
                content=message.content,
                sources=tuple(Source.from_json(s) for s in (message.sources or []) if isinstance(s, dict)),
                model=message.model,
                created_at=message.created_at,
                my_rating=rating,
                my_correction=correction,
            )
            for message, rating, correction in rows
        ]
