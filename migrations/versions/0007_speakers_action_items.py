"""Speaker names per recording and action items across meetings.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {diarization label: name}; the label "*" names a recording without labels (one speaker).
    op.add_column(
        "transcription_jobs",
        sa.Column("speaker_names", postgresql.JSONB, server_default="{}", nullable=False),
    )
    op.create_table(
        "action_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "transcription_job_id",
            sa.Integer,
            sa.ForeignKey("transcription_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, server_default="0", nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("due_text", sa.String(200)),
        sa.Column("due_date", sa.Date),
        sa.Column("said_at_seconds", sa.Float),
        sa.Column("status", sa.String(8), server_default="open", nullable=False),
        sa.Column("closed_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("edited_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("edited_at", sa.DateTime(timezone=True)),
        sa.Column("in_minutes", sa.Boolean, server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'done')", name="ck_action_items_status"),
    )
    for column in ("transcription_job_id", "status", "due_date", "closed_by", "edited_by"):
        op.create_index(f"ix_action_items_{column}", "action_items", [column])


def downgrade() -> None:
    op.drop_table("action_items")
    op.drop_column("transcription_jobs", "speaker_names")
