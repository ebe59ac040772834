"""The one engine per process and short transactional sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from core.platform.config import get_settings
from core.platform.embedded import database_url


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine (embedded PostgreSQL started on first use when unconfigured)."""
    settings = get_settings()
    engine = create_engine(
        database_url(settings),
        pool_size=settings.db_pool_size,
        max_overflow=10,
        pool_pre_ping=True,  # survive a PostgreSQL restart without restarting the app
        pool_recycle=1800,
    )

    return engine


@lru_cache(maxsize=1)
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engine() -> None:
    """Dispose the engine (tests and forked processes)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()
