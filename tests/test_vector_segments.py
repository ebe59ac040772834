"""Vector index segments: chunks are searchable from their commit, indexed in bulk, merged, never lost."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from core.access.rbac import Actor
from core.ai.hashing import hashing_embed
from core.chat.retrieval import explain_search, search_chunks
from core.chat.search_plan import RetrievalFilters, Strategy, search_shape
from core.chat.search_statement import hybrid_search_statement
from core.documents import index_document, upload_documents
from core.documents.vector_segments import (
    INDEX_PREFIX,
    SearchLayout,
    maintain_vector_index,
    plan_merge,
    search_layout,
    tail_rows,
)
from core.platform.config import get_settings
from core.platform.db import get_engine, session_scope
from core.platform.models import DocumentChunk, VectorIndexSegment
from tests.conftest import unique


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Seal after 3 chunks, merge 2 at a time, never idle by the clock (tests say when)."""
    monkeypatch.setenv("QUORUM_VECTOR_TAIL_ROWS", "3")
    monkeypatch.setenv("QUORUM_VECTOR_MERGE_FACTOR", "2")
    monkeypatch.setenv("QUORUM_VECTOR_IDLE_SECONDS", "86400")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _index(actor: Actor, body: str) -> int:
    [outcome] = upload_documents(actor=actor, files=[_named(io.BytesIO(body.encode()), f"{unique('doc')}.txt")])
    assert outcome.document_id is not None, outcome.message
    index_document(outcome.document_id)
    return outcome.document_id


def _named(stream: io.BytesIO, name: str) -> io.BytesIO:
    stream.name = name  # type: ignore[attr-defined]
    return stream


def _hits(actor: Actor, question: str) -> list[int]:
    embedding = hashing_embed([question], get_settings().embedding_dim)[0].tolist()
    with session_scope() as session:
        return [
            hit.document_id
            for hit in search_chunks(session, actor=actor, query=question, query_embedding=embedding, k=50)
        ]


def _registered() -> list[tuple[str, int, int]]:
    with session_scope() as session:
        rows = session.execute(
            select(
                VectorIndexSegment.index_name, VectorIndexSegment.first_segment, VectorIndexSegment.last_segment
            ).order_by(VectorIndexSegment.first_segment)
        ).all()
    return [(row[0], row[1], row[2]) for row in rows]


def _rows_per_index() -> list[int]:
    with session_scope() as session:
        return [
            int(session.scalar(select(func.count()).where(DocumentChunk.segment.between(first, last))) or 0)
            for _, first, last in _registered()
        ]


def _present_vector_indexes() -> set[str]:
    with get_engine().connect() as connection:
        return set(
            connection.scalars(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'document_chunks' AND indexname LIKE :p"),
                {"p": INDEX_PREFIX + "%"},
            )
        )


def _covered_once() -> None:
    """Every chunk lies in exactly one place a search reads: one registered range or the exact tail."""
    layout = search_layout_now()
    with session_scope() as session:
        segments = session.scalars(select(DocumentChunk.segment)).all()
    for segment in segments:
        places = sum(first <= segment <= last for first, last in layout.indexed) + sum(
            first <= segment and (last is None or segment <= last) for first, last in layout.exact
        )
        assert places == 1, (segment, layout)
    assert _present_vector_indexes() == {name for name, _, _ in _registered()}


def search_layout_now() -> SearchLayout:
    with session_scope() as session:
        return search_layout(session)


def test_layout_tiles_every_segment_with_the_gaps_scanned_exactly() -> None:
    assert SearchLayout.from_ranges([]).exact == ((0, None),)
    layout = SearchLayout.from_ranges([(5, 9), (0, 2)])
    assert layout.indexed == ((0, 2), (5, 9))
    assert layout.exact == ((3, 4), (10, None))


