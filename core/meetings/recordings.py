"""Meeting recordings as the Transcripts page reads them (lists, one recording with its
transcript so far, the audio), and retry and delete.

Visibility: core.meetings.recording_access. Upload: core.meetings.recording_upload. The
transcription job itself: core.meetings.transcription.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor
from core.meetings.audio import CONTENT_TYPES
from core.meetings.recording_access import may_manage_recording, recording_visible_clause
from core.meetings.speakers import named_segments
from core.meetings.stitching import StoredSegment, TranscriptLine, stitch_segments
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict, NotFound, PermissionDenied, QuorumError
from core.platform.jobs import RECORDINGS, JobState, reset_for_retry, row_is_stale, send
from core.platform.models import Document, TranscriptionJob, TranscriptionSegment, UsageRecord
from core.platform.statuses import RecordingStage, RecordingStatus, Visibility
from core.platform.storage import delete_stored, get_storage

log = logging.getLogger(__name__)

STAGE_LABELS: dict[str, str] = {
    RecordingStage.QUEUED: "Waiting for a worker",
    RecordingStage.NORMALISING: "Preparing the audio",
    RecordingStage.SPLITTING: "Finding pauses to split at",
    RecordingStage.TRANSCRIBING: "Transcribing",
    RecordingStage.MINUTES: "Writing the minutes",
    RecordingStage.INDEXING: "Indexing for search",
    RecordingStage.DONE: "Done",
}
_SERVABLE_TYPES = frozenset(CONTENT_TYPES.values())


@dataclass(frozen=True)
class RecordingSummary:
    """One recording as lists show it. cost_usd is the usage ledger's total for the job so far."""

    id: int
    filename: str
    owner_id: int | None
    owner_name: str
    visibility: str
    status: str
    stage: str
    progress: float
    error: str | None
    duration_seconds: float | None
    size_bytes: int
    content_type: str
    cost_usd: float
    attempts: int
    provider: str | None
    model: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    heartbeat_at: datetime | None
    state: JobState  # status, stage, progress and staleness as every page shows them
    can_retry: bool  # the viewer may press Retry now
    can_delete: bool  # the viewer may delete it

    @property
    def is_active(self) -> bool:
        """Waiting, or running with a live worker: pages keep following it."""
        return self.state.active

    @property
    def stage_label(self) -> str:
        return self.state.stage_label

    @property
    def stale(self) -> bool:
        return self.state.stale


def recording_state(job: TranscriptionJob, *, now: datetime | None = None) -> JobState:
    """The recording's transcription as every page shows it."""
    done = job.status == RecordingStatus.COMPLETED
    return JobState(
        status=job.status,
        stage=job.stage,
        stage_label=STAGE_LABELS.get(job.stage, job.stage),
        progress=1.0 if done else min(max(float(job.progress or 0.0), 0.0), 1.0),
        stale=row_is_stale(RECORDINGS, job, now),
        error=job.error,
    )


def may_retry_recording(actor: Actor, job: TranscriptionJob) -> bool:
    """The owner, admins (core.meetings.recording_access) and holders of view_jobs."""
    return may_manage_recording(actor, job) or actor.can("view_jobs")


@dataclass(frozen=True)
class RecordingDetail:
    """One recording with its transcript. `transcript_complete` is False while segments
    are still coming in (lines then holds what is done so far)."""

    summary: RecordingSummary
    lines: tuple[TranscriptLine, ...]
    transcript_complete: bool
    segments_done: int
    can_manage: bool
    can_delete: bool


@dataclass(frozen=True)
class RecordingFile:
    """The original upload, for the player and the download button."""

    filename: str
    content_type: str
    data: bytes


def enqueue_transcription(job_id: int) -> None:
    """Send the committed PENDING recording to the workers. When the queue cannot be reached
    the recording stays PENDING (core.platform.jobs.send) and QuorumError says so."""
    if not send(RECORDINGS, job_id):
        raise QuorumError(
            "The recording was saved but could not be queued (the job queue is unreachable). "
            "It is sent by itself once the queue is back; Retry sends it now."
        )


def _ledger_cost() -> Any:
    return (
        select(func.coalesce(func.sum(UsageRecord.cost_usd), 0))
        .where(UsageRecord.transcription_job_id == TranscriptionJob.id)
        .correlate(TranscriptionJob)
        .scalar_subquery()
        .label("ledger_cost")
    )


