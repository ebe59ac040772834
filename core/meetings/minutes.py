"""A recording's minutes: write them (worker), read, regenerate and edit them (owner or admin).

The Minutes value and its JSON/Markdown: core.meetings.minutes_format. How they are
written from a transcript: core.meetings.minutes_writer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath

from sqlalchemy import func, select, update

from core.access.rbac import Actor
from core.ai.base import TranscriptPiece, UsageContext
from core.ai.usage import check_ai_budget
from core.meetings.action_item_sync import sync_action_items
from core.meetings.minutes_format import Minutes, minutes_from_json, pieces_from_segments
from core.meetings.minutes_writer import generate_minutes
from core.meetings.recording_access import load_managed_recording, load_readable_recording, may_manage_recording
from core.meetings.speakers import named_segments
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermanentError
from core.platform.models import Document, TranscriptionJob
from core.platform.statuses import DocumentType

log = logging.getLogger(__name__)

MAX_MINUTES_MARKDOWN_CHARS = 200_000


@dataclass(frozen=True)
class MinutesView:
    """The minutes of one job as the page shows them. `markdown` is what people read: the
    owner's edit when there is one (`edited_at` set), else the generated minutes."""

    job_id: int
    filename: str
    status: str
    minutes: Minutes | None
    markdown: str | None
    edited_at: datetime | None
    can_edit: bool = False

    @property
    def is_edited(self) -> bool:
        return self.edited_at is not None


def _title_for(filename: str) -> str:
    stem = PurePath(filename).stem.replace("_", " ").replace("-", " ").strip()
    return f"Minutes: {stem}" if stem else "Meeting minutes"


def _view(job: TranscriptionJob, actor: Actor | None) -> MinutesView:
    minutes = minutes_from_json(job.minutes, fallback_title=_title_for(job.filename)) if job.minutes else None
    can_edit = actor is not None and may_manage_recording(actor, job)
    return MinutesView(
        job_id=job.id,
        filename=job.filename,
        status=job.status,
        minutes=minutes,
        markdown=job.minutes_markdown,
        edited_at=job.minutes_edited_at,
        can_edit=can_edit,
    )


def _job_pieces(job: TranscriptionJob) -> list[TranscriptPiece]:
    pieces = pieces_from_segments(named_segments(job))  # named speakers own their action items
    if not pieces and job.transcript_text and job.transcript_text.strip():
        pieces = [TranscriptPiece(start=0.0, end=job.duration_seconds or 0.0, text=job.transcript_text)]
    return pieces


def write_minutes_for_recording(job_id: int, *, regenerate: bool = False, requested_by: int | None = None) -> None:
    """Generate and store the minutes of a transcribed job (worker entry point).

    Idempotent: returns without calling the AI when the job already has minutes, unless
    `regenerate`. A human edit is never overwritten except by an explicit regenerate, which
    replaces it. The AI calls run outside any transaction; the write is one conditional
    UPDATE, so a redelivered message or a concurrent edit cannot be clobbered.
    AI usage is recorded under purpose "minutes" for `requested_by` (default: the owner).
    Raises NotFound for an unknown job, PermanentError when it has no transcript yet,
    Conflict when the minutes were edited while a regenerate was running, ProviderError
    when the provider fails.
    """
    from core.ai import get_provider

    with session_scope() as session:
        job = session.get(TranscriptionJob, job_id)
        if job is None:
            raise NotFound(f"Recording {job_id} was not found.")
        if (job.minutes is not None or job.minutes_edited_at is not None) and not regenerate:
            log.info("minutes: job %s already has minutes (generated or edited); skipped", job_id)
            return
        if job.transcript_segments is None and job.transcript_text is None:
            raise PermanentError(f"Recording {job_id} has no transcript yet, so it has no minutes to write.")
        pieces = _job_pieces(job)
        seen_edit = job.minutes_edited_at
        owner_id = job.owner_id
        title = _title_for(job.filename)

    usage = UsageContext(purpose="minutes", user_id=requested_by or owner_id, transcription_job_id=job_id)
    minutes = generate_minutes(pieces, provider=get_provider(), usage=usage, title=title)

    conditions = [TranscriptionJob.id == job_id]
    if regenerate:
        conditions.append(TranscriptionJob.minutes_edited_at.is_not_distinct_from(seen_edit))
    else:
        # JSON null or SQL NULL: the ORM writes None into a JSONB column as JSON null.
        no_minutes = func.coalesce(func.jsonb_typeof(TranscriptionJob.minutes), "null") == "null"
        conditions += [no_minutes, TranscriptionJob.minutes_edited_at.is_(None)]
    with session_scope() as session:
        written = session.execute(
            update(TranscriptionJob)
            .where(*conditions)
            .values(minutes=minutes.to_json(), minutes_markdown=minutes.to_markdown(), minutes_edited_at=None)
            .returning(TranscriptionJob.id)
        ).first()
    if written is None and regenerate:
        raise Conflict("The minutes were edited while they were being regenerated; the edit was kept.")
    if written is None:
        log.info("minutes: job %s got minutes from another worker meanwhile; kept those", job_id)
    else:
        log.info("minutes: job %s written by %s", job_id, minutes.generator)
    sync_action_items(job_id)  # idempotent: a redelivered message matches the same items again