def test_merge_plan_takes_the_newest_run_of_similar_sizes() -> None:
    assert plan_merge([100, 100, 100], factor=4, base=100) is None
    assert plan_merge([100, 100, 100, 100], factor=4, base=100) == (0, 4)
    # A big old index is left alone; the four small new ones are merged.
    assert plan_merge([6400, 100, 90, 120, 100], factor=4, base=100) == (1, 5)
    assert plan_merge([6400, 400, 100, 100], factor=2, base=100) == (2, 4)
    assert plan_merge([5], factor=2, base=100) is None
    # Capped while writing: the newest run that fits, or none.
    assert plan_merge([400, 400, 100, 100], factor=2, base=100, max_rows=500) == (2, 4)
    assert plan_merge([400, 400, 100, 100], factor=2, base=100, max_rows=150) is None
    assert plan_merge([100, 100, 400, 400], factor=2, base=100, max_rows=500) == (0, 2)
    # The cap is a size tier: sealed segments overshoot the tail size, and four of them must
    # still merge under a cap of four tails' rows; four merged indexes must not.
    assert plan_merge([2600, 2400, 2900, 2700], factor=4, base=2000, max_rows=10_000) == (0, 4)
    assert plan_merge([10_600, 10_400, 9_900, 10_100], factor=4, base=2000, max_rows=10_000) is None


def test_chunks_are_searchable_at_commit_then_indexed_merged_and_still_found(small_segments: None, make_user) -> None:  # type: ignore[no-untyped-def]
    maintain_vector_index(idle=True)  # start from an empty tail whatever earlier tests wrote
    actor: Actor = make_user()
    word = unique("zebraword")
    first = _index(actor, f"The {word} migration starts on Monday. " * 3)
    # Searchable the moment it is COMPLETED, before any index covers it.
    assert tail_rows() >= 1
    assert first in _hits(actor, f"When does the {word} migration start?")

    documents = [first] + [_index(actor, f"Paragraph {n} about the {word} rollout plan.") for n in range(6)]
    assert tail_rows() >= get_settings().vector_tail_rows
    report = maintain_vector_index()
    assert report.ran and report.built and report.sealed_rows >= 3
    assert tail_rows() == 0
    _covered_once()
    assert set(documents) <= set(_hits(actor, f"{word} rollout plan migration"))

    # More writes, more seals: similar-sized indexes are merged two at a time.
    documents += [_index(actor, f"Note {n}: the {word} review is on Friday.") for n in range(4)]
    maintain_vector_index(idle=False)
    _covered_once()
    maintain_vector_index(idle=True)  # quiet: everything ends in one index
    _covered_once()
    assert tail_rows() == 0
    # Quiet: one index, unless one large index (earlier tests' rows) dwarfs the rest, which
    # then stay as they are rather than rebuild the large one for a few late uploads.
    sizes = _rows_per_index()
    factor = get_settings().vector_merge_factor
    assert len(sizes) == 1 or (sum(sizes) - max(sizes)) * factor < max(sizes), sizes
    assert set(documents) <= set(_hits(actor, f"{word} review rollout migration"))


def test_each_index_range_is_searched_through_its_partial_index(small_segments: None, make_user) -> None:  # type: ignore[no-untyped-def]
    actor: Actor = make_user()
    _index_in_ranges(actor, "Segment planning note")
    with session_scope() as session:
        # On a few rows the planner rightly prefers sorting them; costing sorts out shows that
        # each range's partial HNSW index can serve its part (the tail still sorts: it must).
        session.execute(text("SET LOCAL enable_sort = off"))
        plan = _explained(session, actor, "planning note")
    for name, _, _ in _registered():
        assert f"Index Scan using {name}" in plan, [line for line in plan.splitlines() if "Index" in line]


def test_the_exact_tail_is_read_by_its_segment_before_anything_is_joined(small_segments: None, make_user) -> None:  # type: ignore[no-untyped-def]
    """Mid-load, stale statistics let the planner reach the tail through every document's chunks
    (100k rows read for 1,200); read first by segment alone, its cost is the tail's size."""
    actor: Actor = make_user()
    _index_in_ranges(actor, "Tail note")
    _index(actor, f"Newest tail note {unique('w')}.")  # in the open segment, no index yet
    layout = search_layout_now()
    assert layout.indexed
    with session_scope() as session:
        plan = _explained(session, actor, "tail note")
    lines = plan.splitlines()
    start = next((n for n, line in enumerate(lines) if line.strip() == "CTE vector_tail"), None)
    assert start is not None, plan
    depth = len(lines[start]) - len(lines[start].lstrip())
    body = lines[start + 1 :]
    end = next((n for n, line in enumerate(body) if len(line) - len(line.lstrip()) <= depth), len(body))
    tail = "\n".join(body[:end])  # the CTE's own plan
    first_open = layout.exact[-1][0]
    assert f"segment >= {first_open}" in tail, tail
    assert "documents" not in tail, tail  # nothing joined inside: eligibility comes after


