"""Hybrid retrieval: pgvector HNSW + Postgres full-text, fused by reciprocal rank, in one statement.

The statement ranks the chunks of searchable documents two ways, keeps the top candidates
of each, and fuses the two lists by reciprocal rank (RRF, k=60):

- vector: cosine distance to the question's embedding, through the partial HNSW indexes
  over ranges of segments plus an exact scan of the newest chunks no index covers yet
  (core.documents.vector_segments; ``hnsw.ef_search`` set for the transaction from Settings);
- full text: ``websearch_to_tsquery('english', question)`` against the generated
  ``search_vector`` column through its GIN index, ranked with ``ts_rank_cd``; when every
  word finds fewer than k chunks, chunks sharing at least two words, then any word.

Visibility and searchability (core.documents.indexing.searchable_documents_clause: what the actor
may read, among documents with an active chunk generation), the join on each document's
active generation and the caller's filters (document types, specific documents, upload
date range) are applied inside that same statement, so a chunk the actor may not see never
leaves the database. Status is deliberately not filtered: a document being re-indexed
stays searchable through its previous generation until the new one is swapped in.

The statement is built once per actor and shape of search (cached); the question, its
embedding, the filter values, k and the candidate count are bound parameters.

pgvector 0.6.2 has no iterative index scans: an HNSW scan returns at most ``ef_search``
neighbours and the filter is applied after it, so a selective filter can starve the vector
list. Before the statement a small query over the documents table estimates how many
chunks the filter leaves: when that is at most ``retrieval_exact_scan_chunks`` the vector
list is computed by an exact scan of just those chunks, otherwise ``ef_search`` is raised
in proportion to the filter's selectivity (up to pgvector's maximum of 1000).

Accepted corrections (message_feedback rows an admin reviewed and accepted) are found by
`trusted_corrections`: those whose stored question embedding is close to the new question.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import Session, aliased

from core.access.rbac import Actor
from core.ai.base import AIProvider, UsageContext
from core.ai.embedding_space import check_embedding_space
from core.chat.conversation import question_before
from core.documents import searchable_documents_clause
from core.documents.vector_segments import UNINDEXED, SearchLayout, search_layout
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import InvalidInput
from core.platform.models import DOCUMENT_TYPES, ChatMessage, Document, DocumentChunk, MessageFeedback

log = logging.getLogger(__name__)

RRF_K = 60
HNSW_MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
MAX_QUERY_CHARS = 4000

# Operators websearch_to_tsquery understands; when a query uses one the user meant it.
# Lower-case "or" is not counted: in a question it is just a word, and ORing is the default.
_SEARCH_SYNTAX = re.compile(r'"|(?:^|\s)-\w|\sOR\s')
_ENGLISH: ColumnElement[str] = literal_column("'english'::regconfig")

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
class RetrievedChunk:
    """One chunk returned by a search, with where it comes from and why it ranked."""

    chunk_id: int
    document_id: int
    filename: str
    document_type: str
    content: str
    page: int | None
    heading: str | None
    start_seconds: float | None
    end_seconds: float | None
    transcription_job_id: int | None
    score: float  # fused reciprocal-rank score, higher is better
    vector_rank: int | None  # 1-based rank in the vector list, None when not in it
    text_rank: int | None  # 1-based rank in the full-text list, None when not in it
    vector_distance: float | None  # cosine distance, when in the vector list
    text_score: float | None  # ts_rank_cd, when in the full-text list


@dataclass(frozen=True)
class SearchPlan:
    """How the vector half of a search runs, decided from the filter's estimated size."""

    strategy: Strategy
    ef_search: int
    estimated_chunks: int


@dataclass(frozen=True)
class TrustedCorrection:
    """An accepted correction whose original question is close to the new one."""

    feedback_id: int
    message_id: int
    question: str
    correction: str
    distance: float


@dataclass(frozen=True)
class _Shape:
    """What decides the SQL text of a search; the values themselves are bound parameters."""

    strategy: Strategy
    strict_syntax: bool  # the user wrote websearch syntax: keep its AND/OR/phrase meaning
    document_types: bool
    document_ids: bool
    date_from: bool
    date_to: bool
    # Segment ranges of the partial HNSW indexes and of the exact tail (HNSW strategy only):
    # written into the SQL as constants so the planner can match each partial index.
    layout: SearchLayout = UNINDEXED