def _summary(actor: Actor, job: TranscriptionJob, cost: Decimal | float | None) -> RecordingSummary:
    owner = job.owner
    state = recording_state(job)
    return RecordingSummary(
        id=job.id,
        filename=job.filename,
        owner_id=job.owner_id,
        owner_name=(owner.display_name or owner.username) if owner is not None else "(deleted user)",
        visibility=job.visibility,
        status=job.status,
        stage=job.stage,
        progress=float(job.progress or 0.0),
        error=job.error,
        duration_seconds=job.duration_seconds,
        size_bytes=int(job.size_bytes or 0),
        content_type=job.content_type,
        cost_usd=float(max(Decimal(cost or 0), Decimal(job.cost_usd or 0))),
        attempts=job.attempts,
        provider=job.provider,
        model=job.model,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        heartbeat_at=job.heartbeat_at,
        state=state,
        can_retry=state.retryable and may_retry_recording(actor, job),
        can_delete=_may_delete(actor, job),
    )


def _readable_row(session: Session, actor: Actor, job_id: int) -> tuple[TranscriptionJob, Decimal]:
    row = session.execute(
        select(TranscriptionJob, _ledger_cost()).where(TranscriptionJob.id == job_id, recording_visible_clause(actor))
    ).first()
    if row is None:
        raise NotFound(f"Recording {job_id} was not found.")
    return row.TranscriptionJob, row.ledger_cost


def list_recordings(
    *, actor: Actor, statuses: Sequence[str] | None = None, mine_only: bool = False, limit: int = 200
) -> list[RecordingSummary]:
    """Recordings the actor may see, newest first. Read-only.

    Visible: the actor's own; team recordings with read_transcripts; every recording with
    delete_documents (admins), as core.meetings.recording_access defines.
    """
    statement = select(TranscriptionJob, _ledger_cost()).where(recording_visible_clause(actor))
    if statuses:
        statement = statement.where(TranscriptionJob.status.in_(list(statuses)))
    if mine_only:
        statement = statement.where(TranscriptionJob.owner_id == actor.id)
    statement = statement.order_by(TranscriptionJob.created_at.desc(), TranscriptionJob.id.desc()).limit(limit)
    with session_scope() as session:
        return [_summary(actor, job, cost) for job, cost in session.execute(statement).all()]


def get_recording_summary(*, actor: Actor, job_id: int) -> RecordingSummary:
    """One recording's summary. Read-only. Raises NotFound when the actor may not see it."""
    with session_scope() as session:
        return _summary(actor, *_readable_row(session, actor, job_id))


def stored_segments(session: Session, job_id: int) -> list[StoredSegment]:
    rows = session.execute(
        select(
            TranscriptionSegment.segment_index,
            TranscriptionSegment.start_seconds,
            TranscriptionSegment.end_seconds,
            TranscriptionSegment.text,
            TranscriptionSegment.pieces,
        )
        .where(TranscriptionSegment.job_id == job_id)
        .order_by(TranscriptionSegment.segment_index)
    ).all()
    return [
        StoredSegment(
            index=row.segment_index,
            start=row.start_seconds,
            end=row.end_seconds,
            text=row.text,
            pieces=tuple(row.pieces or ()),
        )
        for row in rows
    ]


def get_recording(*, actor: Actor, job_id: int) -> RecordingDetail:
    """A recording with its timestamped transcript (or the part transcribed so far).

    Read-only. Raises NotFound when the actor may not see it.
    """
    with session_scope() as session:
        job, cost = _readable_row(session, actor, job_id)
        summary = _summary(actor, job, cost)
        stored = stored_segments(session, job_id)
        if job.transcript_segments is not None:
            lines = tuple(_line_from_json(item) for item in named_segments(job))
            complete = True
        else:
            lines = tuple(stitch_segments(stored, overlap_seconds=get_settings().transcription_overlap_seconds))
            complete = False
        return RecordingDetail(
            summary=summary,
            lines=lines,
            transcript_complete=complete,
            segments_done=len(stored),
            can_manage=may_manage_recording(actor, job),
            can_delete=_may_delete(actor, job),
        )


def _line_from_json(item: dict[str, Any]) -> TranscriptLine:
    return TranscriptLine(
        start=float(item.get("start") or 0.0),
        end=float(item.get("end") or item.get("start") or 0.0),
        text=str(item.get("text") or ""),
        speaker=item.get("speaker") or None,
    )


def read_recording(*, actor: Actor, job_id: int) -> RecordingFile:
    """The original upload's bytes, for the audio player and download. Read-only.

    Raises NotFound when the actor may not see the job or the file is gone.
    """
    with session_scope() as session:
        job, _ = _readable_row(session, actor, job_id)
        key, filename, content_type = job.storage_key, job.filename, job.content_type
    if content_type not in _SERVABLE_TYPES:  # only the audio/video types uploads are stored with
        content_type = "application/octet-stream"
    return RecordingFile(filename=filename, content_type=content_type, data=get_storage().read(key))


def _may_delete(actor: Actor, job: TranscriptionJob) -> bool:
    return job.owner_id == actor.id or actor.can("delete_documents")


