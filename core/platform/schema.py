"""Bring a database to the current schema and seed what every install needs."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from core.access.rbac import seed_roles_and_permissions
from core.platform.db import get_engine, session_scope

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_database(revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` and seed roles and permissions. Idempotent."""
    with get_engine().begin() as connection:
        command.upgrade(alembic_config(connection), revision)
    with session_scope() as session:
        seed_roles_and_permissions(session)
