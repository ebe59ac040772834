"""Vector index segments: chunks are searchable the moment they commit, HNSW indexes are built in bulk.

Why. Inserting a row into a live HNSW index costs milliseconds of graph search per row
(~140 rows/s at 1536 dimensions on two CPUs), while building an index over rows already
stored runs many times faster, in memory and in parallel (benchmarks/results/ingest.md).
So chunks never enter a live HNSW index when they are written:

- every chunk row carries `segment`: the open segment when it was written (the column's
  default is quorum_open_segment(), so every insert path gets it without being told);
- `vector_index_segments` lists the HNSW indexes, each a *partial* index over a contiguous
  range of segments (``WHERE segment BETWEEN first AND last``);
- rows of segments no registered index covers form the *tail*, which retrieval scans
  exactly: a chunk is searchable as soon as its transaction commits;
- maintain_vector_index() seals the tail once it holds settings.vector_tail_rows rows, or
  once nothing was written to it for settings.vector_idle_seconds: it opens a new segment and
  builds one index over the sealed range with CREATE INDEX CONCURRENTLY (writes and searches
  go on meanwhile). Like a search engine merging segments, it then builds one index over
  settings.vector_merge_factor adjacent indexes of similar size and drops them, so a search
  visits a few indexes, and when writing has stopped it merges what is left into one and
  vacuums and analyzes the chunks and documents (`_tidy_after_writing`). While
  writing goes on, no merge builds an index of a larger size tier than one of
  settings.vector_merge_max_rows_while_writing rows: the one maintenance run would otherwise
  spend minutes on a large build while the tail it has not sealed grows behind it, and each
  row would be built once more.

Guarantees. A row is always found by a search, through exactly one registered index or the
exact tail scan. An index is registered only after CREATE INDEX CONCURRENTLY finished, so
it holds every row of its range, including rows committed while it was being built. A
merge registers the new index and unregisters the old ones in one transaction, then drops
them. One maintenance run at a time (an advisory lock, released when its connection
closes). Killed at any moment it leaves at worst an index that is not registered (invalid
or complete), which the next run drops: nothing is lost, doubled, or searched twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Subquery, func, select, text, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from core.platform.config import get_settings
from core.platform.db import get_engine, session_scope
from core.platform.models import DocumentChunk, VectorIndexSegment, VectorIndexState

log = logging.getLogger(__name__)

ACTOR_NAME = "maintain_vector_index"
INDEX_PREFIX = "ix_chunk_vectors_"
HNSW_OPTIONS = "m = 16, ef_construction = 64"
_LOCK_KEY = 7_316_001  # pg_advisory_lock key: one maintenance run at a time, in any process


@dataclass(frozen=True)
class SearchLayout:
    """Where a search finds every chunk: HNSW indexes over segment ranges, exact scan elsewhere."""

    indexed: tuple[tuple[int, int], ...]  # (first, last) segment of each registered index, ascending
    exact: tuple[tuple[int, int | None], ...]  # segment ranges no index covers; None = no upper end

    @classmethod
    def from_ranges(cls, ranges: Sequence[tuple[int, int]]) -> SearchLayout:
        indexed = tuple(sorted(ranges))
        exact: list[tuple[int, int | None]] = []
        below = 0  # segments start at 0
        for first, last in indexed:
            if first > below:
                exact.append((below, first - 1))
            below = max(below, last + 1)
        exact.append((below, None))
        return cls(indexed=indexed, exact=tuple(exact))

    @classmethod
    def from_arrays(cls, firsts: Sequence[int] | None, lasts: Sequence[int] | None) -> SearchLayout:
        """The layout from `index_ranges()`'s two arrays."""
        return cls.from_ranges(list(zip(firsts or (), lasts or (), strict=True)))


UNINDEXED = SearchLayout.from_ranges(())  # no index: everything scanned exactly


def is_vector_index(name: str | None) -> bool:
    """True for the partial HNSW indexes this module builds (not declared in the models)."""
    return bool(name and name.startswith(INDEX_PREFIX))


