"""The job monitor: every transcription and indexing job, queue depths, and retry.

view_jobs shows that a job exists, its owner, state and timings, not what it is about: the
filename of a recording or document the viewer may not read themselves (someone's private
upload, or a transcript without read_transcripts) is replaced by a placeholder, in its
error message too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor, require
from core.admin.users import DELETED_USER_LABEL
from core.documents.access import visible_documents_clause
from core.documents.catalog import retry_document
from core.documents.indexing import indexing_state
from core.meetings.recording_access import recording_visible_clause
from core.meetings.recordings import recording_state, retry_recording
from core.platform.db import session_scope
from core.platform.errors import InvalidInput
from core.platform.jobs import JobKind, JobState
from core.platform.models import Document, TranscriptionJob, User
from core.platform.queue import queue_depths
from core.platform.statuses import DocumentStatus, RecordingStatus

log = logging.getLogger(__name__)

# The monitor's filter and column words: one "Running" for both kinds of job (a recording
# is PROCESSING, a document INDEXING); the filter's PROCESSING matches both.
JOB_STATUS_WORDS: dict[str, str] = {
    RecordingStatus.PENDING: "Waiting",
    RecordingStatus.PROCESSING: "Running",
    RecordingStatus.COMPLETED: "Completed",
    RecordingStatus.FAILED: "Failed",
}


@dataclass(frozen=True)
class JobRow:
    """One background job: a recording's transcription or a document's indexing."""

    kind: JobKind
    id: int
    name: str
    owner: str
    status: str
    stage: str  # machine name of the step
    stage_label: str  # the step in words
    progress: float  # 0..1
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_seconds: float | None
    stale: bool  # running, but no heartbeat for longer than job_stale_after_seconds
    can_retry: bool  # failed, never taken, or stale: Retry may send it again
    needs_attention: bool  # failed, stale, or waiting with a problem noted

    @property
    def running(self) -> bool:
        return self.status in (RecordingStatus.PROCESSING, DocumentStatus.INDEXING)

    @property
    def failed(self) -> bool:
        return self.status == RecordingStatus.FAILED

    @property
    def status_label(self) -> str:
        """ "Waiting", "Running", "Running (stalled)", "Completed", "Failed"."""
        words = "Running" if self.running else JOB_STATUS_WORDS.get(self.status, self.status.title())
        return f"{words} (stalled)" if self.stale else words

    @property
    def current_stage(self) -> str:
        """What a waiting or running job is doing, in words; nothing once it has finished."""
        return "" if self.status in (RecordingStatus.COMPLETED, RecordingStatus.FAILED) else self.stage_label


def _duration(started: datetime | None, finished: datetime | None, running: bool, now: datetime) -> float | None:
    if started is None:
        return None
    end = finished or (now if running else None)
    return None if end is None else max(0.0, (end - started).total_seconds())


PRIVATE_RECORDING = "(a recording you cannot open)"
PRIVATE_DOCUMENT = "(a document you cannot open)"


def _shown(name: str, error: str | None, *, readable: bool, placeholder: str) -> tuple[str, str | None]:
    """(name, error) as the viewer may see them: the real ones, or with the name hidden."""
    if readable:
        return name, error
    return placeholder, error.replace(name, placeholder) if error and name else error


def _readable_ids(session: Session, id_column: Any, ids: list[int], visible: ColumnElement[bool]) -> set[int]:
    """Those of `ids` whose rows satisfy the viewer's own `visible` rule."""
    return set(session.scalars(select(id_column).where(id_column.in_(ids), visible)))


