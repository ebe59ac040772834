"""The hybrid search statement: one SQL statement ranking chunks by vector and by BM25, fused.

Built once per actor and shape of search (cached); the question, its embedding, the filter
values and the BM25 constants are bound parameters, the row limits literals (`_limit`).
core.chat.retrieval plans a search, runs this statement and says how it ranks (its module
documentation describes the two arms and their fusion).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import (
    CTE,
    BigInteger,
    BindParameter,
    ColumnElement,
    Float,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import aliased

from core.access.rbac import Actor
from core.ai.embedding_space import DEFAULT_VECTOR_WEIGHT
from core.chat.search_plan import RetrievalFilters, SearchShape, document_conditions, filter_values, required_terms
from core.platform.config import get_settings
from core.platform.db import BinaryVector, DriverStatement, compile_for_driver
from core.platform.models import Document, DocumentChunk

# Full-text candidates holding "at least k" of the question's rarest words are found among this
# many of them (2^5 - 1 = 31 combinations; more words beyond them only re-rank).
TIERED_WORDS = 5
# The text search configuration of document_chunks.search_vector (migration 0010).
_SEARCH_CONFIGURATION: ColumnElement[str] = literal_column("'quorum_english'::regconfig")
_WEIGHT_A: ColumnElement[Any] = literal_column("'{a}'::\"char\"[]")


def _limit(name: str) -> BindParameter[int]:
    """A row count the statement's text carries as a literal (one statement per value).

    The search runs as a generic plan (core.chat.retrieval.search_chunks), and a generic plan guesses an
    unknown LIMIT at a tenth of the rows: mid-ingest, with a dozen partial HNSW indexes,
    that guess made sorting whole segments look cheaper than reading an index (benchmarks).
    """
    return bindparam(name, type_=Integer, literal_execute=True)


_TERM_STATS = table("search_term_stats", column("lexeme", Text), column("chunks", Integer))
_CORPUS_STATS = table("search_corpus_stats", column("chunks", BigInteger), column("total_length", BigInteger))
_EMBEDDING_SPACE = table("embedding_space", column("vector_weight", Float))


def _only_eligible(
    statement: Select[*tuple[Any, ...]],
    through_documents: bool,
    chunk_of_document: ColumnElement[bool],
    eligible: ColumnElement[bool],
) -> Select[*tuple[Any, ...]]:
    """`statement` (over document_chunks) restricted to the chunks the search may return.

    `through_documents`: joined to their documents, which the planner may read first (right
    when the filters leave few chunks). Otherwise rows come from the chunk indexes (HNSW, GIN)
    and each is checked against its document by a subquery the planner cannot turn into a
    join. As a join, the order rested on the documents table's statistics, and mid-load they
    said almost no document was searchable yet (analyzed while a bulk upload was PENDING): the
    plan walked every searchable document's chunks reading their words instead of asking the
    full-text index (0.4-9 s a search at 30k-100k chunks, measured).
    """
    if through_documents:
        return statement.join(Document, chunk_of_document).where(eligible)
    readable = select(true()).select_from(Document).where(chunk_of_document, eligible).correlate(DocumentChunk)
    return statement.where(readable.scalar_subquery())


def _bm25_hits(chunk_of_document: ColumnElement[bool], eligible: ColumnElement[bool], shape: SearchShape) -> CTE:
    """The full-text arm: BM25 over the question's words, best `candidates` chunks (a CTE).

    Term statistics (chunks per lexeme, chunk count, average length) are the exact counts
    the triggers keep (core.documents.term_statistics); idf is Lucene's
    ln(1 + (N - df + 0.5) / (df + 0.5)), counted once per time the question says the word.
    Words are those of the quorum_english configuration (migration 0010): no stop words
    (idf weighs common words down), compounds by their parts.

    Reading a candidate's tsvector is the arm's cost (~12-16 us for a 500-token chunk), so
    candidates are chosen through the GIN index alone, within retrieval_text_scan_chunks:
    every chunk holding one of the question's rare words (from the rarest up, while the
    chunks holding them add up to the budget), plus the first budget's worth of chunks
    holding all of the question's TIERED_WORDS rarest words, then all but one, ... then any
    of them (quorum_at_least, migration 0013). More shared words score higher, so when every
    word is common the best chunks are still among the candidates (measured on 100k chunks:
    BM25's exact top 10 kept in full, <= 2 budgets of tsvectors read). Each candidate is then
    scored on all the question's words: setweight + ts_filter cut its tsvector down to them.
    A quoted phrase makes the chunks holding it the candidates (the other words still rank
    them); a -word drops the chunks holding it.
    """
    query = bindparam("query", type_=Text)
    k1 = bindparam("bm25_k1", type_=Float)
    b = bindparam("bm25_b", type_=Float)
    candidates = _limit("candidates")

    words = func.unnest(func.to_tsvector(_SEARCH_CONFIGURATION, query)).table_valued("lexeme", "positions", "weights")
    words = words.render_derived(name="question_words")
    # A word the question repeats counts as often (as in Lucene and bm25s): "HIV-1 ... HIV".
    times_asked = func.greatest(func.cardinality(words.c.positions), 1)
    total = select(_CORPUS_STATS.c.chunks).scalar_subquery()
    average_length = select(
        _CORPUS_STATS.c.total_length / func.greatest(_CORPUS_STATS.c.chunks, 1).cast(Float)
    ).scalar_subquery()
    df = _TERM_STATS.c.chunks
    # Chunks holding this word or a rarer one of the question (an upper bound on candidates).
    up_to_here = func.sum(df).over(order_by=(df, _TERM_STATS.c.lexeme), rows=(None, 0))
    terms = (
        select(
            _TERM_STATS.c.lexeme,
            (times_asked * func.ln(1.0 + (total - df + 0.5) / (df + 0.5))).label("weight"),
            up_to_here.label("up_to_here"),
            func.row_number().over(order_by=(df, _TERM_STATS.c.lexeme)).label("rarity"),
        )
        .select_from(words.join(_TERM_STATS, _TERM_STATS.c.lexeme == words.c.lexeme))
        .where(df > 0)
        .cte("question_terms")
    )
    required = func.websearch_to_tsquery(_SEARCH_CONFIGURATION, bindparam("required_terms", type_=Text))
    holds_required: ColumnElement[Any] = DocumentChunk.search_vector.op("@@")(required)
    budget = _limit("text_scan_chunks")

    def holders(holds: ColumnElement[Any]) -> Select[*tuple[Any, ...]]:
        wanted = and_(holds, holds_required) if shape.exclusions else holds
        chunks = select(DocumentChunk.id, DocumentChunk.search_vector, DocumentChunk.search_length).where(wanted)
        # Through the documents only when the caller's filters leave few chunks (exact strategy):
        # a search of everything early in a load also scans exactly, over thousands of chunks.
        through_documents = shape.strategy == "exact" and shape.narrowed
        return _only_eligible(chunks, through_documents, chunk_of_document, eligible)

    if shape.phrases:
        found = holders(holds_required).cte("text_candidates")
    else:
        # Every chunk holding a rare word (the holders of the rare words add up to the budget).
        rare_words = select(
            cast(func.string_agg(func.quote_literal(terms.c.lexeme), literal_column("' | '")), TSQUERY)
        ).where(terms.c.up_to_here <= budget)
        rare = holders(DocumentChunk.search_vector.op("@@")(rare_words.scalar_subquery()))
        # Then, up to the budget, chunks holding all the rarest words, then all but one, ... then
        # any: holding more of the question's words scores higher, and the GIN index answers
        # these queries without reading a tsvector (migration 0013).
        rarest = select(func.array_agg(terms.c.lexeme)).where(terms.c.rarity <= TIERED_WORDS).scalar_subquery()
        shared = func.generate_series(func.cardinality(rarest), 1, -1).table_valued("words").render_derived()
        tier = (
            holders(DocumentChunk.search_vector.op("@@")(func.quorum_at_least(rarest, shared.c.words)))
            .limit(budget)
            .lateral("tier")
        )
        tiered = select(tier.c.id, tier.c.search_vector, tier.c.search_length).select_from(shared.join(tier, true()))
        both = union_all(rare, tiered.limit(budget)).subquery("text_holders")
        found = select(both.c.id, both.c.search_vector, both.c.search_length).distinct(both.c.id).cte("text_candidates")
    question_lexemes = select(func.array_agg(terms.c.lexeme)).scalar_subquery()
    held = (
        func.unnest(
            func.ts_filter(func.setweight(found.c.search_vector, literal_column("'A'"), question_lexemes), _WEIGHT_A)
        )
        .table_valued("lexeme", "positions", "weights")
        .lateral("held")
    )
    tf = func.cardinality(held.c.positions)
    length_norm = 1.0 - b + b * found.c.search_length / average_length
    score = func.sum(terms.c.weight * tf * (k1 + 1.0) / (tf + k1 * length_norm))
    scored = (
        select(found.c.id.label("chunk_id"), score.label("score"))
        .select_from(found.join(held, true()).join(terms, terms.c.lexeme == held.c.lexeme))
        .group_by(found.c.id)
        .order_by(score.desc(), found.c.id)
        .limit(candidates)
        .subquery("text_scored")
    )
    return select(
        scored.c.chunk_id,
        scored.c.score,
        func.row_number().over(order_by=(scored.c.score.desc(), scored.c.chunk_id)).label("rank"),
        func.max(scored.c.score).over().label("best_score"),
    ).cte("text_hits")


def _vector_top(
    shape: SearchShape, chunk_of_document: ColumnElement[bool], eligible: ColumnElement[bool], candidates: Any
) -> Select[*tuple[Any, ...]]:
    """The `candidates` nearest eligible chunks: (chunk_id, distance).

    Exact strategy: one exact scan. HNSW: one index scan per partial index (its segment
    range as constants, so the planner uses that index), plus an exact scan of the segments
    no index covers yet (core.documents.vector_segments), merged by distance.
    """
    distance = DocumentChunk.embedding.cosine_distance(bindparam("query_embedding", type_=BinaryVector()))

    def nearest(*where: ColumnElement[bool], exact: bool) -> Select[*tuple[Any, ...]]:
        chunks = select(DocumentChunk.id.label("chunk_id"), distance.label("distance")).where(*where)
        statement = _only_eligible(chunks, exact, chunk_of_document, eligible).limit(candidates)
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
    # The newest chunks by their segment alone, materialized first: while a load runs the
    # column's statistics lag behind and the planner, believing the tail empty, reached it
    # through every document's chunks (100k rows read for 1,200, measured mid-ingest).
    tail = (
        select(DocumentChunk.id, DocumentChunk.document_id, DocumentChunk.generation, distance.label("distance"))
        .where(or_(*uncovered))
        .cte("vector_tail")
        .prefix_with("MATERIALIZED")
    )
    parts.append(
        select(tail.c.id.label("chunk_id"), tail.c.distance)
        .join(Document, and_(Document.id == tail.c.document_id, Document.active_generation == tail.c.generation))
        .where(eligible)
        .order_by(tail.c.distance, tail.c.id)
        .limit(candidates)
    )
    if len(parts) == 1:
        return parts[0]
    merged = union_all(*parts).subquery("vector_parts")
    return select(merged.c.chunk_id, merged.c.distance).order_by(merged.c.distance, merged.c.chunk_id).limit(candidates)


def _vector_hits(
    shape: SearchShape, chunk_of_document: ColumnElement[bool], eligible: ColumnElement[bool], candidates: Any
) -> CTE:
    """The vector arm: the nearest eligible chunks with their rank (chunk_id, distance, rank)."""
    nearest = _vector_top(shape, chunk_of_document, eligible, candidates).subquery("vector_top")
    return select(
        nearest.c.chunk_id,
        nearest.c.distance,
        func.row_number().over(order_by=(nearest.c.distance, nearest.c.chunk_id)).label("rank"),
    ).cte("vector_hits")


def _fused(vector_hits: CTE, text_hits: CTE) -> CTE:
    """The fusion: both arms' candidates, each with one score (chunk_id, score, and each arm's
    rank and raw score, None where that arm did not list the chunk).

    Convex score fusion: (1 - w) x BM25 relative to the question's best chunk + w x cosine
    similarity, 0 for an arm that did not list the chunk. Scores, not ranks, so a chunk far
    ahead in one arm keeps its lead (rank fusion treats the 1st and 2nd of a weak arm alike).
    w is recorded with the embedding space: lexical hashing vectors mostly repeat what BM25
    knows, a dense model adds meaning.
    """
    vector_weight = func.coalesce(select(_EMBEDDING_SPACE.c.vector_weight).scalar_subquery(), DEFAULT_VECTOR_WEIGHT)
    fused_score = (1.0 - vector_weight) * func.coalesce(
        text_hits.c.score / func.nullif(text_hits.c.best_score, 0.0), 0.0
    ) + vector_weight * func.coalesce(1.0 - vector_hits.c.distance, 0.0)
    # A chunk found only by the vector half must be close enough to count as relevant.
    relevant = or_(text_hits.c.chunk_id.is_not(None), vector_hits.c.distance <= bindparam("max_distance", type_=Float))
    return (
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


def _best_chunks(fused: CTE) -> Select[*tuple[Any, ...]]:
    """The best `k` fused chunks with their text and source, labelled as RetrievedChunk's fields.

    The best `k` are chosen first and only they are joined to their rows: joined before the
    cut, the planner could walk every document to find 40 chunks.
    """
    best = select(fused).order_by(fused.c.score.desc(), fused.c.chunk_id).limit(_limit("k")).subquery("best")
    chunk = aliased(DocumentChunk, name="c")
    document = aliased(Document, name="d")
    return (
        select(
            chunk.id.label("chunk_id"),
            chunk.document_id,
            document.filename,
            document.document_type,
            chunk.content,
            chunk.page_number.label("page"),
            chunk.heading,
            chunk.start_seconds,
            chunk.end_seconds,
            document.transcription_job_id,
            best.c.score,
            best.c.vector_rank,
            best.c.text_rank,
            best.c.vector_distance,
            best.c.text_score,
        )
        .select_from(best)
        .join(chunk, chunk.id == best.c.chunk_id)
        .join(document, document.id == chunk.document_id)
        .order_by(best.c.score.desc(), chunk.id)
    )


@lru_cache(maxsize=256)
def hybrid_search_statement(actor: Actor, shape: SearchShape) -> Select[*tuple[Any, ...]]:
    """The one SELECT that retrieves, filters and fuses, for `actor` and a shape of search:
    the vector arm and the full-text arm over the same eligible chunks, their fusion, and
    the best chunks of it.

    Pure and cached: values are bound parameters (query, query_embedding, candidates, k,
    max_distance and the filter values), so building the statement costs nothing per query.
    """
    chunk_of_document = and_(
        Document.id == DocumentChunk.document_id, DocumentChunk.generation == Document.active_generation
    )
    eligible = document_conditions(actor, shape)
    candidates = _limit("candidates")
    vector_hits = _vector_hits(shape, chunk_of_document, eligible, candidates)
    text_hits = _bm25_hits(chunk_of_document, eligible, shape)
    return _best_chunks(_fused(vector_hits, text_hits))


@lru_cache(maxsize=256)
def compiled_search(
    actor: Actor, shape: SearchShape, *, k: int, candidates: int, text_scan_chunks: int
) -> DriverStatement:
    """`hybrid_search_statement` compiled for the driver, its row limits written in (cached)."""
    limits = {"k": k, "candidates": candidates, "text_scan_chunks": text_scan_chunks}
    return compile_for_driver(hybrid_search_statement(actor, shape), limits)


def statement_values(
    *, query: str, query_embedding: Sequence[float], filters: RetrievalFilters, k: int, candidates: int
) -> dict[str, Any]:
    """The bound parameters of `hybrid_search_statement` for one search (values from Settings).

    The embedding binds in pgvector's binary form (core.platform.db.driver_rows runs it so).
    """
    settings = get_settings()
    return filter_values(filters) | {
        "query": query,
        "query_embedding": np.asarray(query_embedding, dtype=np.float32),
        "candidates": candidates,
        "k": k,
        "max_distance": settings.retrieval_max_distance,
        "bm25_k1": settings.retrieval_bm25_k1,
        "bm25_b": settings.retrieval_bm25_b,
        "text_scan_chunks": settings.retrieval_text_scan_chunks,
        "required_terms": required_terms(query),
    }