def include_in_autogenerate(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's include_object hook: schema comparison leaves these managed indexes alone."""
    return not (type_ == "index" and is_vector_index(name))


def index_ranges() -> Subquery:
    """The registered index ranges as one row of two arrays, `firsts` and `lasts` (NULL when no
    index is registered): a statement can read them beside other things (the search's plan
    does, core.chat.search_plan). `SearchLayout.from_arrays` turns them into the layout."""
    first, last = VectorIndexSegment.first_segment, VectorIndexSegment.last_segment
    return select(
        func.array_agg(aggregate_order_by(first, first)).label("firsts"),
        func.array_agg(aggregate_order_by(last, first)).label("lasts"),
    ).subquery("index_ranges")


def search_layout(session: Session) -> SearchLayout:
    """The registered index ranges and the exact tail, as a search must read them. Read-only."""
    ranges = session.execute(select(index_ranges())).one()
    return SearchLayout.from_arrays(ranges.firsts, ranges.lasts)


@dataclass(frozen=True)
class _Range:
    index_name: str
    first: int
    last: int
    rows: int


@dataclass
class MaintenanceReport:
    """What one maintenance run did."""

    ran: bool = True  # False when another run held the lock
    sealed_rows: int = 0
    built: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_merge(rows: Sequence[int], *, factor: int, base: int, max_rows: int | None = None) -> tuple[int, int] | None:
    """Which adjacent indexes to merge, as (start, stop) positions in `rows` (oldest first), or None.

    Pure. Indexes fall in size tiers of powers of `factor` above `base` rows; the newest run
    of `factor` adjacent indexes in one tier is merged (so each row is rebuilt about
    log_factor(total / base) times, and a search visits at most factor - 1 per tier). A
    merge whose index would fall in a higher tier than `max_rows` is not planned: a cap on
    the rows themselves kept sealed segments, which overshoot the tail size (2,000 -> 2,400 to
    2,900 rows), from ever merging (four exceeded 10,000: six single-segment indexes in a row
    stayed searched one by one to the end of a 100k-chunk load, measured).
    """
    if factor < 2 or len(rows) < factor:
        return None

    def tier(count: int) -> int:
        return int(math.log(max(count, base) / base, factor)) if base > 0 else 0

    for start in range(len(rows) - factor, -1, -1):
        window = rows[start : start + factor]
        if len({tier(count) for count in window}) == 1 and (max_rows is None or tier(sum(window)) <= tier(max_rows)):
            return start, start + factor
    return None


def _ranges(connection: Connection) -> list[_Range]:
    rows = connection.execute(
        select(
            VectorIndexSegment.index_name,
            VectorIndexSegment.first_segment,
            VectorIndexSegment.last_segment,
            VectorIndexSegment.row_count,
        ).order_by(VectorIndexSegment.first_segment)
    ).all()
    return [_Range(row.index_name, row.first_segment, row.last_segment, int(row.row_count)) for row in rows]


def _tail(connection: Connection, ranges: Sequence[_Range]) -> tuple[int, datetime | None]:
    """Rows above the highest indexed segment, and when the newest of them was written."""
    after = max((r.last for r in ranges), default=-1)
    row = connection.execute(
        select(func.count().label("rows"), func.max(DocumentChunk.created_at).label("newest")).where(
            DocumentChunk.segment > after
        )
    ).one()
    return int(row.rows), row.newest


def _drop_index(connection: Connection, name: str) -> None:
    if not is_vector_index(name):
        raise ValueError(f"not a vector segment index: {name}")
    connection.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))


def _drop_strays(connection: Connection, report: MaintenanceReport) -> None:
    """Drop vector indexes that are not registered (left by a run that was killed)."""
    registered = {r.index_name for r in _ranges(connection)}
    present = connection.scalars(
        text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'document_chunks'::regclass AND c.relname LIKE :prefix"
        ),
        {"prefix": INDEX_PREFIX.replace("_", r"\_") + "%"},
    ).all()
    for name in present:
        if name not in registered:
            _drop_index(connection, name)
            report.dropped.append(name)
            log.info("dropped unregistered vector index %s", name)


def _build(connection: Connection, first: int, last: int) -> _Range:
    """CREATE INDEX CONCURRENTLY over segments first..last; returns it, not yet registered."""
    settings = get_settings()
    name = f"{INDEX_PREFIX}{first}_{last}"
    if settings.vector_index_build_memory_mb:
        connection.execute(text(f"SET maintenance_work_mem = '{int(settings.vector_index_build_memory_mb)}MB'"))
    began = time.monotonic()
    connection.execute(
        text(
            f'CREATE INDEX CONCURRENTLY "{name}" ON document_chunks USING hnsw (embedding vector_cosine_ops) '
            f"WITH ({HNSW_OPTIONS}) WHERE segment BETWEEN {int(first)} AND {int(last)}"
        )
    )
    rows = int(
        connection.scalar(select(func.count()).where(DocumentChunk.segment >= first, DocumentChunk.segment <= last))
        or 0
    )
    # Searches plan each registered range from the segment column's statistics. Left to
    # autovacuum they lag a load by minutes: mid-ingest the planner believed fresh ranges
    # empty and sorted them exactly instead of reading their index (10,000 rows sorted on
    # disk per range, ~1.4 s a search with 24 ranges, measured). One column: cheap.
    connection.execute(text("ANALYZE document_chunks (segment)"))
    log.info("built %s over %s rows in %.1fs", name, rows, time.monotonic() - began)
    return _Range(name, first, last, rows)