def test_a_range_is_registered_with_statistics_that_know_its_rows(small_segments: None, make_user) -> None:  # type: ignore[no-untyped-def]
    """Searches plan each range from the segment column's statistics: stale ones (a load
    outruns autovacuum) made the planner sort fresh ranges instead of reading their index."""
    actor: Actor = make_user()
    for n in range(4):
        _index(actor, f"Statistics note {n} {unique('w')}.")
    maintain_vector_index(idle=False)
    newest = max(last for _, _, last in _registered())
    with session_scope() as session:
        known = session.scalar(
            text(
                "SELECT max(value) FROM pg_stats, LATERAL unnest(coalesce(histogram_bounds::text::int[], '{}') "
                "|| coalesce(most_common_vals::text::int[], '{}')) AS value "
                "WHERE tablename = 'document_chunks' AND attname = 'segment'"
            )
        )
    assert known is not None and known >= newest


def _index_in_ranges(actor: Actor, words: str) -> None:
    """Four small documents whose words start with `words`, indexed and merged into ranges."""
    for n in range(4):
        _index(actor, f"{words} {n} {unique('w')}.")
    maintain_vector_index(idle=True)


def _explained(session: Any, actor: Actor, question: str, strategy: Strategy = "hnsw") -> str:
    """The plan of the search for `question` (HNSW strategy by default), as search_chunks runs it."""
    embedding = hashing_embed([question], get_settings().embedding_dim)[0]
    return explain_search(session, actor=actor, query=question, query_embedding=embedding, strategy=strategy)


def test_a_run_killed_before_registering_leaves_nothing_behind(small_segments: None, make_user) -> None:  # type: ignore[no-untyped-def]
    actor: Actor = make_user()
    document = _index(actor, f"Killed maintenance leaves {unique('w')} searchable.")
    # What a run killed after its build and before registering leaves: a valid, unknown index.
    with get_engine().connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text(
                f"CREATE INDEX {INDEX_PREFIX}900000_900001 ON document_chunks USING hnsw "
                "(embedding vector_cosine_ops) WHERE segment BETWEEN 900000 AND 900001"
            )
        )
    report = maintain_vector_index(idle=True)
    assert f"{INDEX_PREFIX}900000_900001" in report.dropped
    _covered_once()
    assert document in _hits(actor, "killed maintenance searchable")


def test_only_one_maintenance_runs_at_a_time(small_segments: None) -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(7316001)"))
        try:
            assert maintain_vector_index(idle=True).ran is False
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(7316001)"))
    assert maintain_vector_index(idle=True).ran is True


def test_new_chunks_take_the_open_segment(small_segments: None, make_user) -> None:  # type: ignore[no-untyped-def]
    actor: Actor = make_user()
    before = _index(actor, f"Before sealing {unique('w')}.")
    maintain_vector_index(idle=True)
    after = _index(actor, f"After sealing {unique('w')}.")
    with session_scope() as session:
        old = session.scalar(select(func.max(DocumentChunk.segment)).where(DocumentChunk.document_id == before))
        new = session.scalar(select(func.min(DocumentChunk.segment)).where(DocumentChunk.document_id == after))
    assert old is not None and new is not None and new > old
    assert new > max(last for _, _, last in _registered())


