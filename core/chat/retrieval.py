"""Hybrid retrieval: pgvector HNSW + BM25 full text in PostgreSQL, fused by score, in one statement.

The statement ranks the chunks of searchable documents two ways, keeps the top candidates
of each, and fuses the two lists by a convex combination of their scores:

- vector: cosine distance to the question's embedding, through the partial HNSW indexes
  over ranges of segments plus an exact scan of the newest chunks no index covers yet
  (core.documents.vector_segments; ``hnsw.ef_search`` set for the transaction from Settings);
- full text: BM25 (k1, b from Settings) over the question's words, with the exact term
  statistics the database keeps for the searchable chunks (core.documents.term_statistics).
  Candidates come through the GIN index on ``search_vector``: every chunk holding a rare word
  of the question, and a budget of chunks holding the most of its rarest words;
  A "quoted phrase" must appear and a -word must not;
- fused: (1 - w) x BM25 / the best BM25 of the question + w x cosine similarity, with the
  vector weight w recorded with the embedding space (core.ai.embedding_space): low for the
  offline lexical hashing vectors, higher for a dense model.

Visibility and searchability (core.documents.indexing.searchable_documents_clause: what the actor
may read, among documents with an active chunk generation), each chunk's match with its
document's active generation and the caller's filters (document types, specific documents,
upload date range) are applied inside that same statement, so a chunk the actor may not see
never leaves the database: checked for each candidate the chunk indexes return, or through a
join when the filters leave few chunks (core.chat.search_statement._only_eligible). Status is
deliberately not filtered: a document being re-indexed stays searchable through its previous
generation until the new one is swapped in.

The statement (core.chat.search_statement) is built once per actor and shape of search and
compiled once to the text psycopg sends (cached; core.platform.db.compile_for_driver); the
question, its embedding and the filter values are bound parameters, k and the candidate
counts literals in its text. A search runs four statements: the plan (with the index
layout), its settings, the search, and the settings' reset.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import uuid4

import numpy as np
from psycopg import sql as psycopg_sql
from psycopg.pq import TransactionStatus
from sqlalchemy import Text, bindparam, func, select
from sqlalchemy.orm import Session

from core.access.rbac import Actor, require
from core.ai.base import AIProvider, UsageContext
from core.ai.embedding_space import check_embedding_space
from core.chat.search_plan import RetrievalFilters, SearchPlan, SearchShape, Strategy, plan_search, search_shape
from core.chat.search_statement import compiled_search, statement_values
from core.platform.config import get_settings
from core.platform.db import DriverStatement, compile_for_driver, driver_rows, session_scope, vector_driver_connection
from core.platform.errors import InvalidInput

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 4000


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
    score: float  # fused score (0..1 for non-negative similarities), higher is better
    vector_rank: int | None  # 1-based rank in the vector list, None when not in it
    text_rank: int | None  # 1-based rank in the full-text list, None when not in it
    vector_distance: float | None  # cosine distance, when in the vector list
    text_score: float | None  # BM25, when in the full-text list


def checked_question(question: str) -> str:
    """`question` without surrounding space. Raises InvalidInput when nothing is left or it
    is longer than MAX_QUERY_CHARS."""
    question = question.strip()
    if not question:
        raise InvalidInput("Type a question first.")
    if len(question) > MAX_QUERY_CHARS:
        raise InvalidInput(f"Questions are limited to {MAX_QUERY_CHARS} characters.")
    return question


def _prepare_search(
    session: Session,
    *,
    actor: Actor,
    query: str,
    query_embedding: Sequence[float],
    filters: RetrievalFilters | None,
    k: int | None,
    candidates: int | None,
    strategy: Strategy | None,
    ef_search: int | None,
) -> tuple[SearchPlan, SearchShape, dict[str, Any]]:
    """Plan one search and set its transaction's settings; its shape and values."""
    settings = get_settings()
    query = checked_question(query)
    filters = filters or RetrievalFilters()
    k = k or settings.retrieval_k
    candidates = max(candidates or settings.retrieval_candidates, k)
    plan = plan_search(session, actor=actor, filters=filters, candidates=candidates)
    if strategy is not None:
        plan = replace(plan, strategy=strategy)
    if ef_search is not None:
        plan = replace(plan, ef_search=ef_search)
    # The statement's text already fixes what its values could change in a plan (strategy,
    # index ranges, which filters apply), so one generic plan serves every search of a shape:
    # planning the large statement anew each time cost ~2 ms of CPU per search (benchmarks).
    driver_rows(session, _SEARCH_SETTINGS, {"ef_search": str(plan.ef_search)})
    shape = search_shape(filters, strategy=plan.strategy, query=query, layout=plan.layout)
    values = statement_values(query=query, query_embedding=query_embedding, filters=filters, k=k, candidates=candidates)
    return plan, shape, values


# Set for the transaction only (set_config's third argument): the caller's transaction goes on.
_SEARCH_SETTINGS = compile_for_driver(
    select(
        func.set_config("plan_cache_mode", "force_generic_plan", True),
        func.set_config("hnsw.ef_search", bindparam("ef_search", type_=Text), True),
    )
)
_USUAL_PLANNING = compile_for_driver(select(func.set_config("plan_cache_mode", "auto", True)))


def _compiled_search(actor: Actor, shape: SearchShape, values: dict[str, Any]) -> DriverStatement:
    limits = {name: values[name] for name in ("k", "candidates", "text_scan_chunks")}
    return compiled_search(actor, shape, **limits)


