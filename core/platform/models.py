"""SQLAlchemy 2.0 typed models. The schema itself is owned by Alembic (migrations/)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.platform.config import get_settings
from core.platform.statuses import (
    ACTION_ITEM_STATUSES,
    DOCUMENT_STATUSES,
    DOCUMENT_TYPES,
    JOB_STATUSES,
    MESSAGE_ROLES,
    RATINGS,
    REVIEW_STATUSES,
    USAGE_PURPOSES,
    VISIBILITIES,
)

EMBEDDING_DIM = get_settings().embedding_dim


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, list[Any]: JSONB}


def _now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = _now_column()

    permissions: Mapped[list[Permission]] = relationship(secondary="role_permissions", lazy="selectin")


class Permission(Base):
    __tablename__ = "permissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")


class RolePermission(Base):
    __tablename__ = "role_permissions"

    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    permission_id: Mapped[int] = mapped_column(
        ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


SIGN_IN_METHODS = ("password", "oidc")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc_identity"),
        CheckConstraint(
            f"last_login_method IS NULL OR {_in('last_login_method', SIGN_IN_METHODS)}",
            name="ck_users_last_login_method",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), server_default="")
    password_hash: Mapped[str] = mapped_column(String(255), server_default="")  # "" = no password
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now_column()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_login_count: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Single sign-on identity linked to this user (both set or both NULL).
    oidc_issuer: Mapped[str | None] = mapped_column(String(512))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    # Made by a single sign-on and not yet approved by an admin (QUORUM_OIDC_NEW_USERS=approval).
    approval_pending: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    last_login_method: Mapped[str | None] = mapped_column(String(16))

    role: Mapped[Role] = relationship(lazy="joined", innerjoin=True)


class SignInThrottle(Base):
    """Failed password sign-ins under one key (a client address, or an account at an address)."""

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TranscriptionJob(Base):
    __tablename__ = "transcription_jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="ck_transcription_jobs_status"),
        CheckConstraint(_in("visibility", VISIBILITIES), name="ck_transcription_jobs_visibility"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(128), server_default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    storage_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(16))
    visibility: Mapped[str] = mapped_column(String(16), server_default="team")
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING", index=True)
    stage: Mapped[str] = mapped_column(String(32), server_default="queued")
    progress: Mapped[float] = mapped_column(Float, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    transcript_text: Mapped[str | None] = mapped_column(Text)
    transcript_segments: Mapped[list[Any] | None] = mapped_column(JSONB)
    minutes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    minutes_markdown: Mapped[str | None] = mapped_column(Text)
    minutes_edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # {diarization label: name}; "*" names a recording without labels (core.meetings.speakers).
    speaker_names: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    input_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")
    created_at: Mapped[datetime] = _now_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    owner: Mapped[User | None] = relationship()


class TranscriptionSegment(Base):
    """One transcribed piece of a recording: the per-segment checkpoint of a job."""

    __tablename__ = "transcription_segments"
    __table_args__ = (UniqueConstraint("job_id", "segment_index", name="uq_transcription_segments_job_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("transcription_jobs.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    start_seconds: Mapped[float] = mapped_column(Float)
    end_seconds: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text, server_default="")
    pieces: Mapped[list[Any]] = mapped_column(JSONB, server_default="[]")
    created_at: Mapped[datetime] = _now_column()


class ActionItem(Base):
    """An action item of a recording's minutes, followed across meetings (core.meetings.action_items).

    Rows are matched to the minutes again whenever they are written or edited, so status and
    people's edits survive a regeneration; `in_minutes` is False for an item people had
    touched that the current minutes no longer list.
    """

    __tablename__ = "action_items"
    __table_args__ = (CheckConstraint(_in("status", ACTION_ITEM_STATUSES), name="ck_action_items_status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transcription_job_id: Mapped[int] = mapped_column(
        ForeignKey("transcription_jobs.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    task: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(200))
    due_text: Mapped[str | None] = mapped_column(String(200))
    due_date: Mapped[date | None] = mapped_column(Date, index=True)
    said_at_seconds: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8), server_default="open", index=True)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    edited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    in_minutes: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint(_in("status", DOCUMENT_STATUSES), name="ck_documents_status"),
        CheckConstraint(_in("document_type", DOCUMENT_TYPES), name="ck_documents_document_type"),
        CheckConstraint(_in("visibility", VISIBILITIES), name="ck_documents_visibility"),
        # A job yields at most one transcript document and one minutes document.
        UniqueConstraint("transcription_job_id", "document_type", name="uq_documents_job_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(128), server_default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    storage_key: Mapped[str | None] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    upload_date: Mapped[datetime] = _now_column()
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    visibility: Mapped[str] = mapped_column(String(16), server_default="team")
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING", index=True)
    document_type: Mapped[str] = mapped_column(String(32), server_default="general_document", index=True)
    transcription_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcription_jobs.id", ondelete="CASCADE"), index=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    chunks_total: Mapped[int] = mapped_column(Integer, server_default="0")
    chunks_done: Mapped[int] = mapped_column(Integer, server_default="0")
    # Chunks of this generation are the searchable ones; a re-index builds the next beside it.
    active_generation: Mapped[int] = mapped_column(Integer, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    uploader: Mapped[User | None] = relationship()


class DocumentChunk(Base):
    __tablename__ = "document_chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "generation", "chunk_index", name="uq_document_chunks_position"),
        # The HNSW indexes are partial, one per range of segments, built and dropped by
        # core.documents.vector_segments (listed in vector_index_segments), not declared here.
        Index("ix_document_chunks_search_vector", "search_vector", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    generation: Mapped[int] = mapped_column(Integer, server_default="0")
    chunk_index: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    page_number: Mapped[int | None] = mapped_column(Integer)
    heading: Mapped[str | None] = mapped_column(Text)
    start_seconds: Mapped[float | None] = mapped_column(Float)
    end_seconds: Mapped[float | None] = mapped_column(Float)
    embedding: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM))
    # The vector index segment written into (the open one at insert time; see vector_segments).
    segment: Mapped[int] = mapped_column(Integer, server_default=text("quorum_open_segment()"), index=True)
    # Both derived from content by the database (trigger chunk_search_columns, migration 0011:
    # the text is parsed once, with quorum_english: every word, Snowball-stemmed, compounds by
    # their parts, migration 0010); whatever a writer sends for them is replaced.
    search_vector: Mapped[str] = mapped_column(TSVECTOR, server_default=FetchedValue(), server_onupdate=FetchedValue())
    # Words (lexeme positions) in search_vector: the chunk length BM25 normalises by.
    search_length: Mapped[int] = mapped_column(Integer, server_default=FetchedValue(), server_onupdate=FetchedValue())
    created_at: Mapped[datetime] = _now_column()


class SearchTermStat(Base):
    """How many searchable chunks hold a lexeme (BM25 document frequency).

    Maintained by database triggers (migration 0003), never written by the application.
    """

    __tablename__ = "search_term_stats"

    lexeme: Mapped[str] = mapped_column(Text, primary_key=True)
    chunks: Mapped[int] = mapped_column(Integer)


class SearchCorpusStat(Base):
    """Searchable chunks and their total length (one row, id 1), kept by the same triggers."""

    __tablename__ = "search_corpus_stats"
    __table_args__ = (CheckConstraint("id = 1", name="ck_search_corpus_stats_singleton"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    chunks: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total_length: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Chat(Base):
    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200), server_default="New chat")
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (CheckConstraint(_in("role", MESSAGE_ROLES), name="ck_chat_messages_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[Any]] = mapped_column(JSONB, server_default="[]")
    model: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = _now_column()


class MessageFeedback(Base):
    __tablename__ = "message_feedback"
    __table_args__ = (
        CheckConstraint(_in("rating", RATINGS), name="ck_message_feedback_rating"),
        CheckConstraint(_in("review_status", REVIEW_STATUSES), name="ck_message_feedback_review_status"),
        UniqueConstraint("message_id", "user_id", name="uq_message_feedback_message_user"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rating: Mapped[str] = mapped_column(String(8))
    correction: Mapped[str | None] = mapped_column(Text)
    review_status: Mapped[str] = mapped_column(String(16), server_default="new", index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    reviewer_note: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Embedding of the question an accepted correction answers, to find it again.
    question_embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIM))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


class UsageRecord(Base):
    """The usage ledger: one row per AI call."""

    __tablename__ = "usage_records"
    __table_args__ = (CheckConstraint(_in("purpose", USAGE_PURPOSES), name="ck_usage_records_purpose"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    audio_seconds: Mapped[float] = mapped_column(Float, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    transcription_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcription_jobs.id", ondelete="SET NULL"), index=True
    )
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="SET NULL"), index=True)


class EmbeddingSpace(Base):
    """The one embedding space the stored vectors belong to (a single row, id 1)."""

    __tablename__ = "embedding_space"
    __table_args__ = (CheckConstraint("id = 1", name="ck_embedding_space_singleton"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    dimensions: Mapped[int] = mapped_column(Integer)
    # Weight of the vector arm in rank fusion, chosen from the embedder when the space is recorded.
    vector_weight: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _now_column()


class DeletedIdentity(Base):
    """A deleted user's email and identity: single sign-on refuses them instead of re-creating them."""

    __tablename__ = "deleted_identities"
    __table_args__ = (Index("ix_deleted_identities_subject", "oidc_issuer", "oidc_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), index=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(512))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(64))
    deleted_by: Mapped[str] = mapped_column(String(64))
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class VectorIndexState(Base):
    """The segment new chunks are written into (a single row, id 1)."""

    __tablename__ = "vector_index_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_vector_index_state_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    open_segment: Mapped[int] = mapped_column(Integer)


class VectorIndexSegment(Base):
    """One valid partial HNSW index over the chunks of segments first_segment..last_segment."""

    __tablename__ = "vector_index_segments"
    __table_args__ = (CheckConstraint("first_segment <= last_segment", name="ck_vector_index_segments_range"),)

    index_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    first_segment: Mapped[int] = mapped_column(Integer)
    last_segment: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int] = mapped_column(BigInteger)
    built_at: Mapped[datetime] = _now_column()


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class UserSession(Base):
    """One signed-in browser. The cookie carries a random token; only its SHA-256 is stored,
    so a database dump signs nobody in. Revoked rows stay until they expire, to tell the
    browser why it was signed out."""

    __tablename__ = "user_sessions"
    __table_args__ = (CheckConstraint("method IN ('password', 'oidc')", name="ck_user_sessions_method"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    method: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
