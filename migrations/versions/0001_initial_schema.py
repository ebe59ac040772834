"""Initial schema: the vector extension, RBAC, jobs, documents, chunks, chats, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from core.platform.config import get_settings

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JOB_STATUSES = "status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')"
DOCUMENT_STATUSES = "status IN ('PENDING', 'INDEXING', 'COMPLETED', 'FAILED')"
DOCUMENT_TYPES = "document_type IN ('general_document', 'full_transcript', 'meeting_minutes')"
VISIBILITY = "visibility IN ('team', 'private')"


def _now() -> sa.Column[sa.DateTime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    dim = get_settings().embedding_dim
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "roles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text, server_default="", nullable=False),
        _now(),
    )
    op.create_table(
        "permissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text, server_default="", nullable=False),
    )
    op.create_table(
        "role_permissions",
        sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("permission_id", sa.Integer, sa.ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_role_permissions_permission_id", "role_permissions", ["permission_id"])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("display_name", sa.String(128), server_default="", nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("is_active", sa.Boolean, server_default=sa.text("true"), nullable=False),
        _now(),
        sa.Column("last_login_at", sa.DateTime(timezone=True)),
        sa.Column("failed_login_count", sa.Integer, server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("password_changed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_users_role_id", "users", ["role_id"])

    op.create_table(
        "transcription_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(128), server_default="", nullable=False),
        sa.Column("size_bytes", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("storage_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("language", sa.String(16)),
        sa.Column("visibility", sa.String(16), server_default="team", nullable=False),
        sa.Column("status", sa.String(16), server_default="PENDING", nullable=False),
        sa.Column("stage", sa.String(32), server_default="queued", nullable=False),
        sa.Column("progress", sa.Float, server_default="0", nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("provider", sa.String(64)),
        sa.Column("model", sa.String(128)),
        sa.Column("transcript_text", sa.Text),
        sa.Column("transcript_segments", postgresql.JSONB),
        sa.Column("minutes", postgresql.JSONB),
        sa.Column("minutes_markdown", sa.Text),
        sa.Column("minutes_edited_at", sa.DateTime(timezone=True)),
        sa.Column("input_tokens", sa.Integer, server_default="0", nullable=False),
        sa.Column("output_tokens", sa.Integer, server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Numeric(12, 6), server_default="0", nullable=False),
        _now(),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(JOB_STATUSES, name="ck_transcription_jobs_status"),
        sa.CheckConstraint(VISIBILITY, name="ck_transcription_jobs_visibility"),
    )
    op.create_index("ix_transcription_jobs_owner_id", "transcription_jobs", ["owner_id"])
    op.create_index("ix_transcription_jobs_status", "transcription_jobs", ["status"])
    op.create_index("ix_transcription_jobs_sha256", "transcription_jobs", ["sha256"])

    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(128), server_default="", nullable=False),
        sa.Column("size_bytes", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("storage_key", sa.String(512)),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("upload_date", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("uploaded_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("visibility", sa.String(16), server_default="team", nullable=False),
        sa.Column("status", sa.String(16), server_default="PENDING", nullable=False),
        sa.Column("document_type", sa.String(32), server_default="general_document", nullable=False),
        sa.Column("transcription_job_id", sa.Integer, sa.ForeignKey("transcription_jobs.id", ondelete="CASCADE")),
        sa.Column("error", sa.Text),
        sa.Column("chunks_total", sa.Integer, server_default="0", nullable=False),
        sa.Column("chunks_done", sa.Integer, server_default="0", nullable=False),
        sa.Column("active_generation", sa.Integer, server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("indexed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(DOCUMENT_STATUSES, name="ck_documents_status"),
        sa.CheckConstraint(DOCUMENT_TYPES, name="ck_documents_document_type"),
        sa.CheckConstraint(VISIBILITY, name="ck_documents_visibility"),
        sa.UniqueConstraint("transcription_job_id", "document_type", name="uq_documents_job_type"),
    )
    op.create_index("ix_documents_sha256", "documents", ["sha256"])
    op.create_index("ix_documents_uploaded_by", "documents", ["uploaded_by"])
    op.create_index("ix_documents_status", "documents", ["status"])
    op.create_index("ix_documents_document_type", "documents", ["document_type"])
    op.create_index("ix_documents_transcription_job_id", "documents", ["transcription_job_id"])

    op.create_table(
        "document_chunks",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("generation", sa.Integer, server_default="0", nullable=False),
        sa.Column("chunk_index", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("page_number", sa.Integer),
        sa.Column("heading", sa.Text),
        sa.Column("start_seconds", sa.Float),
        sa.Column("end_seconds", sa.Float),
        sa.Column("embedding", Vector(dim), nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR,
            sa.Computed("to_tsvector('english'::regconfig, content)", persisted=True),
            nullable=False,
        ),
        _now(),
        sa.UniqueConstraint("document_id", "generation", "chunk_index", name="uq_document_chunks_position"),
    )
    op.create_index("ix_document_chunks_document_id", "document_chunks", ["document_id"])
    op.create_index(
        "ix_document_chunks_embedding_hnsw",
        "document_chunks",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index("ix_document_chunks_search_vector", "document_chunks", ["search_vector"], postgresql_using="gin")

    op.create_table(
        "chats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), server_default="New chat", nullable=False),
        _now(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_chats_owner_id", "chats", ["owner_id"])

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("chat_id", sa.Integer, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("sources", postgresql.JSONB, server_default="[]", nullable=False),
        sa.Column("model", sa.String(128)),
        _now(),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_chat_messages_role"),
    )
    op.create_index("ix_chat_messages_chat_id", "chat_messages", ["chat_id"])

    op.create_table(
        "message_feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("chat_messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("correction", sa.Text),
        _now(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("rating IN ('good', 'bad')", name="ck_message_feedback_rating"),
        sa.UniqueConstraint("message_id", "user_id", name="uq_message_feedback_message_user"),
    )
    op.create_index("ix_message_feedback_message_id", "message_feedback", ["message_id"])
    op.create_index("ix_message_feedback_user_id", "message_feedback", ["user_id"])


def downgrade() -> None:
    for table in (
        "message_feedback",
        "chat_messages",
        "chats",
        "document_chunks",
        "documents",
        "transcription_jobs",
        "users",
        "role_permissions",
        "permissions",
        "roles",
    ):
        op.drop_table(table)
    op.execute("DROP EXTENSION IF EXISTS vector")