def _row(
    kind: JobKind,
    job: TranscriptionJob | Document,
    *,
    owner: User | None,
    state: JobState,
    created_at: datetime,
    finished_at: datetime | None,
    readable: bool,
    now: datetime,
) -> JobRow:
    """One monitor row for a recording or a document, its name hidden unless `readable`."""
    running = job.status in (RecordingStatus.PROCESSING, DocumentStatus.INDEXING)
    placeholder = PRIVATE_RECORDING if kind == JobKind.TRANSCRIPTION else PRIVATE_DOCUMENT
    name, error = _shown(job.filename, job.error, readable=readable, placeholder=placeholder)
    return JobRow(
        kind=kind,
        id=job.id,
        name=name,
        owner=owner.username if owner else DELETED_USER_LABEL,
        status=job.status,
        stage=state.stage,
        stage_label=state.stage_label,
        progress=state.progress,
        attempts=job.attempts,
        error=error,
        created_at=created_at,
        started_at=job.started_at,
        finished_at=finished_at,
        heartbeat_at=job.heartbeat_at,
        duration_seconds=_duration(job.started_at, finished_at, running, now),
        stale=state.stale,
        can_retry=state.retryable,
        needs_attention=state.needs_attention,
    )


def list_jobs(
    *, actor: Actor, kind: JobKind | None = None, status: str | None = None, limit: int = 200
) -> list[JobRow]:
    """Transcription and indexing jobs, newest first, at most `limit` of each kind. Read-only.

    `status` uses the job vocabulary (PENDING, PROCESSING, COMPLETED, FAILED); for
    indexing jobs PROCESSING matches documents in INDEXING. Raises PermissionDenied
    without view_jobs.
    """
    require(actor, "view_jobs")
    now = datetime.now(UTC)
    rows: list[JobRow] = []
    with session_scope() as session:
        if kind in (None, JobKind.TRANSCRIPTION):
            query = select(TranscriptionJob).order_by(TranscriptionJob.created_at.desc(), TranscriptionJob.id.desc())
            if status:
                query = query.where(TranscriptionJob.status == status)
            jobs = list(session.scalars(query.limit(limit)))
            readable = _readable_ids(
                session, TranscriptionJob.id, [job.id for job in jobs], recording_visible_clause(actor)
            )
            rows += [
                _row(
                    JobKind.TRANSCRIPTION,
                    job,
                    owner=job.owner,
                    state=recording_state(job, now=now),
                    created_at=job.created_at,
                    finished_at=job.completed_at,
                    readable=job.id in readable,
                    now=now,
                )
                for job in jobs
            ]
        if kind in (None, JobKind.INDEXING):
            documents = select(Document).order_by(Document.upload_date.desc(), Document.id.desc())
            if status:
                documents = documents.where(
                    Document.status == (DocumentStatus.INDEXING if status == RecordingStatus.PROCESSING else status)
                )
            listed = list(session.scalars(documents.limit(limit)))
            readable = _readable_ids(session, Document.id, [d.id for d in listed], visible_documents_clause(actor))
            rows += [
                _row(
                    JobKind.INDEXING,
                    document,
                    owner=document.uploader,
                    state=indexing_state(document, now=now),
                    created_at=document.upload_date,
                    finished_at=document.indexed_at,
                    readable=document.id in readable,
                    now=now,
                )
                for document in listed
            ]
    rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    return rows


def job_queue_depths(*, actor: Actor) -> dict[str, int] | None:
    """Messages waiting per queue (ready plus delayed), read from Redis; None when Redis
    cannot be reached (logged). Raises PermissionDenied without view_jobs."""
    require(actor, "view_jobs")
    try:
        return queue_depths()
    except RedisError:
        log.warning("queue depths unavailable: Redis is not reachable", exc_info=True)
        return None


def retry_job(*, actor: Actor, kind: JobKind, job_id: int) -> None:
    """Retry a failed or stalled transcription or indexing job through the service that owns
    it (core.meetings.retry_recording, core.documents.retry_document), which commits and
    enqueues it.

    Requires view_jobs. An audit row (job.retry) is written by core.meetings for recordings
    and here for documents (core.documents does not audit retries). Raises what the owning
    service raises (NotFound; Conflict when the job is running or done).
    """
    require(actor, "view_jobs")
    if kind == JobKind.TRANSCRIPTION:
        retry_recording(actor=actor, job_id=job_id)
    elif kind == JobKind.INDEXING:
        retry_document(actor=actor, document_id=job_id)
        with session_scope() as session:
            record_audit(session, actor=actor, action="job.retry", target_type="indexing", target_id=job_id, details={})
    else:
        raise InvalidInput(f"Unknown job kind {kind!r}.")