def _shape(
    filters: RetrievalFilters, *, strategy: Strategy = "hnsw", query: str = "", layout: SearchLayout | None = None
) -> _Shape:
    return _Shape(
        strategy=strategy,
        strict_syntax=bool(_SEARCH_SYNTAX.search(query)),
        document_types=bool(filters.document_types),
        document_ids=bool(filters.document_ids),
        date_from=filters.date_from is not None,
        date_to=filters.date_to is not None,
        layout=layout if layout is not None and strategy == "hnsw" else UNINDEXED,
    )


def _filter_values(filters: RetrievalFilters) -> dict[str, Any]:
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


def _document_conditions(actor: Actor, shape: _Shape) -> ColumnElement[bool]:
    """Searchable documents the actor may read, narrowed by the filters (as bound parameters)."""
    conditions: list[ColumnElement[bool]] = [searchable_documents_clause(actor)]
    if shape.document_types:
        conditions.append(Document.document_type.in_(bindparam("document_types", expanding=True)))
    if shape.document_ids:
        conditions.append(Document.id.in_(bindparam("document_ids", expanding=True)))
    if shape.date_from:
        conditions.append(Document.upload_date >= bindparam("date_from", type_=DateTime(timezone=True)))
    if shape.date_to:
        conditions.append(Document.upload_date < bindparam("date_end", type_=DateTime(timezone=True)))
    return and_(*conditions)


@lru_cache(maxsize=256)
def _plan_statement(actor: Actor, shape: _Shape) -> Select[*tuple[Any, ...]]:
    matches = _document_conditions(actor, shape)
    return select(
        func.coalesce(func.sum(Document.chunks_total).filter(matches), 0),
        func.coalesce(func.sum(Document.chunks_total), 0),
        func.count().filter(matches),
        func.count(),
    ).where(Document.active_generation > 0)


def plan_search(session: Session, *, actor: Actor, filters: RetrievalFilters, candidates: int) -> SearchPlan:
    """Choose exact scan or HNSW (and its ef_search) from the documents table. Read-only.

    The estimate is the sum of chunks_total over the matching documents (document counts
    when chunk counts are not recorded), compared with the same sum over all searchable ones.
    """
    settings = get_settings()
    base_ef = max(settings.hnsw_ef_search, candidates)
    row = session.execute(_plan_statement(actor, _shape(filters)), _filter_values(filters)).one()
    chunks_matching, chunks_all, docs_matching, docs_all = (int(value) for value in row)
    if chunks_all > 0:
        estimated, total = chunks_matching, chunks_all
    else:  # chunk counts not recorded: assume documents of equal size
        estimated, total = docs_matching * 50, max(docs_all * 50, 1)
    if estimated <= settings.retrieval_exact_scan_chunks:
        return SearchPlan(strategy="exact", ef_search=base_ef, estimated_chunks=estimated)
    selectivity = estimated / total
    # The index returns ~ef_search neighbours before filtering; keep ~2x candidates after it.
    wanted = math.ceil(2 * candidates / max(selectivity, 1e-9))
    ef_search = min(max(base_ef, wanted), HNSW_MAX_EF_SEARCH)
    return SearchPlan(strategy="hnsw", ef_search=ef_search, estimated_chunks=estimated)


def _text_query(strict_syntax: bool) -> ColumnElement[Any]:
    """websearch_to_tsquery of the question, its terms ORed unless the user wrote search syntax.

    Questions are sentences: requiring every word (websearch's AND) would miss most chunks,
    and ts_rank_cd still ranks chunks matching more terms higher. Quotes, -exclusions and
    OR keep websearch's own meaning.
    """
    parsed = func.websearch_to_tsquery(_ENGLISH, bindparam("query", type_=Text))
    if strict_syntax:
        return parsed
    return cast(func.replace(cast(parsed, Text), " & ", " | "), TSQUERY)


def _two_term_query() -> ColumnElement[Any]:
    """A tsquery matching chunks that share at least two of the question's terms.

    (a & b) | (a & c) | (b & c) ... over the question's lexemes (the same 'english'
    normalisation as the index); NULL, which matches nothing, when it has fewer than two.
    """
    words = func.tsvector_to_array(func.to_tsvector(_ENGLISH, bindparam("query", type_=Text)))
    first = func.unnest(words).table_valued("lexeme").render_derived(name="first_term")
    second = func.unnest(words).table_valued("lexeme").render_derived(name="second_term")
    pair = func.quote_literal(first.c.lexeme).concat(" & ").concat(func.quote_literal(second.c.lexeme))
    pairs = (
        select(func.string_agg(pair, literal_column("' | '")))
        .select_from(first.join(second, first.c.lexeme < second.c.lexeme))
        .scalar_subquery()
    )
    return cast(pairs, TSQUERY)


