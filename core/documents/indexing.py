"""Documents: upload, the indexing job, re-index, retry, delete, listing and download.

Who sees what (one rule, also applied inside the retrieval SQL through
`visible_documents_clause`):
- a "team" document: everyone holding read_documents;
- a "private" document: its uploader only;
- holders of delete_documents (admins; core.meetings.recording_access.SEE_ALL_PRIVATE) see every document,
  since they must see what they may delete;
- an uploader always sees their own documents, whatever their other permissions.
A document the actor may not see is reported as NotFound, never as "forbidden".

Who may change a document: re-index and retry need delete_documents, or being its uploader
while holding ingest_documents. Delete needs delete_documents.

Indexing. A document's searchable chunks are those whose generation equals
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
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import numpy as np
from sqlalchemy import ColumnElement, and_, delete, func, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor, require
from core.ai.base import TranscriptPiece, UsageContext
from core.documents.chunking import Chunk, Chunker, with_spoken_times
from core.documents.extraction import Section, check_chunk_count, extract_markdown
from core.documents.filetypes import detect_kind, kind_for_content_type, safe_download_type, stream_size
from core.documents.sandbox import read_document
from core.meetings.recording_access import SEE_ALL_PRIVATE
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import (
    Conflict,
    EmbeddingSpaceMismatch,
    InvalidInput,
    NotFound,
    PermanentError,
    PermissionDenied,
    ProviderError,
    QuorumError,
)
from core.platform.models import (
    DOCUMENT_STATUSES,
    DOCUMENT_TYPES,
    VISIBILITIES,
    Document,
    DocumentChunk,
    TranscriptionJob,
    User,
)
from core.platform.queue import enqueue
from core.platform.storage import delete_stored, get_storage
from core.platform.timecodes import short_clock

log = logging.getLogger(__name__)

ACTOR_NAME = "index_document"
DOCUMENT_KIND = "documents"  # storage key prefix of uploaded originals
DERIVED_KIND = "derived"  # storage key prefix of transcript/minutes sources
TEXT_SOURCE_TYPE = "application/vnd.quorum.text+json"
TEXT_SOURCE_FORMAT = "quorum-text/1"
JOB_DOCUMENT_TYPES = ("full_transcript", "meeting_minutes")
MAX_FILENAME_CHARS = 255
DEFAULT_LIST_LIMIT = 500

Visibility = Literal["team", "private"]


# ---------------------------------------------------------------------------- values


class UploadedFileLike(Protocol):
    """What upload_documents accepts: Streamlit's UploadedFile, an open file, a BytesIO with
    a .name. A .size attribute or seek/tell lets the size be checked before reading."""

    @property
    def name(self) -> str: ...

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class UploadOutcome:
    """What happened to one uploaded file. `message` is written for the user."""

    filename: str
    status: Literal["accepted", "duplicate", "rejected"]
    message: str
    document_id: int | None = None


@dataclass(frozen=True)
class DocumentInfo:
    """One row of the catalogue as the Ingestion Hub shows it."""

    id: int
    filename: str
    document_type: str
    status: str
    visibility: str
    uploaded_by: int | None
    uploader: str
    upload_date: datetime
    size_bytes: int
    content_type: str
    chunks_done: int
    chunks_total: int
    error: str | None
    indexed_at: datetime | None
    searchable: bool  # has an active generation of chunks (also during a re-index)
    stalled: bool  # INDEXING but no heartbeat for settings.job_stale_after_seconds
    transcription_job_id: int | None
    can_manage: bool  # may re-index / retry
    can_delete: bool


@dataclass(frozen=True)
class ChunkInfo:
    chunk_index: int
    content: str
    token_count: int
    page_number: int | None
    heading: str | None
    start_seconds: float | None
    end_seconds: float | None


@dataclass(frozen=True)
class DocumentDownload:
    """A stored original ready to hand to st.download_button. content_type is always inert."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class IngestedPath:
    """One path given to ingest_paths and what became of it."""

    path: str
    outcome: UploadOutcome
    status: str | None = None  # the document's status after waiting, when accepted
    chunks: int = 0
    error: str | None = None


