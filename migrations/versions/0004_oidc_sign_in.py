"""Single sign-on (OpenID Connect): identities linked to users, approval, deleted identities.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The identity provider's (issuer, subject) pair names a person for good; the email may change.
    op.add_column("users", sa.Column("oidc_issuer", sa.String(512)))
    op.add_column("users", sa.Column("oidc_subject", sa.String(255)))
    op.create_unique_constraint("uq_users_oidc_identity", "users", ["oidc_issuer", "oidc_subject"])
    op.add_column("users", sa.Column("approval_pending", sa.Boolean, server_default=sa.false(), nullable=False))
    op.add_column("users", sa.Column("last_login_method", sa.String(16)))
    op.create_check_constraint(
        "ck_users_last_login_method", "users", "last_login_method IS NULL OR last_login_method IN ('password', 'oidc')"
    )
    # Users made by single sign-on have no password: '' never matches a bcrypt hash.
    op.alter_column("users", "password_hash", server_default="")

    # A deleted user must not come back by signing in with the identity provider again.
    op.create_table(
        "deleted_identities",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(255), nullable=False, index=True),
        sa.Column("oidc_issuer", sa.String(512)),
        sa.Column("oidc_subject", sa.String(255)),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("deleted_by", sa.String(64), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_deleted_identities_subject", "deleted_identities", ["oidc_issuer", "oidc_subject"])


def downgrade() -> None:
    op.drop_table("deleted_identities")
    op.alter_column("users", "password_hash", server_default=None)
    op.drop_constraint("ck_users_last_login_method", "users")
    op.drop_column("users", "last_login_method")
    op.drop_column("users", "approval_pending")
    op.drop_constraint("uq_users_oidc_identity", "users")
    op.drop_column("users", "oidc_subject")
    op.drop_column("users", "oidc_issuer")
