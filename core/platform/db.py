"""The one engine per process and short transactional sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from psycopg import RawCursor
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
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


@dataclass(frozen=True)
class DriverStatement:
    """A SQLAlchemy statement compiled once to the SQL text psycopg runs (`compile_for_driver`).

    For the hot read path of searches: run through `driver_rows`, it skips what SQLAlchemy
    does on every execution (cache key, parameter and result processing) and psycopg's parse
    of a long query (it caches only short ones): a search's Python went from 2.9 to 0.8 ms of
    CPU (benchmarks/results/ingest.md). The statement is still written in SQLAlchemy.
    """

    sql: str  # with $1, $2, ... placeholders: psycopg's RawCursor sends it without parsing it
    names: tuple[str, ...]  # the parameter of each placeholder, in order
    constants: Mapping[str, Any]  # values the statement carries itself (SQLAlchemy's literal() binds)
    # SQLAlchemy's conversions of the values bound per execution, where their types have one
    processors: Mapping[str, Callable[[Any], Any]]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The value of each placeholder, in order: `values` (converted as SQLAlchemy would) and the
        constants. Raises KeyError naming a value the statement needs and `values` lacks."""
        merged = {**self.constants, **values}
        for name, process in self.processors.items():
            merged[name] = process(merged[name])
        return [merged[name] for name in self.names]


def compile_for_driver(statement: ClauseElement, literals: Mapping[str, Any] | None = None) -> DriverStatement:
    """`statement` compiled for psycopg, its literal_execute values (`literals`) written into the text.

    Values bound per execution get their types' conversions in `driver_rows`, as SQLAlchemy
    would apply them.
    """
    dialect = PGDialect_psycopg(paramstyle="numeric_dollar")
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    # Values bound per execution are placeholders here: None stands in for them.
    unbound = {bind.key: None for bind in compiled.binds.values() if bind.required}
    expanded = compiled.construct_expanded_state(unbound | dict(literals or {}))
    constants: dict[str, Any] = {}
    processors: dict[str, Callable[[Any], Any]] = {}
    for name, value in expanded.parameters.items():
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if not bind.required:
            constants[name] = process(value) if process else value
        elif process:
            processors[name] = process
    names = tuple(expanded.positiontup or ())
    return DriverStatement(sql=expanded.statement, names=names, constants=constants, processors=processors)


def driver_rows(session: Session, statement: DriverStatement, values: Mapping[str, Any] | None = None) -> list[Any]:
    """The rows (named tuples) of `statement` run with `values` on the session's connection, in its
    transaction (vectors bind in binary: `vector_driver_connection`)."""
    driver = vector_driver_connection(session)
    with RawCursor(driver, row_factory=namedtuple_row) as cursor:
        return cursor.execute(statement.sql, statement.arguments(values or {})).fetchall()


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