def _locked_readable(session: Session, actor: Actor, job_id: int) -> TranscriptionJob:
    job = session.scalar(
        select(TranscriptionJob)
        .where(TranscriptionJob.id == job_id, recording_visible_clause(actor))
        .with_for_update(of=TranscriptionJob)
    )
    if job is None:
        raise NotFound(f"Recording {job_id} was not found.")
    return job


def retry_recording(*, actor: Actor, job_id: int) -> RecordingSummary:
    """Queue a failed (or stalled) recording again; it resumes from its checkpoints.

    Allowed for the owner, admins (core.meetings.recording_access) and holders of view_jobs, on a FAILED
    job, a PROCESSING job whose worker has gone quiet, or a PENDING one (re-sending its
    message is harmless: the claim is idempotent). Resets the automatic-retry count.
    Commits with an audit row, then enqueues. Raises NotFound, PermissionDenied, Conflict.
    """
    with session_scope() as session:
        job = _locked_readable(session, actor, job_id)
        if not may_retry_recording(actor, job):
            raise PermissionDenied("Only the owner of this recording or an admin can retry it.")
        if job.status == RecordingStatus.COMPLETED:
            raise Conflict("This recording is already transcribed. Regenerate its minutes instead.")
        if not recording_state(job).retryable:
            raise Conflict("This recording is being transcribed right now.")
        record_audit(
            session,
            actor=actor,
            action="job.retry",
            target_type="transcription",
            target_id=job_id,
            details={"previous_status": job.status, "previous_error": job.error, "attempts": job.attempts},
        )
        reset_for_retry(RECORDINGS, job)
        session.flush()
    enqueue_transcription(job_id)
    return get_recording_summary(actor=actor, job_id=job_id)


def delete_recording(*, actor: Actor, job_id: int) -> None:
    """Delete a recording: the job, its segments, its transcript and minutes documents
    (with their chunks) and the stored audio.

    Owner, or a holder of delete_documents. A worker busy with it stops at its next write.
    Commits the deletion with an audit row, then removes the stored files (a storage
    error is logged: the rows are already gone). Raises NotFound, PermissionDenied.
    """
    with session_scope() as session:
        job = _locked_readable(session, actor, job_id)
        if not _may_delete(actor, job):
            raise PermissionDenied(
                "Only the owner of this recording or someone who may delete documents can delete it."
            )
        keys = [job.storage_key]
        keys += [
            key
            for key in session.scalars(select(Document.storage_key).where(Document.transcription_job_id == job_id))
            if key
        ]
        record_audit(
            session,
            actor=actor,
            action="recording.delete",
            target_type="transcription",
            target_id=job_id,
            details={"filename": job.filename, "owner_id": job.owner_id, "status": job.status},
        )
        # Documents and their chunks, and the segments, go by ON DELETE CASCADE.
        session.execute(delete(TranscriptionJob).where(TranscriptionJob.id == job_id))
    delete_stored(keys)


@dataclass(frozen=True)
class OwnerRecordings:
    """What delete_private_recordings_of did for one owner."""

    deleted_ids: list[int]
    storage_keys: list[str]  # the recordings' audio and the files of their transcript/minutes documents
    team_kept: int


def delete_private_recordings_of(session: Session, *, owner_id: int, actor: Actor, owner: str) -> OwnerRecordings:
    """Delete `owner_id`'s private recordings (segments and their transcript and minutes
    documents cascade) with a recording.delete audit row each; count their team recordings,
    which stay. For core.admin.delete_user, which checks the permission and owns the
    transaction: does not commit. The stored files are for the caller to remove after it."""
    private = session.execute(
        select(TranscriptionJob.id, TranscriptionJob.storage_key)
        .where(TranscriptionJob.owner_id == owner_id, TranscriptionJob.visibility == Visibility.PRIVATE)
        .with_for_update()
    ).all()
    ids = [row.id for row in private]
    derived_keys = session.scalars(
        select(Document.storage_key).where(Document.transcription_job_id.in_(ids), Document.storage_key.is_not(None))
    ).all()
    team_kept = session.scalar(
        select(func.count(TranscriptionJob.id)).where(
            TranscriptionJob.owner_id == owner_id, TranscriptionJob.visibility != Visibility.PRIVATE
        )
    )
    if ids:
        session.execute(delete(TranscriptionJob).where(TranscriptionJob.id.in_(ids)))
    for recording_id in ids:
        record_audit(
            session,
            actor=actor,
            action="recording.delete",
            target_type="transcription",
            target_id=recording_id,
            details={"reason": "owner deleted", "owner": owner},
        )
    keys = [row.storage_key for row in private if row.storage_key] + [key for key in derived_keys if key]
    return OwnerRecordings(deleted_ids=ids, storage_keys=keys, team_kept=int(team_kept or 0))
