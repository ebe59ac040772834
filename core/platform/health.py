"""Health checks the UI and the CLI use to explain outages instead of crashing."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from core.platform.db import get_engine

log = logging.getLogger(__name__)


def database_problem() -> str | None:
    """None when PostgreSQL answers and the schema is in place, else a message to show.

    Cheap (one round trip); the pool's pre-ping reconnects after a database restart, so the
    app recovers by itself once the server is back.
    """
    try:
        with get_engine().connect() as connection:
            migrated = connection.execute(text("SELECT to_regclass('public.users') IS NOT NULL")).scalar()
    except (OperationalError, DBAPIError) as error:
        log.warning("database unreachable: %s", error)
        return (
            "Quorum cannot reach its database right now. If you run the embedded server, make sure "
            "`make run` is still running; otherwise check DATABASE_URL and that PostgreSQL is up. "
            "This page recovers by itself once the database is back."
        )
    if not migrated:
        return "The database has no Quorum schema yet. Run `python -m core.cli migrate` (or `make run`)."
    return None