def _vector_top(
    shape: _Shape, chunk_of_document: ColumnElement[bool], eligible: ColumnElement[bool], candidates: Any
) -> Select[*tuple[Any, ...]]:
    """The `candidates` nearest eligible chunks: (chunk_id, distance).

    Exact strategy: one exact scan. HNSW: one index scan per partial index (its segment
    range as constants, so the planner uses that index), plus an exact scan of the segments
    no index covers yet (core.documents.vector_segments), merged by distance.
    """
    distance = DocumentChunk.embedding.cosine_distance(bindparam("query_embedding"))

    def nearest(*where: ColumnElement[bool], exact: bool) -> Select[*tuple[Any, ...]]:
        statement = (
            select(DocumentChunk.id.label("chunk_id"), distance.label("distance"))
            .join(Document, chunk_of_document)
            .where(eligible, *where)
            .limit(candidates)
        )
        # "+ 0" hides the distance from the planner's index matching: no HNSW index can
        # serve this ORDER BY, so every eligible chunk is compared (exact top-N sort).
        return statement.order_by(distance + 0.0, DocumentChunk.id) if exact else statement.order_by(distance)

    if shape.strategy == "exact":
        return nearest(exact=True)
    segment = DocumentChunk.segment

    def constant(value: int) -> ColumnElement[int]:
        return literal_column(str(int(value)), Integer)

    parts = [
        nearest(segment.between(constant(first), constant(last)), exact=False) for first, last in shape.layout.indexed
    ]
    uncovered = [
        segment >= constant(first) if last is None else segment.between(constant(first), constant(last))
        for first, last in shape.layout.exact
    ]
    parts.append(nearest(or_(*uncovered), exact=True))
    if len(parts) == 1:
        return parts[0]
    merged = union_all(*parts).subquery("vector_parts")
    return select(merged.c.chunk_id, merged.c.distance).order_by(merged.c.distance, merged.c.chunk_id).limit(candidates)


