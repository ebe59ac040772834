"""Sign-in throttles: failed password sign-ins counted per client address and per account
at an address, with the time until which each must wait.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttles",
        # "address:<ip>" or "account:<lower-case username>|<ip>"
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("blocked_until", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_sign_in_throttles_last_failure_at", "sign_in_throttles", ["last_failure_at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_throttles_last_failure_at", table_name="sign_in_throttles")
    op.drop_table("sign_in_throttles")
