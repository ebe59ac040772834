"""The document indexing job: extract, chunk, embed and swap in a new generation of chunks.

A document's searchable chunks are those whose generation equals
documents.active_generation (0 means "none yet"). Every index run builds generation
active_generation + 1 beside the current one and swaps it in with one transaction that
moves active_generation and deletes every other generation, so the old chunks stay
searchable until the swap and a failed re-index leaves them intact. Search must therefore
join chunks on ``generation = active_generation`` and filter documents with
`searchable_documents_clause` (visible and active_generation > 0), not on status: a
document being re-indexed is PENDING/INDEXING yet still searchable through its old chunks.

The job is idempotent by document id. It claims the row with one atomic UPDATE (PENDING, or
INDEXING whose heartbeat is older than settings.job_stale_after_seconds); each claim
increments `attempts`, and every later write of the run is fenced on that number, so a run
that lost its claim (killed, timed out, superseded) can write nothing more. Chunks are
upserted on (document_id, generation, chunk_index); a run that resumes a killed one skips
the chunks already written with the same content, so it ends with exactly one set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.ai.base import UsageContext
from core.documents.chunk_store import write_chunks
from core.documents.chunking import Chunk, Chunker, with_spoken_times
from core.documents.extraction import check_chunk_count
from core.documents.filetypes import kind_for_content_type
from core.documents.sandbox import read_document
from core.documents.text_source import TEXT_SOURCE_TYPE, parse_text_source
from core.documents.vector_segments import ACTOR_NAME as VECTOR_INDEX_ACTOR
from core.documents.vector_segments import maintenance_due
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import (
    EmbeddingSpaceMismatch,
    InvalidInput,
    NotFound,
    PermanentError,
    ProviderError,
    describe_error,
)
from core.platform.models import Document, DocumentChunk, EmbeddingSpace
from core.platform.queue import enqueue
from core.platform.storage import get_storage

log = logging.getLogger(__name__)

ACTOR_NAME = "index_document"


class _ClaimLost(Exception):
    """This run no longer owns the document (superseded, deleted or taken over)."""


@dataclass(frozen=True)
class _Claim:
    document_id: int
    attempt: int
    generation: int  # the generation this run builds
    filename: str
    content_type: str
    storage_key: str | None
    uploaded_by: int | None


def _claim(document_id: int) -> _Claim | None:
    stale = get_settings().job_stale_after_seconds
    with session_scope() as session:
        row = session.execute(
            update(Document)
            .where(
                Document.id == document_id,
                or_(
                    Document.status == "PENDING",
                    and_(
                        Document.status == "INDEXING",
                        func.coalesce(Document.heartbeat_at, Document.started_at, Document.upload_date)
                        < func.now() - timedelta(seconds=stale),
                    ),
                ),
            )
            .values(
                status="INDEXING",
                attempts=Document.attempts + 1,
                started_at=func.now(),
                heartbeat_at=func.now(),
                error=None,
                chunks_done=0,
                chunks_total=0,
            )
            .returning(
                Document.attempts,
                Document.active_generation,
                Document.filename,
                Document.content_type,
                Document.storage_key,
                Document.uploaded_by,
            )
        ).first()
        if row is None:
            status = session.scalar(select(Document.status).where(Document.id == document_id))
            if status is None:
                log.info("index_document %s: no such document (deleted?)", document_id)
            else:
                log.info("index_document %s: nothing to do (status %s)", document_id, status)
            return None
    return _Claim(
        document_id=document_id,
        attempt=row.attempts,
        generation=row.active_generation + 1,
        filename=row.filename,
        content_type=row.content_type,
        storage_key=row.storage_key,
        uploaded_by=row.uploaded_by,
    )


def _fence(session: Session, claim: _Claim, **values: Any) -> None:
    """Update the document if this run still owns it; raise _ClaimLost otherwise. Locks the row."""
    result = session.execute(
        update(Document)
        .where(Document.id == claim.document_id, Document.status == "INDEXING", Document.attempts == claim.attempt)
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _ClaimLost(f"document {claim.document_id} attempt {claim.attempt}")


def _load_chunks(claim: _Claim, chunker: Chunker) -> list[Chunk]:
    """Read the stored source and chunk it. Raises InvalidInput for unreadable content."""
    if not claim.storage_key:
        raise InvalidInput("The document has no stored file to index.")
    storage = get_storage()
    if claim.content_type == TEXT_SOURCE_TYPE:
        sections, pieces = parse_text_source(storage.read(claim.storage_key))
        chunks = chunker.chunk_timed_pieces(pieces) if pieces else with_spoken_times(chunker.chunk_sections(sections))
    else:
        kind = kind_for_content_type(claim.content_type)
        if kind is None:
            raise InvalidInput(f"Files of type {claim.content_type or 'unknown'} cannot be indexed.")
        with storage.local_path(claim.storage_key) as path:
            chunks = chunker.chunk_sections(read_document(path, kind, filename=claim.filename))
    if not chunks:
        raise InvalidInput(f"{claim.filename} has no extractable text.")
    check_chunk_count(claim.filename, len(chunks))
    return chunks


def _embedding_input(chunk: Chunk) -> str:
    """What is embedded: the heading path gives a chunk its context (the stored text stays as cut)."""
    return f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text


def _batches(items: Sequence[Chunk], size: int) -> Iterator[Sequence[Chunk]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def _build(claim: _Claim, after_batch: Callable[[int], None] | None = None) -> int:
    """Extract, chunk, embed and write generation claim.generation, then swap it in. Returns chunks."""
    from core.ai import get_provider
    from core.ai.embedding_space import ensure_embedding_space

    settings = get_settings()
    chunks = _load_chunks(claim, Chunker())
    total = len(chunks)
    with session_scope() as session:
        _fence(session, claim, chunks_total=total, heartbeat_at=func.now())
        written = {
            row.chunk_index: row.digest
            for row in session.execute(
                select(DocumentChunk.chunk_index, func.md5(DocumentChunk.content).label("digest")).where(
                    DocumentChunk.document_id == claim.document_id, DocumentChunk.generation == claim.generation
                )
            )
        }
    # A resumed run keeps what a killed one wrote, when it is the same text at the same place.
    todo = [c for c in chunks if written.get(c.index) != hashlib.md5(c.text.encode("utf-8")).hexdigest()]
    done = total - len(todo)
    if todo:
        provider = get_provider()
        ensure_embedding_space(provider)
        # Transcripts and minutes are refreshed after small edits (a speaker renamed): keep what
        # did not change. An uploaded file's re-index is asked for to embed it again.
        reused = _reusable_vectors(claim, todo) if claim.content_type == TEXT_SOURCE_TYPE else {}
        if reused:
            again = [c for c in todo if c.index in reused]
            with session_scope() as session:
                done += len(again)
                _fence(session, claim, chunks_done=done, heartbeat_at=func.now())
                write_chunks(session, claim.document_id, claim.generation, again, [reused[c.index] for c in again])
            todo = [c for c in todo if c.index not in reused]
            log.info("index_document %s: %d unchanged chunks keep their vectors", claim.document_id, len(again))
        usage = UsageContext(purpose="embedding", user_id=claim.uploaded_by, document_id=claim.document_id)
        for batch in _batches(todo, settings.embedding_batch_size):
            vectors = provider.embed([_embedding_input(chunk) for chunk in batch], usage=usage)
            with session_scope() as session:
                done += len(batch)
                _fence(session, claim, chunks_done=done, heartbeat_at=func.now())
                write_chunks(session, claim.document_id, claim.generation, batch, vectors)
            if after_batch is not None:
                after_batch(done)
    with session_scope() as session:
        _fence(
            session,
            claim,
            status="COMPLETED",
            active_generation=claim.generation,
            chunks_done=total,
            chunks_total=total,
            indexed_at=func.now(),
            heartbeat_at=None,
            error=None,
        )
        session.execute(
            delete(DocumentChunk).where(
                DocumentChunk.document_id == claim.document_id,
                or_(DocumentChunk.generation != claim.generation, DocumentChunk.chunk_index >= total),
            )
        )
    return total


def _reusable_vectors(claim: _Claim, chunks: Sequence[Chunk]) -> dict[int, Any]:
    """{chunk index: vector} for chunks whose text and heading the searchable generation
    already holds, embedded in the current embedding space: a re-index after a small change
    (a speaker renamed, a minutes line edited) embeds only what changed."""
    wanted = {hashlib.md5(c.text.encode("utf-8")).hexdigest() for c in chunks}
    with session_scope() as session:
        space_since = select(EmbeddingSpace.created_at).where(EmbeddingSpace.id == 1).scalar_subquery()
        rows = session.execute(
            select(func.md5(DocumentChunk.content), DocumentChunk.heading, DocumentChunk.embedding).where(
                DocumentChunk.document_id == claim.document_id,
                DocumentChunk.generation == claim.generation - 1,
                DocumentChunk.created_at >= space_since,
                func.md5(DocumentChunk.content).in_(wanted),
            )
        ).all()
    vectors = {(digest, heading): vector for digest, heading, vector in rows}
    reused = {}
    for chunk in chunks:
        vector = vectors.get((hashlib.md5(chunk.text.encode("utf-8")).hexdigest(), chunk.heading))
        if vector is not None:
            reused[chunk.index] = vector
    return reused


def _fail(claim: _Claim, message: str) -> None:
    """Mark FAILED with `message` and drop the half-built generation; the active one stays."""
    with session_scope() as session:
        try:
            _fence(session, claim, status="FAILED", error=message, heartbeat_at=None)
        except _ClaimLost:
            return
        session.execute(
            delete(DocumentChunk).where(
                DocumentChunk.document_id == claim.document_id, DocumentChunk.generation >= claim.generation
            )
        )
    log.warning("document %s failed to index: %s", claim.document_id, message)


def _release(claim: _Claim, error: BaseException) -> None:
    """Give the document back as PENDING for the next delivery; chunks written so far are kept."""
    try:
        with session_scope() as session:
            _fence(
                session,
                claim,
                status="PENDING",
                heartbeat_at=None,
                error=f"Interrupted, will retry: {describe_error(error)}",
            )
    except _ClaimLost:
        pass
    except Exception:
        log.exception("could not release document %s after an error", claim.document_id)


_PERMANENT = (InvalidInput, PermanentError, EmbeddingSpaceMismatch, NotFound)


def index_document(document_id: int, *, after_batch: Callable[[int], None] | None = None) -> None:
    """The indexing job: PENDING -> INDEXING -> COMPLETED, or FAILED with a readable error.

    Idempotent by id: a document already COMPLETED, FAILED, deleted, or being indexed by a
    live run is left alone (returns). Commits per embedding batch (progress, heartbeat and
    chunks together) and once for the swap (see the module doc).

    Errors: unreadable content, a provider refusal or an embedding-space mismatch mark the
    document FAILED and return normally (retrying cannot help). Any other exception (a
    provider outage, the database going away, a time limit) gives the row back as PENDING
    and is re-raised so the queue retries it, until settings.job_max_attempts claims,
    after which it is FAILED. `after_batch(chunks_done)` is a hook for progress (tests).
    """
    claim = _claim(document_id)
    if claim is None:
        return
    settings = get_settings()
    try:
        total = _build(claim, after_batch)
    except _ClaimLost:
        log.info("document %s: run %s lost its claim and stopped", document_id, claim.attempt)
        return
    except _PERMANENT as error:
        _fail(claim, describe_error(error))
        return
    except Exception as error:
        if claim.attempt >= settings.job_max_attempts:
            _fail(claim, f"Indexing failed after {claim.attempt} attempts: {describe_error(error)}")
            if isinstance(error, ProviderError):
                return
            raise PermanentError(describe_error(error)) from error
        _release(claim, error)
        raise
    except BaseException as error:  # time limit, shutdown: hand the row back first
        _release(claim, error)
        raise
    log.info("document %s indexed: %s chunks (generation %s)", document_id, total, claim.generation)
    _request_vector_maintenance()


def _request_vector_maintenance() -> None:
    """Ask a worker to index the exactly-searched newest chunks once there are enough of them.

    The document is already COMPLETED and searchable; a lost request only delays indexing
    until the periodic watch asks again, so failures are logged, not raised.
    """
    try:
        if maintenance_due():
            enqueue(VECTOR_INDEX_ACTOR)
    except Exception:
        log.warning("could not request vector index maintenance", exc_info=True)