@lru_cache(maxsize=256)
def hybrid_search_statement(actor: Actor, shape: _Shape) -> Select[*tuple[Any, ...]]:
    """The one SELECT that retrieves, filters and fuses, for `actor` and a shape of search.

    Pure and cached: values are bound parameters (query, query_embedding, candidates, k,
    max_distance and the filter values), so building the statement costs nothing per query.
    """
    chunk_of_document = and_(
        Document.id == DocumentChunk.document_id, DocumentChunk.generation == Document.active_generation
    )
    eligible = _document_conditions(actor, shape)
    candidates = bindparam("candidates", type_=Integer)

    vector_sub = _vector_top(shape, chunk_of_document, eligible, candidates).subquery("vector_top")
    vector_hits = select(
        vector_sub.c.chunk_id,
        vector_sub.c.distance,
        func.row_number().over(order_by=(vector_sub.c.distance, vector_sub.c.chunk_id)).label("rank"),
    ).cte("vector_hits")

    # Full text in tiers, each tried only when the ones before found fewer than k chunks
    # (each scan sits behind a one-time filter, so Postgres skips it otherwise):
    # 1. every term of the question (websearch semantics);
    # 2. at least two of its terms: natural questions rarely match every word, and ranking
    #    every chunk that shares one common word is the costly case on a large corpus;
    # 3. any term (a question with one known word, or rare words only).
    k = bindparam("k", type_=Integer)
    strict = func.websearch_to_tsquery(_ENGLISH, bindparam("query", type_=Text))
    strict_score = func.ts_rank_cd(DocumentChunk.search_vector, strict)
    strict_top = (
        select(DocumentChunk.id.label("chunk_id"), strict_score.label("score"))
        .join(Document, chunk_of_document)
        .where(eligible, DocumentChunk.search_vector.op("@@")(strict))
        .order_by(strict_score.desc(), DocumentChunk.id)
        .limit(candidates)
        .cte("strict_top")
    )
    tiers = [select(strict_top.c.chunk_id, literal_column("1").label("tier"), strict_top.c.score)]
    if not shape.strict_syntax:
        loose = _text_query(strict_syntax=False)
        loose_score = func.ts_rank_cd(DocumentChunk.search_vector, loose)
        strict_too_few = select(func.count()).select_from(strict_top).scalar_subquery() < k

        def ranked(matching: ColumnElement[Any], *only_if: ColumnElement[bool], name: str) -> Any:
            return (
                select(DocumentChunk.id.label("chunk_id"), loose_score.label("score"))
                .join(Document, chunk_of_document)
                .where(eligible, *only_if, DocumentChunk.search_vector.op("@@")(matching))
                .order_by(loose_score.desc(), DocumentChunk.id)
                .limit(candidates)
                .cte(name)
            )

        most_top = ranked(_two_term_query(), strict_too_few, name="most_top")
        most_too_few = select(func.count()).select_from(most_top).scalar_subquery() < k
        any_top = ranked(loose, strict_too_few, most_too_few, name="any_top")
        tiers.append(
            select(most_top.c.chunk_id, literal_column("2").label("tier"), most_top.c.score).where(
                most_top.c.chunk_id.not_in(select(strict_top.c.chunk_id))
            )
        )
        tiers.append(
            select(any_top.c.chunk_id, literal_column("3").label("tier"), any_top.c.score).where(
                any_top.c.chunk_id.not_in(select(strict_top.c.chunk_id)),
                any_top.c.chunk_id.not_in(select(most_top.c.chunk_id)),
            )
        )
    text_sub = union_all(*tiers).subquery("text_top") if len(tiers) > 1 else tiers[0].subquery("text_top")
    ranked_text = select(
        text_sub.c.chunk_id,
        text_sub.c.score,
        func.row_number().over(order_by=(text_sub.c.tier, text_sub.c.score.desc(), text_sub.c.chunk_id)).label("rank"),
    ).subquery("ranked_text")
    text_hits = (
        select(ranked_text.c.chunk_id, ranked_text.c.score, ranked_text.c.rank)
        .where(ranked_text.c.rank <= candidates)
        .cte("text_hits")
    )

    fused_score = func.coalesce(1.0 / (RRF_K + vector_hits.c.rank), 0.0) + func.coalesce(
        1.0 / (RRF_K + text_hits.c.rank), 0.0
    )
    # A chunk found only by the vector half must be close enough to count as relevant.
    relevant = or_(text_hits.c.chunk_id.is_not(None), vector_hits.c.distance <= bindparam("max_distance", type_=Float))
    fused = (
        select(
            func.coalesce(vector_hits.c.chunk_id, text_hits.c.chunk_id).label("chunk_id"),
            cast(fused_score, Float).label("score"),
            cast(vector_hits.c.rank, Integer).label("vector_rank"),
            cast(text_hits.c.rank, Integer).label("text_rank"),
            vector_hits.c.distance.label("vector_distance"),
            text_hits.c.score.label("text_score"),
        )
        .select_from(vector_hits.join(text_hits, vector_hits.c.chunk_id == text_hits.c.chunk_id, full=True))
        .where(relevant)
        .cte("fused")
    )
    chunk = aliased(DocumentChunk, name="c")
    document = aliased(Document, name="d")
    return (
        select(
            chunk.id,
            chunk.document_id,
            document.filename,
            document.document_type,
            chunk.content,
            chunk.page_number,
            chunk.heading,
            chunk.start_seconds,
            chunk.end_seconds,
            document.transcription_job_id,
            fused.c.score,
            fused.c.vector_rank,
            fused.c.text_rank,
            fused.c.vector_distance,
            fused.c.text_score,
        )
        .select_from(fused)
        .join(chunk, chunk.id == fused.c.chunk_id)
        .join(document, document.id == chunk.document_id)
        .order_by(fused.c.score.desc(), chunk.id)
        .limit(bindparam("k", type_=Integer))
    )


