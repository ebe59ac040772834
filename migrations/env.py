"""Alembic environment: the URL comes from Settings (embedded server when unconfigured)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from core.documents.vector_segments import include_in_autogenerate
from core.platform.db import get_engine
from core.platform.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=include_in_autogenerate,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with get_engine().connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("Quorum migrations run online only: python -m core.cli migrate")
run_migrations_online()
