"""The document catalogue: listing, reading, download, and the actions on a row (re-index, retry, delete).

Visibility and who may change a document: core.documents.access.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor, require
from core.documents.access import (
    managed_document_row,
    may_manage_document,
    visible_document_row,
    visible_documents_clause,
)
from core.documents.filetypes import safe_download_type
from core.documents.indexing import indexing_state
from core.documents.text_source import TEXT_SOURCE_TYPE, parse_text_source, render_pieces, render_sections
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound
from core.platform.jobs import DOCUMENTS, JobState, reset_for_retry, send
from core.platform.models import Document, DocumentChunk, User
from core.platform.statuses import DOCUMENT_STATUSES, DOCUMENT_TYPES, DocumentStatus, Visibility
from core.platform.storage import delete_stored, get_storage

log = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 500


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
    state: JobState  # status, stage, progress and staleness of its indexing
    transcription_job_id: int | None
    can_manage: bool  # the viewer may re-index / retry it (when its state allows)
    can_delete: bool

    @property
    def can_retry(self) -> bool:
        """The viewer may press Retry now: failed, never taken, or abandoned by its worker."""
        return self.can_manage and self.state.retryable

    @property
    def can_reindex(self) -> bool:
        """The viewer may rebuild its chunks now (finished or failed)."""
        return self.can_manage and self.status in _REINDEXABLE


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


_REINDEXABLE = (DocumentStatus.COMPLETED, DocumentStatus.FAILED)


def reindex_document(*, actor: Actor, document_id: int) -> None:
    """Queue a rebuild of a COMPLETED or FAILED document's chunks (e.g. after a model change).

    The current chunks stay searchable until the new ones are swapped in; a failed rebuild
    leaves them in place. Commits, then enqueues. Raises NotFound, PermissionDenied, or
    Conflict while the document is already waiting or indexing.
    """
    _requeue(actor, document_id, allowed=lambda document: document.status in _REINDEXABLE, verb="re-indexed")


def retry_document(*, actor: Actor, document_id: int) -> None:
    """Queue a FAILED document again, or re-send a PENDING one / a stalled INDEXING one.

    Commits, then enqueues. Raises NotFound, PermissionDenied, or Conflict when the
    document is COMPLETED (use reindex_document) or being indexed by a live worker.
    """
    _requeue(actor, document_id, allowed=lambda document: indexing_state(document).retryable, verb="retried")


def _requeue(actor: Actor, document_id: int, *, allowed: Callable[[Document], bool], verb: str) -> None:
    with session_scope() as session:
        document = managed_document_row(session, actor, document_id)
        if not allowed(document):
            raise Conflict(f"“{document.filename}” is {document.status.lower()} and cannot be {verb} now.")
        reset_for_retry(DOCUMENTS, document)
        document.chunks_done = 0
    send(DOCUMENTS, document_id)


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


def _info(actor: Actor, document: Document, uploader: str | None, now: datetime) -> DocumentInfo:
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
        state=indexing_state(document, now=now),
        transcription_job_id=document.transcription_job_id,
        can_manage=may_manage_document(actor, document),
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
    document_ids: Sequence[int] | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
) -> list[DocumentInfo]:
    """The documents `actor` may see, newest first, filtered. Read-only.

    Dates are UTC days, both inclusive, on the upload date. filename_contains is a
    case-insensitive substring; document_ids keeps only those documents (deleted or
    invisible ones are simply missing). Raises InvalidInput for an unknown type or status.
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
    if document_ids is not None:
        statement = statement.where(Document.id.in_(list(document_ids)))
    if date_from is not None:
        statement = statement.where(Document.upload_date >= _day_start(date_from))
    if date_to is not None:
        statement = statement.where(Document.upload_date < _day_start(date_to + timedelta(days=1)))
    if filename_contains and filename_contains.strip():
        pattern = filename_contains.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(Document.filename.ilike(f"%{pattern}%", escape="\\"))
    now = datetime.now(UTC)
    with session_scope() as session:
        return [_info(actor, document, username, now) for document, username in session.execute(statement)]


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
    now = datetime.now(UTC)
    with session_scope() as session:
        document = visible_document_row(session, actor, document_id)
        uploader = session.scalar(select(User.username).where(User.id == document.uploaded_by))
        return _info(actor, document, uploader, now)


def document_chunks(*, actor: Actor, document_id: int, limit: int | None = None) -> list[ChunkInfo]:
    """The searchable chunks of a document, in order. Read-only. Raises NotFound."""
    with session_scope() as session:
        document = visible_document_row(session, actor, document_id)
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
        document = visible_document_row(session, actor, document_id)
        filename, content_type, key = document.filename, document.content_type, document.storage_key
    if not key:
        raise NotFound(f"“{filename}” has no stored file.")
    data = get_storage().read(key)
    if content_type == TEXT_SOURCE_TYPE:
        sections, pieces = parse_text_source(data)
        rendered = render_pieces(pieces) if pieces else render_sections(sections)
        return DocumentDownload(filename, "text/plain; charset=utf-8", rendered.encode("utf-8"))
    return DocumentDownload(filename, safe_download_type(content_type), data)


@dataclass(frozen=True)
class OwnerDocuments:
    """What delete_private_documents_of did for one uploader."""

    deleted_ids: list[int]
    storage_keys: list[str]
    team_kept: int


def delete_private_documents_of(session: Session, *, uploader_id: int, actor: Actor, owner: str) -> OwnerDocuments:
    """Delete `uploader_id`'s private documents (chunks cascade) with a document.delete audit
    row each; count their team documents, which stay. For core.admin.delete_user, which
    checks the permission and owns the transaction: does not commit. Call it after the
    owner's private recordings are deleted (their transcript and minutes documents go with
    them). The stored files are for the caller to remove after the commit."""
    private = session.execute(
        select(Document.id, Document.storage_key)
        .where(Document.uploaded_by == uploader_id, Document.visibility == Visibility.PRIVATE)
        .with_for_update()
    ).all()
    team_kept = session.scalar(
        select(func.count(Document.id)).where(
            Document.uploaded_by == uploader_id, Document.visibility != Visibility.PRIVATE
        )
    )
    ids = [row.id for row in private]
    if ids:
        session.execute(delete(Document).where(Document.id.in_(ids)))
    for document_id in ids:
        record_audit(
            session,
            actor=actor,
            action="document.delete",
            target_type="document",
            target_id=document_id,
            details={"reason": "owner deleted", "owner": owner},
        )
    return OwnerDocuments(
        deleted_ids=ids,
        storage_keys=[row.storage_key for row in private if row.storage_key],
        team_kept=int(team_kept or 0),
    )