# ---------------------------------------------------------------------------- access rules


def visible_documents_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL condition over Document: the documents `actor` may see (rule in the module doc).

    Used by listings here and by retrieval inside its one search statement.
    """
    if actor.can(SEE_ALL_PRIVATE):
        return true()
    own = Document.uploaded_by == actor.id
    if actor.can("read_documents"):
        return or_(own, Document.visibility == "team")
    return own


def searchable_documents_clause(actor: Actor) -> ColumnElement[bool]:
    """Visible documents that have searchable chunks (an active generation), whatever their
    status: a document being re-indexed stays searchable through its previous chunks.
    Join chunks with ``DocumentChunk.generation == Document.active_generation``."""
    return and_(visible_documents_clause(actor), Document.active_generation > 0)


def _may_manage(actor: Actor, document: Document) -> bool:
    return actor.can("delete_documents") or (
        document.uploaded_by == actor.id and document.uploaded_by is not None and actor.can("ingest_documents")
    )


def _visible_row(session: Session, actor: Actor, document_id: int, *, lock: bool = False) -> Document:
    statement = select(Document).where(Document.id == document_id, visible_documents_clause(actor))
    if lock:
        statement = statement.with_for_update(of=Document)
    document = session.scalar(statement)
    if document is None:
        raise NotFound(f"Document {document_id} was not found.")
    return document


def _managed_row(session: Session, actor: Actor, document_id: int) -> Document:
    document = _visible_row(session, actor, document_id, lock=True)
    if not _may_manage(actor, document):
        raise PermissionDenied("Only the uploader or an admin can re-index or retry this document.")
    return document


# ---------------------------------------------------------------------------- upload


def _clean_filename(name: str | None) -> str:
    """The display name of an upload: its last path part, printable, at most 255 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip() or "unnamed"
    if len(base) > MAX_FILENAME_CHARS:
        dot = base.rfind(".")
        suffix = base[dot:] if dot > 0 and len(base) - dot <= 16 else ""
        base = base[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return base


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _seekable(file: Any, max_bytes: int) -> tuple[IO[bytes], int]:
    """The upload as a seekable stream and its size, reading at most max_bytes + 1 bytes.

    A stream that knows its size (or can seek) is used as it is; anything else is spooled
    to a temporary file, stopping one byte past the limit.
    """
    size = stream_size(file)
    seekable = bool(getattr(file, "seekable", lambda: False)())
    if size is not None and seekable:
        return file, size
    if size is not None and size > max_bytes:
        return file, size  # refused before a byte is read
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - closed by the caller
    copied = 0
    while copied <= max_bytes and (block := file.read(min(1024 * 1024, max_bytes + 1 - copied))):
        spool.write(block)
        copied += len(block)
    spool.seek(0)
    return spool, copied  # type: ignore[return-value]


def _check_visibility(visibility: str) -> None:
    if visibility not in VISIBILITIES:
        raise InvalidInput(f"Visibility must be one of: {', '.join(VISIBILITIES)}.")


def _lock_content(session: Session, sha256: str) -> None:
    """Serialise uploads of the same content until the transaction ends (duplicate check)."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"document:{sha256}"})


def _accept_one(actor: Actor, file: UploadedFileLike, visibility: str, *, send: bool) -> UploadOutcome:
    settings = get_settings()
    filename = _clean_filename(getattr(file, "name", None))
    limit = settings.max_document_bytes
    stream, size = _seekable(file, limit)
    try:
        if size == 0:
            return UploadOutcome(filename, "rejected", f"{filename}: the file is empty.")
        if size > limit:
            return UploadOutcome(
                filename,
                "rejected",
                f"{filename}: the file is {_megabytes(size)}; the limit is {settings.max_document_mb} MB.",
            )
        try:
            kind = detect_kind(filename=filename, stream=stream)
        except InvalidInput as error:
            return UploadOutcome(filename, "rejected", str(error))
        storage = get_storage()
        try:
            stored = storage.put(stream, kind=DOCUMENT_KIND, suffix=kind.extension, max_bytes=limit)
        except InvalidInput:
            return UploadOutcome(
                filename, "rejected", f"{filename}: the file is larger than the limit of {settings.max_document_mb} MB."
            )
    finally:
        if stream is not file:
            stream.close()

    duplicate: Document | None = None
    document_id: int | None = None
    try:
        with session_scope() as session:
            _lock_content(session, stored.sha256)
            duplicate = session.scalar(
                select(Document)
                .where(Document.sha256 == stored.sha256, visible_documents_clause(actor))
                .order_by(Document.id)
                .limit(1)
            )
            if duplicate is None:
                document = Document(
                    filename=filename,
                    content_type=kind.content_type,
                    size_bytes=stored.size_bytes,
                    storage_key=stored.key,
                    sha256=stored.sha256,
                    uploaded_by=actor.id,
                    visibility=visibility,
                    status="PENDING",
                    document_type="general_document",
                )
                session.add(document)
                session.flush()
                document_id = document.id
    except BaseException:
        storage.delete(stored.key)
        raise
    if duplicate is not None:
        storage.delete(stored.key)
        return UploadOutcome(
            filename,
            "duplicate",
            f"{filename}: the same content is already in the knowledge base as "
            f"“{duplicate.filename}” (document {duplicate.id}, {duplicate.status.lower()}); it was not added again.",
            duplicate.id,
        )
    assert document_id is not None
    log.info("document %s (%s, %s) uploaded by %s", document_id, filename, kind.name, actor.username)
    if not send:
        return UploadOutcome(filename, "accepted", f"{filename}: stored as {kind.label}.", document_id)
    return UploadOutcome(filename, "accepted", _send(document_id, filename), document_id)


def _accept_safely(actor: Actor, file: UploadedFileLike, visibility: str, *, send: bool) -> UploadOutcome:
    """_accept_one, with any failure turned into a "rejected" outcome so the batch goes on."""
    try:
        return _accept_one(actor, file, visibility, send=send)
    except QuorumError as error:
        filename = _clean_filename(getattr(file, "name", None))
        return UploadOutcome(filename, "rejected", f"{filename}: {error}")
    except Exception as error:
        filename = _clean_filename(getattr(file, "name", None))
        log.exception("upload of %s failed", filename)
        return UploadOutcome(filename, "rejected", f"{filename}: could not be stored ({_describe(error)}). Try again.")


def _send(document_id: int, filename: str) -> str:
    """Enqueue indexing; a message for the user either way (the row is already committed)."""
    try:
        enqueue(ACTOR_NAME, document_id)
    except Exception:
        log.exception("could not enqueue indexing of document %s", document_id)
        return f"{filename}: stored, but the indexing queue is unreachable; press Retry once it is back."
    return f"{filename}: uploaded; indexing has been queued."


def upload_documents(
    *, actor: Actor, files: Sequence[UploadedFileLike], visibility: str = "team"
) -> list[UploadOutcome]:
    """Validate, store and queue each file for indexing; one outcome per file, in order.

    Per file: size (from .size or seek/tell, before reading), the real type from the
    content, then the bytes are streamed to storage while hashing. Empty, oversized,
    unsupported and mismatched files are "rejected" with a message; content identical
    (sha256) to a document the actor can see is a "duplicate" pointing to it (content the
    actor cannot see is stored again, privately to them or for the team, so no private
    document leaks). An accepted file gets a PENDING row, committed, then an index_document
    message. One bad file never stops the rest of the batch.

    Commits once per accepted file. Raises PermissionDenied without ingest_documents and
    InvalidInput for an unknown visibility (nothing is stored then).
    """
    require(actor, "ingest_documents")
    _check_visibility(visibility)
    return [_accept_safely(actor, file, visibility, send=True) for file in files]


# ---------------------------------------------------------------------------- indexing job


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
        sections, pieces = _parse_text_source(storage.read(claim.storage_key))
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
                error=f"Interrupted, will retry: {_describe(error)}",
            )
    except _ClaimLost:
        pass
    except Exception:
        log.exception("could not release document %s after an error", claim.document_id)


def _describe(error: BaseException) -> str:
    if isinstance(error, QuorumError):
        return str(error)
    text_ = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text_}"[:500] if text_ else type(error).__name__


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
        _fail(claim, _describe(error))
        return
    except Exception as error:
        if claim.attempt >= settings.job_max_attempts:
            _fail(claim, f"Indexing failed after {claim.attempt} attempts: {_describe(error)}")
            if isinstance(error, ProviderError):
                return
            raise PermanentError(_describe(error)) from error
        _release(claim, error)
        raise
    except BaseException as error:  # time limit, shutdown: hand the row back first
        _release(claim, error)
        raise
    log.info("document %s indexed: %s chunks (generation %s)", document_id, total, claim.generation)


# ---------------------------------------------------------------------------- bulk chunk writes

_STAGE_TABLE = "quorum_chunk_stage"
_STAGE_COLUMNS = (
    "document_id",
    "generation",
    "chunk_index",
    "content",
    "token_count",
    "page_number",
    "heading",
    "start_seconds",
    "end_seconds",
    "embedding",
)
_STAGE_TYPES = ["int4", "int4", "int4", "text", "int4", "int4", "text", "float8", "float8", "vector"]
_COLUMN_LIST = ", ".join(_STAGE_COLUMNS)
_UPDATES = ", ".join(f"{name} = EXCLUDED.{name}" for name in _STAGE_COLUMNS[3:])


def _driver_connection(session: Session) -> Any:
    """The psycopg connection under the session's transaction, with pgvector's types registered."""
    from pgvector.psycopg import register_vector

    connection: Any = session.connection().connection.driver_connection
    if connection.adapters.types.get("vector") is None:
        register_vector(connection)
    return connection


def write_chunks(
    session: Session, document_id: int, generation: int, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
) -> None:
    """Upsert `chunks` with their embeddings on (document_id, generation, chunk_index). Does not commit.

    Binary COPY into a per-connection temporary table, then one INSERT ... SELECT ... ON
    CONFLICT DO UPDATE: far faster than row inserts with vectors formatted as text.
    """
    if len(chunks) != len(vectors):
        raise ValueError("one embedding per chunk is needed")
    if not chunks:
        return
    matrix = np.asarray(vectors, dtype=np.float32)
    connection = _driver_connection(session)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_TABLE} ("
            "document_id int4, generation int4, chunk_index int4, content text, token_count int4, "
            "page_number int4, heading text, start_seconds float8, end_seconds float8, embedding vector"
            ") ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"DELETE FROM {_STAGE_TABLE}")  # empty unless called twice in one transaction
        with cursor.copy(f"COPY {_STAGE_TABLE} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_STAGE_TYPES)
            for chunk, vector in zip(chunks, matrix, strict=True):
                copy.write_row(
                    (
                        document_id,
                        generation,
                        chunk.index,
                        chunk.text,
                        chunk.token_count,
                        chunk.page_number,
                        chunk.heading,
                        chunk.start_seconds,
                        chunk.end_seconds,
                        vector,
                    )
                )
        cursor.execute(
            f"INSERT INTO document_chunks ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGE_TABLE} "
            f"ON CONFLICT (document_id, generation, chunk_index) DO UPDATE SET {_UPDATES}"
        )


# ---------------------------------------------------------------------------- actions on documents


def reindex_document(*, actor: Actor, document_id: int) -> None:
    """Queue a rebuild of a COMPLETED or FAILED document's chunks (e.g. after a model change).

    The current chunks stay searchable until the new ones are swapped in; a failed rebuild
    leaves them in place. Commits, then enqueues. Raises NotFound, PermissionDenied, or
    Conflict while the document is already waiting or indexing.
    """
    _requeue(actor, document_id, allowed=("COMPLETED", "FAILED"), verb="re-indexed")


def retry_document(*, actor: Actor, document_id: int) -> None:
    """Queue a FAILED document again, or re-send a PENDING one / a stalled INDEXING one.

    Commits, then enqueues. Raises NotFound, PermissionDenied, or Conflict when the
    document is COMPLETED (use reindex_document) or being indexed by a live worker.
    """
    _requeue(actor, document_id, allowed=("FAILED", "PENDING", "STALLED"), verb="retried")


def _is_stalled(document: Document) -> bool:
    if document.status != "INDEXING":
        return False
    beat = document.heartbeat_at or document.started_at or document.upload_date
    return beat < datetime.now(UTC) - timedelta(seconds=get_settings().job_stale_after_seconds)


def _requeue(actor: Actor, document_id: int, *, allowed: tuple[str, ...], verb: str) -> None:
    with session_scope() as session:
        document = _managed_row(session, actor, document_id)
        state = "STALLED" if _is_stalled(document) else document.status
        if state not in allowed:
            raise Conflict(f"“{document.filename}” is {document.status.lower()} and cannot be {verb} now.")
        document.status = "PENDING"
        document.error = None
        document.attempts = 0
        document.heartbeat_at = None
        document.chunks_done = 0
    enqueue(ACTOR_NAME, document_id)


def delete_documents(*, actor: Actor, document_ids: Iterable[int]) -> int:
    """Delete documents, their chunks (cascade) and their stored files. Returns how many.

    Requires delete_documents. Ids the actor cannot see or that no longer exist are
    skipped (idempotent). Commits the rows with one audit row each, then removes the files
    (a file that cannot be removed is logged). A run indexing a deleted document stops at
    its next batch.
    """
    require(actor, "delete_documents")
    ids = sorted(set(document_ids))
    if not ids:
        return 0
    with session_scope() as session:
        rows = session.execute(
            select(Document.id, Document.filename, Document.storage_key, Document.document_type)
            .where(Document.id.in_(ids), visible_documents_clause(actor))
            .with_for_update()
        ).all()
        if not rows:
            return 0
        session.execute(delete(Document).where(Document.id.in_([row.id for row in rows])))
        for row in rows:
            record_audit(
                session,
                actor=actor,
                action="document.delete",
                target_type="document",
                target_id=row.id,
                details={"filename": row.filename, "document_type": row.document_type},
            )
    delete_stored(row.storage_key for row in rows)
    log.info("%s deleted documents %s", actor.username, [row.id for row in rows])
    return len(rows)


# ---------------------------------------------------------------------------- reading


def _info(actor: Actor, document: Document, uploader: str | None, stale_before: datetime) -> DocumentInfo:
    beat = document.heartbeat_at or document.started_at or document.upload_date
    return DocumentInfo(
        id=document.id,
        filename=document.filename,
        document_type=document.document_type,
        status=document.status,
        visibility=document.visibility,
        uploaded_by=document.uploaded_by,
        uploader=uploader or "(deleted user)",
        upload_date=document.upload_date,
        size_bytes=int(document.size_bytes or 0),
        content_type=document.content_type,
        chunks_done=document.chunks_done,
        chunks_total=document.chunks_total,
        error=document.error,
        indexed_at=document.indexed_at,
        searchable=document.active_generation > 0,
        stalled=document.status == "INDEXING" and beat < stale_before,
        transcription_job_id=document.transcription_job_id,
        can_manage=_may_manage(actor, document),
        can_delete=actor.can("delete_documents"),
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def list_documents(
    *,
    actor: Actor,
    document_type: str | None = None,
    status: str | None = None,
    uploader_id: int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    filename_contains: str | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
) -> list[DocumentInfo]:
    """The documents `actor` may see, newest first, filtered. Read-only.

    Dates are UTC days, both inclusive, on the upload date. filename_contains is a
    case-insensitive substring. Raises InvalidInput for an unknown type or status.
    """
    if document_type is not None and document_type not in DOCUMENT_TYPES:
        raise InvalidInput(f"Unknown document type {document_type!r}.")
    if status is not None and status not in DOCUMENT_STATUSES:
        raise InvalidInput(f"Unknown status {status!r}.")
    statement = (
        select(Document, User.username)
        .outerjoin(User, User.id == Document.uploaded_by)
        .where(visible_documents_clause(actor))
        .order_by(Document.upload_date.desc(), Document.id.desc())
        .limit(max(1, min(limit, 10_000)))
    )
    if document_type:
        statement = statement.where(Document.document_type == document_type)
    if status:
        statement = statement.where(Document.status == status)
    if uploader_id is not None:
        statement = statement.where(Document.uploaded_by == uploader_id)
    if date_from is not None:
        statement = statement.where(Document.upload_date >= _day_start(date_from))
    if date_to is not None:
        statement = statement.where(Document.upload_date < _day_start(date_to + timedelta(days=1)))
    if filename_contains and filename_contains.strip():
        pattern = filename_contains.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(Document.filename.ilike(f"%{pattern}%", escape="\\"))
    stale_before = datetime.now(UTC) - timedelta(seconds=get_settings().job_stale_after_seconds)
    with session_scope() as session:
        return [_info(actor, document, username, stale_before) for document, username in session.execute(statement)]


def list_uploaders(*, actor: Actor) -> list[tuple[int, str]]:
    """(user id, username) of everyone who uploaded a document `actor` can see. Read-only."""
    with session_scope() as session:
        rows = session.execute(
            select(User.id, User.username)
            .join(Document, Document.uploaded_by == User.id)
            .where(visible_documents_clause(actor))
            .distinct()
            .order_by(User.username)
        ).all()
    return [(row.id, row.username) for row in rows]


def get_document(*, actor: Actor, document_id: int) -> DocumentInfo:
    """One document the actor may see. Read-only. Raises NotFound."""
    stale_before = datetime.now(UTC) - timedelta(seconds=get_settings().job_stale_after_seconds)
    with session_scope() as session:
        document = _visible_row(session, actor, document_id)
        uploader = session.scalar(select(User.username).where(User.id == document.uploaded_by))
        return _info(actor, document, uploader, stale_before)


def document_chunks(*, actor: Actor, document_id: int, limit: int | None = None) -> list[ChunkInfo]:
    """The searchable chunks of a document, in order. Read-only. Raises NotFound."""
    with session_scope() as session:
        document = _visible_row(session, actor, document_id)
        statement = (
            select(DocumentChunk)
            .where(DocumentChunk.document_id == document.id, DocumentChunk.generation == document.active_generation)
            .order_by(DocumentChunk.chunk_index)
        )
        if limit is not None:
            statement = statement.limit(limit)
        return [
            ChunkInfo(
                chunk_index=chunk.chunk_index,
                content=chunk.content,
                token_count=chunk.token_count,
                page_number=chunk.page_number,
                heading=chunk.heading,
                start_seconds=chunk.start_seconds,
                end_seconds=chunk.end_seconds,
            )
            for chunk in session.scalars(statement)
        ]


def download_document(*, actor: Actor, document_id: int) -> DocumentDownload:
    """The stored original with its filename and an inert content type. Read-only.

    Anyone who may see the document may download it. HTML and anything unknown is sent as
    application/octet-stream, never as itself. Transcripts and minutes come as text.
    Raises NotFound when the document or its file is missing.
    """
    with session_scope() as session:
        document = _visible_row(session, actor, document_id)
        filename, content_type, key = document.filename, document.content_type, document.storage_key
    if not key:
        raise NotFound(f"“{filename}” has no stored file.")
    data = get_storage().read(key)
    if content_type == TEXT_SOURCE_TYPE:
        sections, pieces = _parse_text_source(data)
        rendered = _render_pieces(pieces) if pieces else _render_sections(sections)
        return DocumentDownload(filename, "text/plain; charset=utf-8", rendered.encode("utf-8"))
    return DocumentDownload(filename, safe_download_type(content_type), data)


# ---------------------------------------------------------------------------- transcripts and minutes


def _parse_text_source(data: bytes) -> tuple[list[Section], list[TranscriptPiece]]:
    try:
        payload = json.loads(data)
        if payload.get("format") != TEXT_SOURCE_FORMAT:
            raise ValueError("unknown format")
        sections = [
            Section(text=item["text"], page_number=item.get("page_number"), heading=item.get("heading"))
            for item in payload.get("sections", [])
        ]
        pieces = [
            TranscriptPiece(
                start=float(item["start"]), end=float(item["end"]), text=item["text"], speaker=item.get("speaker")
            )
            for item in payload.get("pieces", [])
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput(f"The stored text of this document is damaged ({error}).") from None
    return sections, pieces


def _text_source(title: str, items: Sequence[Any]) -> bytes:
    """Canonical JSON for sections or timed pieces (same content -> same bytes -> same sha256)."""
    payload: dict[str, Any] = {"format": TEXT_SOURCE_FORMAT, "title": title}
    if items and all(hasattr(item, "start") and hasattr(item, "end") for item in items):
        payload["pieces"] = [
            {
                "start": round(float(piece.start), 3),
                "end": round(float(piece.end), 3),
                "text": str(piece.text),
                "speaker": getattr(piece, "speaker", None),
            }
            for piece in items
            if str(piece.text).strip()
        ]
    else:
        payload["sections"] = [
            {"text": section.text, "page_number": section.page_number, "heading": section.heading}
            for section in items
            if section.text.strip()
        ]
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")


def _render_pieces(pieces: Sequence[TranscriptPiece]) -> str:
    lines = []
    for piece in pieces:
        speaker = f"{piece.speaker}: " if piece.speaker else ""
        lines.append(f"[{short_clock(piece.start)}] {speaker}{piece.text}")
    return "\n".join(lines) + "\n"


def _render_sections(sections: Sequence[Section]) -> str:
    parts = []
    heading: str | None = None
    for section in sections:
        if section.heading and section.heading != heading:
            parts.append(f"## {section.heading}")
            heading = section.heading
        parts.append(section.text)
    return "\n\n".join(parts) + "\n"


def _job_content(job: TranscriptionJob, document_type: str) -> list[Section] | list[TranscriptPiece]:
    if document_type == "full_transcript":
        pieces = []
        for item in job.transcript_segments or []:
            if not isinstance(item, dict) or not str(item.get("text") or "").strip():
                continue
            start = float(item.get("start") or 0.0)
            end = item.get("end")
            pieces.append(
                TranscriptPiece(
                    start=start,
                    end=float(end) if end is not None else start,
                    text=str(item["text"]),
                    speaker=item.get("speaker"),
                )
            )
        if pieces:
            return pieces
        text_ = (job.transcript_text or "").strip()
        return [Section(text=text_)] if text_ else []
    markdown = (job.minutes_markdown or "").strip()
    if not markdown:
        return []
    try:
        return extract_markdown(markdown)
    except InvalidInput:
        return []


def index_text_document(
    *,
    job_id: int,
    document_type: str,
    title: str | None = None,
    sections_or_pieces: Sequence[Section] | Sequence[Any] | None = None,
    owner_id: int | None = None,
    visibility: str | None = None,
    index_now: bool = False,
) -> int | None:
    """Make (or refresh) the full_transcript / meeting_minutes document of a transcription job.

    The content is `sections_or_pieces` (Sections, or timed pieces with start/end/text and
    an optional speaker), or when None, read from the job: transcript_segments (else
    transcript_text) for full_transcript, minutes_markdown for meeting_minutes. Owner,
    visibility and title default to the job's. Returns the document id, or None when
    there is no text (nothing is created).

    Idempotent per (job_id, document_type): the same content again changes nothing; new
    content (an edited minutes text) is stored, the row is set PENDING, and the document is
    re-indexed (old chunks searchable until the swap). Commits, then enqueues
    index_document, or with index_now=True indexes in this process (for workers and the CLI).
    Raises NotFound for an unknown job, ValueError for another document type.
    """
    if document_type not in JOB_DOCUMENT_TYPES:
        raise ValueError(f"document_type must be one of {JOB_DOCUMENT_TYPES}")
    with session_scope() as session:
        job = session.get(TranscriptionJob, job_id)
        if job is None:
            raise NotFound(f"Recording {job_id} was not found.")
        items = list(sections_or_pieces) if sections_or_pieces is not None else _job_content(job, document_type)
        owner = owner_id if owner_id is not None else job.owner_id
        visibility = visibility or job.visibility
        stem = (title or Path(job.filename).stem or f"Recording {job_id}").strip()
        existing = session.execute(
            select(Document.id, Document.sha256, Document.status).where(
                Document.transcription_job_id == job_id, Document.document_type == document_type
            )
        ).first()
    _check_visibility(visibility)
    if not items:
        return None
    suffix = " transcript.txt" if document_type == "full_transcript" else " minutes.md"
    filename = _clean_filename(stem[: MAX_FILENAME_CHARS - len(suffix)] + suffix)
    payload = _text_source(stem, items)
    sha256 = hashlib.sha256(payload).hexdigest()
    if existing is not None and existing.sha256 == sha256 and existing.status != "FAILED":
        return int(existing.id)

    storage = get_storage()
    stored = storage.put(io.BytesIO(payload), kind=DERIVED_KIND, suffix=".json")
    old_key: str | None = None
    try:
        with session_scope() as session:
            old_key = session.scalar(
                select(Document.storage_key)
                .where(Document.transcription_job_id == job_id, Document.document_type == document_type)
                .with_for_update()
            )
            values = {
                "filename": filename,
                "content_type": TEXT_SOURCE_TYPE,
                "size_bytes": stored.size_bytes,
                "storage_key": stored.key,
                "sha256": stored.sha256,
                "uploaded_by": owner,
                "visibility": visibility,
                "status": "PENDING",
                "error": None,
                "attempts": 0,
                "heartbeat_at": None,
                "chunks_done": 0,
            }
            insert = pg_insert(Document).values(transcription_job_id=job_id, document_type=document_type, **values)
            document_id = session.scalar(
                insert.on_conflict_do_update(
                    constraint="uq_documents_job_type",
                    set_=values,
                    where=or_(Document.sha256 != insert.excluded.sha256, Document.status == "FAILED"),
                ).returning(Document.id)
            )
    except BaseException:
        storage.delete(stored.key)
        raise
    if document_id is None:  # a concurrent call stored the same content first
        storage.delete(stored.key)
        return int(existing.id) if existing is not None else None
    if old_key and old_key != stored.key:
        delete_stored([old_key])
    if index_now:
        index_document(document_id)
    else:
        _send(document_id, filename)
    return int(document_id)


# ---------------------------------------------------------------------------- command line


def _expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Hidden means hidden inside the folder given: the folder itself may live under
            # a dot-directory (~/.data/minutes) and must still be read.
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            yield path


def ingest_paths(
    *, actor: Actor, paths: Iterable[str | Path], visibility: str = "team", wait: bool = True
) -> list[IngestedPath]:
    """The CLI's ingest: upload files (folders recursively, hidden files skipped) as `actor`.

    wait=True indexes each accepted file in this process and reports its final status
    (no worker needed); wait=False queues them for the workers like the Hub does. Commits per
    file. Raises PermissionDenied without ingest_documents, InvalidInput for a bad visibility.
    """
    require(actor, "ingest_documents")
    _check_visibility(visibility)
    results: list[IngestedPath] = []
    for path in _expand(paths):
        if not path.is_file():
            outcome = UploadOutcome(path.name, "rejected", f"{path.name}: no such file.")
            results.append(IngestedPath(str(path), outcome))
            continue
        with path.open("rb") as handle:
            outcome = _accept_safely(actor, handle, visibility, send=not wait)
        if outcome.status != "accepted" or not wait:
            results.append(IngestedPath(str(path), outcome))
            continue
        assert outcome.document_id is not None
        try:
            index_document(outcome.document_id)
        except Exception as error:
            log.exception("indexing %s failed", path)
            results.append(IngestedPath(str(path), outcome, "PENDING", 0, _describe(error)))
            continue
        with session_scope() as session:
            row = session.execute(
                select(Document.status, Document.chunks_total, Document.error).where(Document.id == outcome.document_id)
            ).one()
        results.append(IngestedPath(str(path), outcome, row.status, int(row.chunks_total), row.error))
    return results
