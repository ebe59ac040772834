"""The document indexing job: extract, chunk, embed and swap in a new generation of chunks.

A document's searchable chunks are those whose generation equals
documents.active_generation (0 means "none yet"). Every index run builds generation
active_generation + 1 beside the current one and swaps it in with one transaction that
moves active_generation and deletes every other generation, so the old chunks stay
searchable until the swap and a failed re-index leaves them intact. Search must therefore
join chunks on ``generation = active_generation`` and filter documents with
`searchable_documents_clause` (visible and active_generation > 0), not on status: a
document being re-indexed is PENDING/INDEXING yet still searchable through its old chunks.

The job is idempotent by document id. Claim, fence, heartbeat, stale rule and failure
policy are core.platform.jobs's, shared with transcription: a run that lost its claim
(killed, timed out, superseded) can write nothing more. Chunks are
upserted on (document_id, generation, chunk_index); a run that resumes a killed one skips
the chunks already written with the same content, so it ends with exactly one set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
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
from core.platform.config import Settings, get_settings
from core.platform.db import session_scope
from core.platform.errors import (
    InvalidInput,
    PermanentError,
    ProviderError,
)
from core.platform.jobs import (
    DOCUMENTS,
    PERMANENT_ERRORS,
    Claim,
    ClaimLost,
    Heartbeat,
    JobState,
    claim,
    failure_message,
    record_failure,
    row_is_stale,
    write,
)
from core.platform.models import Document, DocumentChunk, EmbeddingSpace
from core.platform.queue import enqueue
from core.platform.statuses import DocumentStatus
from core.platform.storage import get_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Source:
    """What a claimed run indexes, read with the claim."""

    generation: int  # the generation this run builds
    filename: str
    content_type: str
    storage_key: str | None
    uploaded_by: int | None


def _claim(document_id: int) -> tuple[Claim, _Source] | None:
    claimed = claim(
        DOCUMENTS,
        document_id,
        values={"chunks_done": 0, "chunks_total": 0},
        returning=(
            Document.active_generation,
            Document.filename,
            Document.content_type,
            Document.storage_key,
            Document.uploaded_by,
        ),
    )
    if claimed is None:
        return None
    row = claimed.row
    return claimed, _Source(row.active_generation + 1, row.filename, row.content_type, row.storage_key, row.uploaded_by)


def _load_chunks(source: _Source, chunker: Chunker) -> list[Chunk]:
    """Read the stored source and chunk it. Raises InvalidInput for unreadable content."""
    if not source.storage_key:
        raise InvalidInput("The document has no stored file to index.")
    storage = get_storage()
    if source.content_type == TEXT_SOURCE_TYPE:
        sections, pieces = parse_text_source(storage.read(source.storage_key))
        chunks = chunker.chunk_timed_pieces(pieces) if pieces else with_spoken_times(chunker.chunk_sections(sections))
    else:
        kind = kind_for_content_type(source.content_type)
        if kind is None:
            raise InvalidInput(f"Files of type {source.content_type or 'unknown'} cannot be indexed.")
        with storage.local_path(source.storage_key) as path:
            chunks = chunker.chunk_sections(read_document(path, kind, filename=source.filename))
    if not chunks:
        raise InvalidInput(f"{source.filename} has no extractable text.")
    check_chunk_count(source.filename, len(chunks))
    return chunks


def _embedding_input(chunk: Chunk) -> str:
    """What is embedded: the heading path gives a chunk its context (the stored text stays as cut)."""
    return f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text


# Most chunks embedded and written in one step: their vectors, as Python floats, take ~100 MB
# at 1536 dimensions, and progress moves once per step.
_MAX_CHUNKS_PER_STEP = 2048


def chunks_per_step(settings: Settings) -> int:
    """Chunks one document hands the provider in one embed call, then writes in one commit.

    embedding_batch_size (one request's worth) times settings.embedding_requests_in_flight,
    so that one large document alone keeps every request the process may send busy; at most
    _MAX_CHUNKS_PER_STEP, unless embedding_batch_size itself is larger.
    """
    size = max(1, settings.embedding_batch_size)
    return max(size, min(size * settings.embedding_requests_in_flight, _MAX_CHUNKS_PER_STEP))


def _steps(items: Sequence[Chunk], size: int) -> Iterator[Sequence[Chunk]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _build(run: Claim, source: _Source, after_batch: Callable[[int], None] | None = None) -> int:
    """Extract, chunk, embed and write generation source.generation, then swap it in. Returns chunks."""
    from core.ai import get_provider
    from core.ai.embedding_space import ensure_embedding_space

    settings = get_settings()
    chunks = _load_chunks(source, Chunker())
    total = len(chunks)
    with session_scope() as session:
        write(session, run, chunks_total=total)
        written = {
            row.chunk_index: row.digest
            for row in session.execute(
                select(DocumentChunk.chunk_index, func.md5(DocumentChunk.content).label("digest")).where(
                    DocumentChunk.document_id == run.id, DocumentChunk.generation == source.generation
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
        reused = _reusable_vectors(run.id, source.generation, todo) if source.content_type == TEXT_SOURCE_TYPE else {}
        if reused:
            again = [c for c in todo if c.index in reused]
            with session_scope() as session:
                done += len(again)
                write(session, run, chunks_done=done)
                write_chunks(session, run.id, source.generation, again, [reused[c.index] for c in again])
            todo = [c for c in todo if c.index not in reused]
            log.info("index_document %s: %d unchanged chunks keep their vectors", run.id, len(again))
        usage = UsageContext(purpose="embedding", user_id=source.uploaded_by, document_id=run.id)
        for batch in _steps(todo, chunks_per_step(settings)):
            if run.stop.is_set():
                raise ClaimLost(f"document {run.id} stopped")
            vectors = provider.embed([_embedding_input(chunk) for chunk in batch], usage=usage)
            with session_scope() as session:
                done += len(batch)
                write(session, run, chunks_done=done)
                write_chunks(session, run.id, source.generation, batch, vectors)
            if after_batch is not None:
                after_batch(done)
    with session_scope() as session:
        write(
            session,
            run,
            status=DocumentStatus.COMPLETED,
            active_generation=source.generation,
            chunks_done=total,
            chunks_total=total,
            indexed_at=func.now(),
            heartbeat_at=None,
            error=None,
        )
        session.execute(
            delete(DocumentChunk).where(
                DocumentChunk.document_id == run.id,
                or_(DocumentChunk.generation != source.generation, DocumentChunk.chunk_index >= total),
            )
        )
    return total


def _reusable_vectors(document_id: int, generation: int, chunks: Sequence[Chunk]) -> dict[int, Any]:
    """{chunk index: vector} for chunks whose text and heading the searchable generation
    already holds, embedded in the current embedding space: a re-index after a small change
    (a speaker renamed, a minutes line edited) embeds only what changed."""
    wanted = {hashlib.md5(c.text.encode("utf-8")).hexdigest() for c in chunks}
    with session_scope() as session:
        space_since = select(EmbeddingSpace.created_at).where(EmbeddingSpace.id == 1).scalar_subquery()
        rows = session.execute(
            select(func.md5(DocumentChunk.content), DocumentChunk.heading, DocumentChunk.embedding).where(
                DocumentChunk.document_id == document_id,
                DocumentChunk.generation == generation - 1,
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


def _drop_unfinished_generation(document_id: int, generation: int) -> Callable[[Session], None]:
    """Cleanup for a FAILED run: the half-built generation goes; the active one stays searchable."""

    def drop(session: Session) -> None:
        session.execute(
            delete(DocumentChunk).where(
                DocumentChunk.document_id == document_id, DocumentChunk.generation >= generation
            )
        )

    return drop


def index_document(document_id: int, *, after_batch: Callable[[int], None] | None = None) -> None:
    """The indexing job: PENDING -> INDEXING -> COMPLETED, or FAILED with a readable error.

    Idempotent by id: a document already COMPLETED, FAILED, deleted, or being indexed by a
    live run is left alone (returns). Commits per step of chunks_per_step chunks (progress,
    heartbeat and chunks together) and once for the swap (see the module doc).

    Errors (core.platform.jobs.record_failure decides): unreadable content, a provider
    refusal, an embedding-space mismatch or the time limit mark the document FAILED and
    return normally (retrying cannot help); the chunks written so far for the new
    generation are dropped. Any other exception (a provider outage, the database going
    away) gives the row back as PENDING and is re-raised so the queue retries it, until
    settings.job_max_attempts claims, after which it is FAILED (a provider outage then
    returns normally, anything else is raised as PermanentError so the queue stops).
    `after_batch(chunks_done)` is a hook for progress (tests).
    """
    claimed = _claim(document_id)
    if claimed is None:
        return
    run, source = claimed
    try:
        with Heartbeat(run):
            total = _build(run, source, after_batch)
    except ClaimLost:
        log.info("document %s: run %s lost its claim and stopped", document_id, run.attempt)
        return
    except BaseException as error:
        cleanup = _drop_unfinished_generation(document_id, source.generation)
        if record_failure(run, error, when_failed=cleanup):
            raise
        if isinstance(error, (*PERMANENT_ERRORS, ProviderError)):
            return
        if isinstance(error, Exception):
            raise PermanentError(failure_message(DOCUMENTS, error)) from error
        raise
    log.info("document %s indexed: %s chunks (generation %s)", document_id, total, source.generation)
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


_STAGE_LABELS = {
    DocumentStatus.PENDING: "Waiting for a worker",
    DocumentStatus.COMPLETED: "Done",
    DocumentStatus.FAILED: "Failed",
}


def indexing_state(document: Document, *, now: datetime | None = None) -> JobState:
    """The document's indexing as every page shows it: status, stage, progress, staleness."""
    total = document.chunks_total or 0
    if document.status == DocumentStatus.COMPLETED:
        progress = 1.0  # also for a document that produced no chunks
    else:
        progress = min(1.0, document.chunks_done / total) if total else 0.0
    if document.status == DocumentStatus.INDEXING:
        stage = "embedding" if total else "extracting"
        label = f"Indexing {document.chunks_done}/{total} chunks" if total else "Extracting text"
    else:
        stage = "queued" if document.status == DocumentStatus.PENDING else document.status.lower()
        label = _STAGE_LABELS.get(DocumentStatus(document.status), document.status.title())
    return JobState(
        status=document.status,
        stage=stage,
        stage_label=label,
        progress=progress,
        stale=row_is_stale(DOCUMENTS, document, now),
        error=document.error,
    )