def search_chunks(
    session: Session,
    *,
    actor: Actor,
    query: str,
    query_embedding: Sequence[float],
    filters: RetrievalFilters | None = None,
    k: int | None = None,
    candidates: int | None = None,
    strategy: Strategy | None = None,
    ef_search: int | None = None,
) -> list[RetrievedChunk]:
    """The top `k` chunks for `query` that `actor` may read, best first. Does not commit.

    Sets hnsw.ef_search for the session's current transaction only (SET LOCAL). `strategy`
    forces exact scan or HNSW and `ef_search` its search width (benchmarks); by default
    `plan_search` chooses both.
    Raises InvalidInput for an empty or over-long query.
    """
    settings = get_settings()
    query = query.strip()
    if not query:
        raise InvalidInput("Type a question first.")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"Questions are limited to {MAX_QUERY_CHARS} characters.")
    filters = filters or RetrievalFilters()
    k = k or settings.retrieval_k
    candidates = max(candidates or settings.retrieval_candidates, k)
    plan = plan_search(session, actor=actor, filters=filters, candidates=candidates)
    if strategy is not None:
        plan = SearchPlan(strategy=strategy, ef_search=plan.ef_search, estimated_chunks=plan.estimated_chunks)
    if ef_search is not None:
        plan = SearchPlan(strategy=plan.strategy, ef_search=ef_search, estimated_chunks=plan.estimated_chunks)
    layout: SearchLayout | None = None
    if plan.strategy == "hnsw":
        session.execute(select(func.set_config("hnsw.ef_search", str(plan.ef_search), True)))
        layout = search_layout(session)
    statement = hybrid_search_statement(actor, _shape(filters, strategy=plan.strategy, query=query, layout=layout))
    values = _filter_values(filters) | {
        "query": query,
        "query_embedding": list(query_embedding),
        "candidates": candidates,
        "k": k,
        "max_distance": settings.retrieval_max_distance,
    }
    rows: Sequence[Any] = session.execute(statement, values).all()
    log.debug("retrieval %s ef_search=%s -> %d chunks", plan.strategy, plan.ef_search, len(rows))
    return [
        RetrievedChunk(
            chunk_id=row[0],
            document_id=row[1],
            filename=row[2],
            document_type=row[3],
            content=row[4],
            page=row[5],
            heading=row[6],
            start_seconds=row[7],
            end_seconds=row[8],
            transcription_job_id=row[9],
            score=float(row[10]),
            vector_rank=row[11],
            text_rank=row[12],
            vector_distance=None if row[13] is None else float(row[13]),
            text_score=None if row[14] is None else float(row[14]),
        )
        for row in rows
    ]


def embed_question(provider: AIProvider, *, question: str, user_id: int | None) -> list[float]:
    """The embedding of one question, recorded in the usage ledger under the user."""
    return provider.embed([question], usage=UsageContext(purpose="embedding", user_id=user_id))[0]


def retrieve(
    *,
    actor: Actor,
    query: str,
    filters: RetrievalFilters | None = None,
    k: int | None = None,
    provider: AIProvider | None = None,
) -> list[RetrievedChunk]:
    """Embed `query` and return the best chunks `actor` may read. Own read-only transaction.

    Visibility is the only access check: an actor without read_documents still finds the
    documents they uploaded themselves. Raises InvalidInput for an empty query and
    EmbeddingSpaceMismatch when the configured embedder differs from the stored vectors.
    """
    from core.ai import get_provider

    provider = provider or get_provider()
    check_embedding_space(provider)
    if not query.strip():
        raise InvalidInput("Type a question first.")
    embedding = embed_question(provider, question=query, user_id=actor.id)
    with session_scope() as session:
        return search_chunks(session, actor=actor, query=query, query_embedding=embedding, filters=filters, k=k)


def trusted_corrections(
    session: Session,
    *,
    question_embedding: Sequence[float],
    limit: int = 2,
    max_distance: float | None = None,
) -> list[TrustedCorrection]:
    """Accepted corrections whose question is within `max_distance` (cosine) of this one. Read-only.

    Closest first; at most `limit`. The question text is the user message that preceded
    the corrected answer in its chat. Accepted corrections are team knowledge: a reviewer
    approved them, so they are offered to every user.
    """
    threshold = get_settings().correction_max_distance if max_distance is None else max_distance
    answered = aliased(ChatMessage, name="answered")
    question = question_before(answered)
    distance = MessageFeedback.question_embedding.cosine_distance(list(question_embedding))
    rows = session.execute(
        select(MessageFeedback.id, MessageFeedback.message_id, question, MessageFeedback.correction, distance)
        .join(answered, answered.id == MessageFeedback.message_id)
        .where(
            MessageFeedback.review_status == "accepted",
            MessageFeedback.correction.is_not(None),
            func.length(func.btrim(MessageFeedback.correction)) > 0,
            MessageFeedback.question_embedding.is_not(None),
            distance <= threshold,
        )
        .order_by(distance, MessageFeedback.id)
        .limit(limit)
    ).all()
    return [
        TrustedCorrection(
            feedback_id=row[0],
            message_id=row[1],
            question=row[2] or "",
            correction=row[3],
            distance=float(row[4]),
        )
        for row in rows
    ]


__all__ = [
    "RetrievalFilters",
    "RetrievedChunk",
    "SearchPlan",
    "TrustedCorrection",
    "embed_question",
    "hybrid_search_statement",
    "plan_search",
    "retrieve",
    "search_chunks",
    "trusted_corrections",
]
