"""Usage ledger, embedding space, transcription checkpoints, feedback review, audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from core.platform.config import get_settings

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dim = get_settings().embedding_dim
    op.create_table(
        "usage_records",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("input_tokens", sa.Integer, server_default="0", nullable=False),
        sa.Column("output_tokens", sa.Integer, server_default="0", nullable=False),
        sa.Column("audio_seconds", sa.Float, server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Numeric(12, 6), server_default="0", nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("transcription_job_id", sa.Integer, sa.ForeignKey("transcription_jobs.id", ondelete="SET NULL")),
        sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id", ondelete="SET NULL")),
        sa.CheckConstraint(
            "purpose IN ('transcription', 'minutes', 'embedding', 'chat')", name="ck_usage_records_purpose"
        ),
    )
    for column in ("created_at", "user_id", "transcription_job_id", "document_id"):
        op.create_index(f"ix_usage_records_{column}", "usage_records", [column])

    op.create_table(
        "embedding_space",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("dimensions", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_embedding_space_singleton"),
    )

    op.create_table(
        "transcription_segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("transcription_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("segment_index", sa.Integer, nullable=False),
        sa.Column("start_seconds", sa.Float, nullable=False),
        sa.Column("end_seconds", sa.Float, nullable=False),
        sa.Column("text", sa.Text, server_default="", nullable=False),
        sa.Column("pieces", postgresql.JSONB, server_default="[]", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("job_id", "segment_index", name="uq_transcription_segments_job_index"),
    )

    op.add_column("message_feedback", sa.Column("review_status", sa.String(16), server_default="new", nullable=False))
    op.add_column(
        "message_feedback",
        sa.Column("reviewer_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
    )
    op.add_column("message_feedback", sa.Column("reviewer_note", sa.Text))
    op.add_column("message_feedback", sa.Column("reviewed_at", sa.DateTime(timezone=True)))
    op.add_column("message_feedback", sa.Column("question_embedding", Vector(dim)))
    op.create_check_constraint(
        "ck_message_feedback_review_status",
        "message_feedback",
        "review_status IN ('new', 'accepted', 'rejected')",
    )
    op.create_index("ix_message_feedback_review_status", "message_feedback", ["review_status"])
    op.create_index("ix_message_feedback_reviewer_id", "message_feedback", ["reviewer_id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("actor_username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(64)),
        sa.Column("details", postgresql.JSONB, server_default="{}", nullable=False),
    )
    for column in ("created_at", "actor_id", "action"):
        op.create_index(f"ix_audit_log_{column}", "audit_log", [column])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_index("ix_message_feedback_reviewer_id", "message_feedback")
    op.drop_index("ix_message_feedback_review_status", "message_feedback")
    op.drop_constraint("ck_message_feedback_review_status", "message_feedback")
    for column in ("question_embedding", "reviewed_at", "reviewer_note", "reviewer_id", "review_status"):
        op.drop_column("message_feedback", column)
    op.drop_table("transcription_segments")
    op.drop_table("embedding_space")
    op.drop_table("usage_records")