def _reset_planning(session: Session) -> None:
    """The caller's later statements in the transaction plan as usual."""
    driver_rows(session, _USUAL_PLANNING)


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
    plan, shape, values = _prepare_search(
        session,
        actor=actor,
        query=query,
        query_embedding=query_embedding,
        filters=filters,
        k=k,
        candidates=candidates,
        strategy=strategy,
        ef_search=ef_search,
    )
    rows = driver_rows(session, _compiled_search(actor, shape, values), values)
    _reset_planning(session)
    log.debug("retrieval %s ef_search=%s -> %d chunks", plan.strategy, plan.ef_search, len(rows))
    # The statement's columns are named as RetrievedChunk's fields (search_statement._best_chunks).
    return [RetrievedChunk(**row._asdict()) for row in rows]


def explain_search(
    session: Session,
    *,
    actor: Actor,
    query: str,
    query_embedding: Sequence[float],
    filters: RetrievalFilters | None = None,
    k: int | None = None,
    candidates: int | None = None,
    strategy: Strategy | None = None,
    analyze: bool = False,
) -> str:
    """PostgreSQL's plan (EXPLAIN, or EXPLAIN ANALYZE with buffers) for the search `search_chunks`
    would run with these arguments, as it would run it: the statement is prepared and explained
    through EXECUTE, so the plan shown is the generic plan searches use, not one made for these
    values (tests, benchmarks: where a search's time goes). Does not commit."""
    _, shape, values = _prepare_search(
        session,
        actor=actor,
        query=query,
        query_embedding=query_embedding,
        filters=filters,
        k=k,
        candidates=candidates,
        strategy=strategy,
        ef_search=None,
    )
    statement = _compiled_search(actor, shape, values)  # with $n placeholders, as PREPARE takes them
    arguments = statement.arguments(values)
    types = [_server_type(argument) for argument in arguments]
    driver = vector_driver_connection(session)
    name = f"quorum_explained_{uuid4().hex[:12]}"  # prepared statements outlive a failed transaction
    driver.execute(f"PREPARE {name} ({', '.join(types)}) AS {statement.sql}")
    try:
        options = "(ANALYZE, BUFFERS) " if analyze else ""
        # EXECUTE's arguments cannot be bound parameters (a utility statement): literals.
        literals = ", ".join(
            f"{_literal(driver, argument)}::{kind}" for argument, kind in zip(arguments, types, strict=True)
        )
        rows = driver.execute(f"EXPLAIN {options}EXECUTE {name}({literals})").fetchall()
    finally:
        if driver.info.transaction_status != TransactionStatus.INERROR:  # else the original error stands
            driver.execute(f"DEALLOCATE {name}")
    _reset_planning(session)
    return "\n".join(row[0] for row in rows)


def _server_type(value: Any) -> str:
    """The PostgreSQL type of one of the search's values (PREPARE declares them: `$1 + $2` alone
    is ambiguous)."""
    if isinstance(value, list | tuple):
        return f"{_server_type(value[0])}[]"
    scalar_types: list[tuple[type, str]] = [
        (bool, "boolean"),
        (int, "bigint"),
        (float, "double precision"),
        (str, "text"),
        (datetime, "timestamptz"),
        (np.ndarray, "vector"),
    ]
    return next(name for kind, name in scalar_types if isinstance(value, kind))


def _literal(driver: Any, value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = "[" + ",".join(repr(float(number)) for number in value) + "]"
    return str(psycopg_sql.Literal(value).as_string(driver))


def embed_question(provider: AIProvider, *, question: str, user_id: int | None) -> list[float]:
    """The embedding of one question, recorded in the usage ledger under the user."""
    return provider.embed([question], usage=UsageContext(purpose="embedding", user_id=user_id))[0]


def _embedded_question(actor: Actor, query: str, provider: AIProvider | None) -> tuple[str, list[float]]:
    """The checked question and its embedding (usage recorded under the actor)."""
    from core.ai import get_provider

    provider = provider or get_provider()
    check_embedding_space(provider)
    query = checked_question(query)
    return query, embed_question(provider, question=query, user_id=actor.id)


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
    query, embedding = _embedded_question(actor, query, provider)
    with session_scope() as session:
        return search_chunks(session, actor=actor, query=query, query_embedding=embedding, filters=filters, k=k)


def explain_question(
    *, actor: Actor, query: str, filters: RetrievalFilters | None = None, provider: AIProvider | None = None
) -> str:
    """Where the search `retrieve` runs for `query` as `actor` spends its time: PostgreSQL's
    EXPLAIN ANALYZE of it, as searches run it (an operator's tool: `core.cli explain-search`).

    Needs view_jobs (the plan tells how many chunks and documents each step read). Runs the
    search once; own read-only transaction. Raises PermissionDenied, InvalidInput, or
    EmbeddingSpaceMismatch like `retrieve`.
    """
    require(actor, "view_jobs")
    query, embedding = _embedded_question(actor, query, provider)
    with session_scope() as session:
        return explain_search(
            session, actor=actor, query=query, query_embedding=embedding, filters=filters, analyze=True
        )


__all__ = [
    "MAX_QUERY_CHARS",
    "RetrievalFilters",
    "RetrievedChunk",
    "SearchPlan",
    "checked_question",
    "embed_question",
    "explain_question",
    "explain_search",
    "plan_search",
    "retrieve",
    "search_chunks",
]
