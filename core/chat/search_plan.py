"""What a search covers and how it will run: the caller's filters, the shape of the search
statement, the SQL conditions on documents, and the plan (exact scan or HNSW, ef_search).

core.chat.retrieval builds and runs the hybrid statement from these; nothing here reads chunks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import ColumnElement, DateTime, Integer, String, and_, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from core.access.rbac import Actor
from core.documents import searchable_documents_clause
from core.documents.vector_segments import UNINDEXED, SearchLayout, index_ranges
from core.platform.config import get_settings
from core.platform.db import DriverStatement, compile_for_driver, driver_rows
from core.platform.errors import InvalidInput
from core.platform.models import Document
from core.platform.statuses import DOCUMENT_TYPES

HNSW_MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search

# Search syntax a user means literally: a "quoted phrase" must appear, a -word must not.
# Every other word is optional (a question rarely shares all its words with the answer),
# so OR needs no syntax of its own.
_PHRASE = re.compile(r'"([^"]*\w[^"]*)"')
_EXCLUDED = re.compile(r"(?:^|\s)-(\w+)")

Strategy = Literal["hnsw", "exact"]


@dataclass(frozen=True)
class RetrievalFilters:
    """Optional narrowing of a search. Empty tuples and None mean "no restriction"."""

    document_types: tuple[str, ...] = ()
    document_ids: tuple[int, ...] = ()
    date_from: date | None = None  # upload date, inclusive
    date_to: date | None = None  # upload date, inclusive

    def __post_init__(self) -> None:
        unknown = set(self.document_types) - set(DOCUMENT_TYPES)
        if unknown:
            raise InvalidInput(f"Unknown document type: {', '.join(sorted(unknown))}.")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidInput("The start of the date range is after its end.")

    @property
    def narrows(self) -> bool:
        return bool(self.document_types or self.document_ids or self.date_from or self.date_to)


@dataclass(frozen=True)
class SearchPlan:
    """How the vector half of a search runs, decided from the filter's estimated size, and
    where the HNSW strategy finds every chunk (its indexes and exact tail)."""

    strategy: Strategy
    ef_search: int
    estimated_chunks: int
    layout: SearchLayout = UNINDEXED


@dataclass(frozen=True)
class SearchShape:
    """What decides the SQL text of a search; the values themselves are bound parameters."""

    strategy: Strategy
    phrases: bool  # the question quotes a phrase: only chunks holding it are candidates
    exclusions: bool  # the question excludes a -word: chunks holding it are dropped
    document_types: bool
    document_ids: bool
    date_from: bool
    date_to: bool
    # Segment ranges of the partial HNSW indexes and of the exact tail (HNSW strategy only):
    # written into the SQL as constants so the planner can match each partial index.
    layout: SearchLayout = UNINDEXED

    @property
    def narrowed(self) -> bool:
        """The caller's filters narrow the search (beyond what the actor may read)."""
        return self.document_types or self.document_ids or self.date_from or self.date_to


def search_shape(
    filters: RetrievalFilters, *, strategy: Strategy = "hnsw", query: str = "", layout: SearchLayout | None = None
) -> SearchShape:
    return SearchShape(
        strategy=strategy,
        phrases=bool(_PHRASE.search(query)),
        exclusions=bool(_EXCLUDED.search(query)),
        document_types=bool(filters.document_types),
        document_ids=bool(filters.document_ids),
        date_from=filters.date_from is not None,
        date_to=filters.date_to is not None,
        layout=layout if layout is not None and strategy == "hnsw" else UNINDEXED,
    )


def required_terms(query: str) -> str:
    """The quoted phrases and -words of `query`, in websearch syntax ("" when it has none)."""
    phrases = [f'"{phrase}"' for phrase in _PHRASE.findall(query)]
    excluded = [f"-{word}" for word in _EXCLUDED.findall(_PHRASE.sub(" ", query))]
    return " ".join(phrases + excluded)


def filter_values(filters: RetrievalFilters) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if filters.document_types:
        values["document_types"] = list(filters.document_types)
    if filters.document_ids:
        values["document_ids"] = list(filters.document_ids)
    if filters.date_from:
        values["date_from"] = datetime.combine(filters.date_from, time.min, UTC)
    if filters.date_to:
        values["date_end"] = datetime.combine(filters.date_to + timedelta(days=1), time.min, UTC)
    return values


def document_conditions(actor: Actor, shape: SearchShape) -> ColumnElement[bool]:
    """Searchable documents the actor may read, narrowed by the filters (as bound parameters)."""
    conditions: list[ColumnElement[bool]] = [searchable_documents_clause(actor)]
    if shape.document_types:
        # Arrays, not IN lists: one statement text whatever the number of values (compile_for_driver).
        conditions.append(Document.document_type == any_(bindparam("document_types", type_=ARRAY(String))))
    if shape.document_ids:
        conditions.append(Document.id == any_(bindparam("document_ids", type_=ARRAY(Integer))))
    if shape.date_from:
        conditions.append(Document.upload_date >= bindparam("date_from", type_=DateTime(timezone=True)))
    if shape.date_to:
        conditions.append(Document.upload_date < bindparam("date_end", type_=DateTime(timezone=True)))
    return and_(*conditions)


@lru_cache(maxsize=256)
def _plan_statement(actor: Actor, shape: SearchShape) -> DriverStatement:
    """The documents' counts `plan_search` decides from, and the index layout, in one statement."""
    matches = document_conditions(actor, shape)
    ranges = index_ranges()
    counts = (
        select(
            func.coalesce(func.sum(Document.chunks_total).filter(matches), 0).label("chunks_matching"),
            func.coalesce(func.sum(Document.chunks_total), 0).label("chunks_all"),
            func.count().filter(matches).label("documents_matching"),
            func.count().label("documents_all"),
        )
        .where(Document.active_generation > 0)
        .subquery("counts")
    )
    return compile_for_driver(select(counts, ranges))


def plan_search(session: Session, *, actor: Actor, filters: RetrievalFilters, candidates: int) -> SearchPlan:
    """Choose exact scan or HNSW (and its ef_search) from the documents table, and read the
    index layout in the same statement (core.documents.vector_segments.index_ranges). Read-only.

    The estimate is the sum of chunks_total over the matching documents (document counts
    when chunk counts are not recorded), compared with the same sum over all searchable ones.
    """
    settings = get_settings()
    base_ef = min(max(settings.hnsw_ef_search, candidates), HNSW_MAX_EF_SEARCH)
    (row,) = driver_rows(session, _plan_statement(actor, search_shape(filters)), filter_values(filters))
    if row.chunks_all > 0:
        estimated, total = int(row.chunks_matching), int(row.chunks_all)
    else:  # chunk counts not recorded: assume documents of equal size
        estimated, total = row.documents_matching * 50, max(row.documents_all * 50, 1)
    layout = SearchLayout.from_arrays(row.firsts, row.lasts)
    if estimated <= settings.retrieval_exact_scan_chunks:
        return SearchPlan(strategy="exact", ef_search=base_ef, estimated_chunks=estimated, layout=layout)
    selectivity = estimated / total
    # The index returns ~ef_search neighbours before filtering; keep ~2x candidates after it.
    wanted = math.ceil(2 * candidates / max(selectivity, 1e-9))
    ef_search = min(max(base_ef, wanted), HNSW_MAX_EF_SEARCH)
    return SearchPlan(strategy="hnsw", ef_search=ef_search, estimated_chunks=estimated, layout=layout)