def test_while_writing_no_merge_outgrows_its_cap_and_quiet_merges_everything(
    small_segments: None, monkeypatch: pytest.MonkeyPatch, make_user
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUORUM_VECTOR_MERGE_MAX_ROWS_WHILE_WRITING", "7")
    get_settings.cache_clear()
    maintain_vector_index(idle=True)
    before = max((last for _, _, last in _registered()), default=-1)
    actor: Actor = make_user()
    word = unique("capword")
    documents = []
    for batch in range(6):
        documents += [_index(actor, f"Entry {batch}-{n}: the {word} audit.") for n in range(3)]
        maintain_vector_index(idle=False)
        _covered_once()
    built_while_writing = [
        rows for (_, first, _), rows in zip(_registered(), _rows_per_index(), strict=True) if first > before
    ]
    assert len(built_while_writing) >= 2 and max(built_while_writing) <= 7, built_while_writing
    assert any(rows > 3 for rows in built_while_writing)  # merges did happen, within the cap
    maintain_vector_index(idle=True)
    _covered_once()
    assert tail_rows() == 0
    sizes = _rows_per_index()
    assert len(sizes) == 1 or (sum(sizes) - max(sizes)) * get_settings().vector_merge_factor < max(sizes), sizes
    assert set(documents) <= set(_hits(actor, f"{word} audit entry"))


def _vacuumed_and_analyzed() -> dict[str, tuple[int, int]]:
    """Manual VACUUM and ANALYZE counts of the chunks and documents tables (cumulative statistics)."""
    with session_scope() as session:
        session.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = session.execute(
            text(
                "SELECT relname, vacuum_count, analyze_count FROM pg_stat_user_tables "
                "WHERE relname IN ('document_chunks', 'documents')"
            )
        ).all()
    return {row.relname: (row.vacuum_count, row.analyze_count) for row in rows}


def test_when_writing_stops_the_indexed_rows_are_vacuumed_and_analyzed(small_segments: None, make_user) -> None:  # type: ignore[no-untyped-def]
    maintain_vector_index(idle=True)
    actor: Actor = make_user()
    word = unique("tidyword")
    _index(actor, f"The {word} handbook, first part. " * 3)
    before = _vacuumed_and_analyzed()
    assert maintain_vector_index(idle=False).built == []  # still writing, tail below its size: nothing to do
    assert _vacuumed_and_analyzed() == before

    assert maintain_vector_index(idle=True).built  # writing stopped: the tail sealed and indexed
    after = _vacuumed_and_analyzed()
    for table in ("document_chunks", "documents"):
        assert after[table][0] > before[table][0] and after[table][1] > before[table][1], (table, before, after)
    assert maintain_vector_index(idle=True).built == []  # nothing new written: nothing more to tidy
    assert _vacuumed_and_analyzed() == after


@pytest.mark.parametrize("strategy", ["hnsw", "exact"])
def test_candidates_come_from_the_indexes_whatever_the_documents_statistics_say(
    small_segments: None, make_user, strategy: Strategy
) -> None:  # type: ignore[no-untyped-def]
    """Mid-load the documents table's statistics said almost no document was searchable yet
    (analyzed while a bulk upload was still PENDING): the generic plan then walked every
    searchable document's chunks, reading each one's words, instead of asking the full-text
    index (1.3 s a search at 60k chunks, measured). Eligibility is checked per candidate. The
    exact strategy too (a search of everything before the first index exists) for full text."""
    actor: Actor = make_user()
    _index_in_ranges(actor, "Statistics planning note")
    with session_scope() as session:
        session.execute(text("ANALYZE documents"))
        session.execute(text("SET LOCAL enable_seqscan = off"))  # a test's few rows are read whole otherwise
        plan = _explained(session, actor, "statistics planning note", strategy=strategy)
    scans = [line.strip() for line in plan.splitlines() if "Scan" in line]
    assert any("Bitmap Index Scan on ix_document_chunks_search_vector" in line for line in scans), scans
    if strategy == "hnsw":  # exact compares every eligible chunk by vector: reached as the planner likes
        by_document = ("uq_document_chunks_position", "ix_document_chunks_document_id")
        assert not any(name in line for line in scans for name in by_document), scans


def test_full_text_candidates_reach_documents_only_when_the_filters_leave_few_chunks(make_user) -> None:  # type: ignore[no-untyped-def]
    """The statement's text, whatever the planner would do with it today: a search of everything
    asks the full-text index and checks each candidate's document (a join would let stale
    statistics walk every document first, as above); only a narrowing filter, which leaves few
    chunks (exact strategy), reaches them through their documents."""
    actor: Actor = make_user()

    def joins(filters: RetrievalFilters, strategy: Strategy) -> int:
        statement = hybrid_search_statement(actor, search_shape(filters, strategy=strategy))
        return str(statement.compile(get_engine())).count("JOIN documents ")

    everything, one_type = RetrievalFilters(), RetrievalFilters(document_types=("meeting_minutes",))
    # The vector arm's exact scan, the exact tail and the final rows' documents are joins.
    assert joins(everything, "hnsw") == 2  # the tail's and the final rows'
    assert joins(everything, "exact") == 2  # the exact vector scan's and the final rows'
    assert joins(one_type, "exact") == 4  # and both full-text candidate queries
