"""The one engine per process and short transactional sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import UserDefinedType

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


def vector_driver_connection(session: Session) -> Any:
    """The psycopg connection under the session's transaction, with pgvector's types registered
    (vectors then travel in binary: no text to format in Python or parse in PostgreSQL)."""
    from pgvector.psycopg import register_vector

    connection: Any = session.connection().connection.driver_connection
    if connection.adapters.types.get("vector") is None:
        register_vector(connection)
    return connection


class BinaryVector(UserDefinedType[Any]):
    """A vector bound as a parameter in pgvector's binary form (a numpy array).

    pgvector's own SQLAlchemy type formats a parameter as text: 1,536 floats cost ~2 ms of
    Python a search (measured), and PostgreSQL parses them back.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"

    def bind_processor(self, dialect: Any) -> None:
        return None  # a numpy array, dumped by pgvector's psycopg adapter
