"""The embedding space the stored vectors belong to, and the guard that keeps it single.

Vectors from different embedders (provider, model, dimensions) are not comparable, so the
embedding_space table records the one the database was built with (a single row). Indexing
calls ensure_embedding_space before storing vectors; search calls
check_embedding_space before comparing a query vector with them. Either raises
EmbeddingSpaceMismatch, naming both spaces, when the configured embedder differs.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.ai.base import AIProvider, EmbeddingSpaceKey
from core.ai.hashing import HASHING_MODEL
from core.platform.db import session_scope
from core.platform.errors import EmbeddingSpaceMismatch
from core.platform.models import EmbeddingSpace

log = logging.getLogger(__name__)

REINDEX_COMMAND = "python -m core.cli reindex --all"
_SINGLETON_ID = 1

# Share of the vector arm in the fused score (the full-text arm has the rest), tuned on the
# scifact dev claims (benchmarks/quality.py). Lexical hashing vectors mostly repeat what
# BM25 already knows, so they mainly break ties; a dense model finds paraphrases BM25 misses.
# A change here needs a migration that updates the recorded weights (as 0010 did).
LEXICAL_VECTOR_WEIGHT = 0.2
DENSE_VECTOR_WEIGHT = 0.7
DEFAULT_VECTOR_WEIGHT = 0.5  # nothing recorded yet (chunks written without the indexer)


def fusion_vector_weight(space: EmbeddingSpaceKey) -> float:
    """The vector arm's share of the fused score for vectors of `space`, from what its embedder is."""
    return LEXICAL_VECTOR_WEIGHT if space.model == HASHING_MODEL else DENSE_VECTOR_WEIGHT


def _key(row: EmbeddingSpace | None) -> EmbeddingSpaceKey | None:
    if row is None:
        return None
    return EmbeddingSpaceKey(provider=row.provider, model=row.model, dimensions=row.dimensions)


def _space_of(embedder: AIProvider | EmbeddingSpaceKey) -> EmbeddingSpaceKey:
    return embedder if isinstance(embedder, EmbeddingSpaceKey) else embedder.embedding_space


def _column_dimensions(session: Session) -> int | None:
    """Dimensions of document_chunks.embedding as the database defines it (pgvector's typmod)."""
    value = session.execute(
        text(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding' AND NOT attisdropped"
        )
    ).scalar()
    return int(value) if value is not None and int(value) > 0 else None


def _mismatch(stored: EmbeddingSpaceKey, configured: EmbeddingSpaceKey) -> EmbeddingSpaceMismatch:
    return EmbeddingSpaceMismatch(
        f"The search index was built with {stored.describe()}, but the configured embedder is "
        f"{configured.describe()}. Vectors from the two cannot be compared. Re-index everything with "
        f"`{REINDEX_COMMAND}`, or restore the settings the index was built with (OPENAI_API_KEY, "
        "QUORUM_EMBEDDING_MODEL, QUORUM_EMBEDDING_DIM)."
    )


def _check_columns(session: Session, configured: EmbeddingSpaceKey) -> None:
    columns = _column_dimensions(session)
    if columns is not None and columns != configured.dimensions:
        raise EmbeddingSpaceMismatch(
            f"The database stores {columns}-dimensional vectors, but the configured embedder "
            f"{configured.describe()} makes {configured.dimensions}. Set QUORUM_EMBEDDING_DIM={columns} "
            "(and an embedding model that supports it), or recreate the database for the new size."
        )


def current_embedding_space() -> EmbeddingSpaceKey | None:
    """The space the stored vectors belong to, or None before anything was indexed. Read-only."""
    with session_scope() as session:
        return _key(session.get(EmbeddingSpace, _SINGLETON_ID))


def ensure_embedding_space(embedder: AIProvider | EmbeddingSpaceKey) -> EmbeddingSpaceKey:
    """Make sure vectors from `embedder` may be stored; call before storing any.

    Records the embedder's space when none is recorded yet (the first indexing; commits,
    and concurrent first writers agree on one row), with the vector arm's fusion weight
    for it (filled in too when a space recorded before weights existed has none).
    Idempotent. Raises
    EmbeddingSpaceMismatch when another space is recorded or the database's vector
    columns have another length.
    """
    configured = _space_of(embedder)
    with session_scope() as session:
        _check_columns(session, configured)
        session.execute(
            insert(EmbeddingSpace)
            .values(
                id=_SINGLETON_ID,
                provider=configured.provider,
                model=configured.model,
                dimensions=configured.dimensions,
                vector_weight=fusion_vector_weight(configured),
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = session.get(EmbeddingSpace, _SINGLETON_ID, populate_existing=True)
        stored = _key(row)
        if row is not None and stored == configured and row.vector_weight is None:
            row.vector_weight = fusion_vector_weight(configured)
    if stored is not None and stored != configured:
        raise _mismatch(stored, configured)
    return configured


def recorded_vector_weight() -> float:
    """The vector arm's fusion weight retrieval uses now (DEFAULT_VECTOR_WEIGHT before any indexing). Read-only."""
    with session_scope() as session:
        weight = session.scalar(select(EmbeddingSpace.vector_weight).where(EmbeddingSpace.id == _SINGLETON_ID))
    return DEFAULT_VECTOR_WEIGHT if weight is None else float(weight)


def check_embedding_space(embedder: AIProvider | EmbeddingSpaceKey) -> None:
    """Raise EmbeddingSpaceMismatch if stored vectors belong to another space. Read-only.

    For search: with nothing recorded yet there is nothing to compare against, so it passes.
    """
    configured = _space_of(embedder)
    with session_scope() as session:
        _check_columns(session, configured)
        stored = _key(session.get(EmbeddingSpace, _SINGLETON_ID))
    if stored is not None and stored != configured:
        raise _mismatch(stored, configured)


def reset_embedding_space(*, space: EmbeddingSpaceKey | None = None) -> None:
    """Forget the recorded space (re-indexing everything), or replace it with `space`. Commits.

    Only for a full re-index: afterwards every stored vector must be rebuilt with the new
    embedder, because nothing can tell old vectors from new ones any more.
    """
    with session_scope() as session:
        if space is not None:
            _check_columns(session, space)
        previous = _key(session.get(EmbeddingSpace, _SINGLETON_ID))
        session.execute(delete(EmbeddingSpace).where(EmbeddingSpace.id == _SINGLETON_ID))
        if space is not None:
            session.add(
                EmbeddingSpace(
                    id=_SINGLETON_ID,
                    provider=space.provider,
                    model=space.model,
                    dimensions=space.dimensions,
                    vector_weight=fusion_vector_weight(space),
                )
            )
    log.warning(
        "embedding space reset from %s to %s",
        previous.describe() if previous else "none",
        space.describe() if space else "none",
    )