def _replace(connection: Connection, new: _Range, old: Sequence[_Range], report: MaintenanceReport) -> None:
    """Register `new` and unregister `old` in one statement (atomic), then drop the old indexes."""
    connection.execute(
        text(
            "WITH unregistered AS (DELETE FROM vector_index_segments WHERE index_name = ANY(:old)) "
            "INSERT INTO vector_index_segments (index_name, first_segment, last_segment, row_count) "
            "VALUES (:name, :first, :last, :rows)"
        ),
        {
            "old": [r.index_name for r in old],
            "name": new.index_name,
            "first": new.first,
            "last": new.last,
            "rows": new.rows,
        },
    )
    report.built.append(new.index_name)
    for stale in old:
        _drop_index(connection, stale.index_name)
        report.dropped.append(stale.index_name)


def _seal(connection: Connection) -> int:
    """Open a new segment for writes (one statement); returns the last sealed one."""
    opened = connection.scalar(
        update(VectorIndexState)
        .where(VectorIndexState.id == 1)
        .values(open_segment=VectorIndexState.open_segment + 1)
        .returning(VectorIndexState.open_segment)
    )
    assert opened is not None
    return int(opened) - 1


def maintain_vector_index(*, idle: bool | None = None) -> MaintenanceReport:
    """Seal the tail when it is full (or idle) and merge indexes; see the module doc.

    `idle` forces (True) or suppresses (False) the idle behaviour: seal a tail of any size
    and merge everything into one index. By default the tail is idle when its newest row is
    older than settings.vector_idle_seconds. Idempotent; commits its own small transactions;
    returns at once (ran=False) while another run holds the lock. Long: index builds take
    seconds to minutes. Raises database errors (the next run cleans up).
    """
    settings = get_settings()
    report = MaintenanceReport()
    began = time.monotonic()
    with get_engine().connect() as raw:
        connection = raw.execution_options(isolation_level="AUTOCOMMIT")
        if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}):
            return MaintenanceReport(ran=False)
        try:
            _drop_strays(connection, report)
            while True:
                ranges = _ranges(connection)
                tail_rows, newest = _tail(connection, ranges)
                quiet = (
                    idle
                    if idle is not None
                    else newest is None or newest < datetime.now(UTC) - timedelta(seconds=settings.vector_idle_seconds)
                )
                if tail_rows >= settings.vector_tail_rows or (quiet and tail_rows > 0):
                    first = max((r.last for r in ranges), default=-1) + 1
                    last = _seal(connection)
                    built = _build(connection, first, last)
                    _replace(connection, built, [], report)
                    report.sealed_rows += built.rows
                    continue
                window = plan_merge(
                    [r.rows for r in ranges],
                    factor=settings.vector_merge_factor,
                    base=settings.vector_tail_rows,
                    max_rows=None if quiet else settings.vector_merge_max_rows_while_writing,
                )
                if window is None and quiet and len(ranges) > 1:
                    # Writing has stopped: one index searches fastest, worth a rebuild when the
                    # smaller indexes hold a fair share of the rows (not for a few late uploads).
                    counts = [r.rows for r in ranges]
                    if (sum(counts) - max(counts)) * settings.vector_merge_factor >= max(counts):
                        window = (0, len(ranges))
                if window is None:
                    break
                merged = ranges[window[0] : window[1]]
                _replace(connection, _build(connection, merged[0].first, merged[-1].last), merged, report)
            if quiet and report.built:
                _tidy_after_writing(connection)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
    report.seconds = time.monotonic() - began
    if report.built or report.dropped:
        log.info(
            "vector index maintenance: sealed %s rows, built %s, dropped %s in %.1fs",
            report.sealed_rows,
            report.built,
            report.dropped,
            report.seconds,
        )
    return report


def _tidy_after_writing(connection: Connection) -> None:
    """Writing has stopped and its rows are indexed: vacuum and analyze the chunks and documents now.

    Left to autovacuum, its pass over a bulk load's rows (a gigabyte for 100k chunks, and every
    index) came minutes later, while people searched: searches right after a 100k-chunk load
    cost 17 ms of CPU instead of 9 (benchmarks/results/ingest.md). It also replaces statistics
    taken mid-load (documents still PENDING, chunk segments not yet written) and moves the
    full-text index's pending entries into the index proper. SKIP_LOCKED: a table autovacuum
    is already working on is left to it.
    """
    connection.execute(text("VACUUM (ANALYZE, SKIP_LOCKED) document_chunks, documents"))


def tail_rows() -> int:
    """Chunks no HNSW index covers yet (searched exactly). Read-only."""
    with session_scope() as session:
        after = session.scalar(select(func.max(VectorIndexSegment.last_segment)))
        return int(
            session.scalar(select(func.count()).where(DocumentChunk.segment > (after if after is not None else -1)))
            or 0
        )


def maintenance_due() -> bool:
    """True when the tail has reached settings.vector_tail_rows (worth a maintenance run). Read-only."""
    return tail_rows() >= get_settings().vector_tail_rows
