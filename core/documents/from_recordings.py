"""A recording's transcript and minutes as searchable documents (full_transcript, meeting_minutes)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from core.ai.base import TranscriptPiece
from core.documents.extraction import Section, extract_markdown
from core.documents.indexing import index_document
from core.documents.text_source import TEXT_SOURCE_TYPE, text_source_bytes
from core.documents.upload import send_for_indexing
from core.meetings.plain_text import plain_minutes_text
from core.meetings.speakers import named_segments
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound
from core.platform.models import Document, TranscriptionJob
from core.platform.statuses import DocumentStatus, DocumentType
from core.platform.storage import delete_stored, get_storage
from core.platform.uploads import MAX_FILENAME_CHARS, check_visibility, clean_filename

DERIVED_KIND = "derived"  # storage key prefix of transcript/minutes sources


JOB_DOCUMENT_TYPES = (DocumentType.TRANSCRIPT, DocumentType.MINUTES)


def _job_content(job: TranscriptionJob, document_type: str) -> list[Section] | list[TranscriptPiece]:
    if document_type == DocumentType.TRANSCRIPT:
        pieces = []
        for item in named_segments(job):  # a chat source says who said it
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
    markdown = plain_minutes_text(job.minutes_markdown or "").strip()  # no tick boxes in answers
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
    source = _derived_source(job_id, document_type, title, sections_or_pieces, owner_id, visibility)
    if source is None:
        return None
    if source.unchanged_id is not None:
        return source.unchanged_id
    document_id = _store_derived(job_id, document_type, source)
    if document_id is None:
        return None
    if index_now:
        index_document(document_id)
    else:
        send_for_indexing(document_id, source.filename)
    return document_id


@dataclass(frozen=True)
class _DerivedSource:
    """The stored text a transcript or minutes document is to have, and its row values."""

    filename: str
    payload: bytes
    owner_id: int | None
    visibility: str
    existing_id: int | None
    unchanged_id: int | None  # the existing document when it already has this very text


def _derived_source(
    job_id: int,
    document_type: str,
    title: str | None,
    sections_or_pieces: Sequence[Section] | Sequence[Any] | None,
    owner_id: int | None,
    visibility: str | None,
) -> _DerivedSource | None:
    """Read the recording and build the document's text; None when there is no text. Read-only."""
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
    check_visibility(visibility)
    if not items:
        return None
    suffix = " transcript.txt" if document_type == DocumentType.TRANSCRIPT else " minutes.md"
    payload = text_source_bytes(stem, items)
    unchanged = (
        existing is not None
        and existing.sha256 == hashlib.sha256(payload).hexdigest()
        and existing.status != DocumentStatus.FAILED
    )
    return _DerivedSource(
        filename=clean_filename(stem[: MAX_FILENAME_CHARS - len(suffix)] + suffix),
        payload=payload,
        owner_id=owner,
        visibility=visibility,
        existing_id=int(existing.id) if existing is not None else None,
        unchanged_id=int(existing.id) if unchanged and existing is not None else None,
    )


def _store_derived(job_id: int, document_type: str, source: _DerivedSource) -> int | None:
    """Store the text and upsert the document row as PENDING (unless a concurrent call stored
    the same text first). Commits; removes the replaced file after. Returns the document id."""
    storage = get_storage()
    stored = storage.put(io.BytesIO(source.payload), kind=DERIVED_KIND, suffix=".json")
    old_key: str | None = None
    try:
        with session_scope() as session:
            old_key = session.scalar(
                select(Document.storage_key)
                .where(Document.transcription_job_id == job_id, Document.document_type == document_type)
                .with_for_update()
            )
            values = {
                "filename": source.filename,
                "content_type": TEXT_SOURCE_TYPE,
                "size_bytes": stored.size_bytes,
                "storage_key": stored.key,
                "sha256": stored.sha256,
                "uploaded_by": source.owner_id,
                "visibility": source.visibility,
                "status": DocumentStatus.PENDING,
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
                    where=or_(Document.sha256 != insert.excluded.sha256, Document.status == DocumentStatus.FAILED),
                ).returning(Document.id)
            )
    except BaseException:
        storage.delete(stored.key)
        raise
    if document_id is None:  # a concurrent call stored the same content first
        storage.delete(stored.key)
        return source.existing_id
    if old_key and old_key != stored.key:
        delete_stored([old_key])
    return int(document_id)


def index_recording_documents(job_id: int) -> None:
    """Index a recording's transcript and minutes as full_transcript / meeting_minutes documents,
    in this process (the transcription worker: the recording is COMPLETED only once both are
    searchable). Idempotent."""
    for document_type in JOB_DOCUMENT_TYPES:
        index_text_document(job_id=job_id, document_type=document_type, index_now=True)