def get_minutes(*, actor: Actor, job_id: int) -> MinutesView:
    """The job's minutes for `actor`. Read-only. Raises NotFound when the actor may not
    read the job (core.meetings.recording_access); `minutes` and `markdown` are None until written."""
    with session_scope() as session:
        job = load_readable_recording(session, actor=actor, job_id=job_id)
        return _view(job, actor)


def regenerate_minutes(*, actor: Actor, job_id: int) -> MinutesView:
    """Write the minutes again from the stored transcript (no re-transcription), replacing
    any edit, then re-index the job's meeting_minutes document when there is one.

    Owner or admin. Commits. Raises NotFound, PermissionDenied, Conflict (no transcript
    yet, or edited meanwhile), ProviderError.
    """
    with session_scope() as session:
        job = load_managed_recording(session, actor=actor, job_id=job_id)
        if job.transcript_segments is None and job.transcript_text is None:
            raise Conflict("This recording has no transcript yet; minutes can be written once it is transcribed.")
    check_ai_budget(actor)
    write_minutes_for_recording(job_id, regenerate=True, requested_by=actor.id)
    _reindex_minutes_document(job_id)
    return get_minutes(actor=actor, job_id=job_id)


def update_minutes(*, actor: Actor, job_id: int, markdown: str) -> MinutesView:
    """Keep the owner's edited minutes (Markdown) and re-index them for search.

    The edit is stored in minutes_markdown with minutes_edited_at; the structured minutes
    stay as generated. Owner or admin. Commits. Raises InvalidInput (empty or over
    MAX_MINUTES_MARKDOWN_CHARS), NotFound, PermissionDenied.
    """
    text = markdown.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput("The minutes cannot be empty. Regenerate them instead to start again.")
    if len(text) > MAX_MINUTES_MARKDOWN_CHARS:
        raise InvalidInput(f"Minutes are limited to {MAX_MINUTES_MARKDOWN_CHARS:,} characters.")
    with session_scope() as session:
        job = load_managed_recording(session, actor=actor, job_id=job_id, for_update=True)
        job.minutes_markdown = text + "\n"
        job.minutes_edited_at = datetime.now(UTC)
        session.flush()
        view = _view(job, actor)
    sync_action_items(job_id, edited_by=actor.id)
    _reindex_minutes_document(job_id)
    return view


def _reindex_minutes_document(job_id: int) -> None:
    """Refresh the job's meeting_minutes document from minutes_markdown, when it has one.

    core.documents.indexing stores the new text and enqueues its indexing (old chunks stay
    searchable until the swap); a job whose minutes were never indexed is left to the
    transcription pipeline, which indexes them on completion.
    """
    with session_scope() as session:
        document_id = session.scalar(
            select(Document.id).where(
                Document.transcription_job_id == job_id, Document.document_type == DocumentType.MINUTES
            )
        )
    if document_id is None:
        return
    from core.documents import index_text_document

    index_text_document(job_id=job_id, document_type=DocumentType.MINUTES)
