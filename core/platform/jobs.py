"""One lifecycle for every background job: document indexing and recording transcription.

A job is a row (documents, transcription_jobs) that moves PENDING -> running (INDEXING or
PROCESSING) -> COMPLETED or FAILED. Everything about that movement is decided here, once:

- Claim. `claim` takes the row with one atomic UPDATE: a PENDING row, or a running row
  whose worker went quiet (stale) and that has attempts left. Each claim increments
  `attempts` and stamps `started_at`; (attempts, started_at) fence every later write of the
  run (`write`), so a run that lost its claim (killed, timed out, retried from the UI,
  deleted) can change nothing more and gets ClaimLost instead.
- Heartbeat. `Heartbeat` stamps heartbeat_at every settings.job_heartbeat_seconds while the
  run works, so a long request is not mistaken for a dead worker.
- Stale. One rule, in SQL (`stale_clause`) and in Python (`is_stale`): a running row whose
  last sign of life (heartbeat_at, else started_at, else its creation) is older than
  settings.job_stale_after_seconds. The stale-job watch requeues such rows; a retry may
  take them over.
- Failure. `record_failure` writes a readable error (`failure_message`) and decides: a
  permanent error (bad input, a refusal retrying cannot fix, a time limit) or the last of
  settings.job_max_attempts attempts -> FAILED; anything else -> back to PENDING for
  Dramatiq's retry.
- Retry from the UI. `retryable` (FAILED, PENDING, or stale) and `reset_for_retry`.
- Unreachable queue. `send` enqueues after the commit; when Redis cannot be reached the row
  stays PENDING with NOT_QUEUED as its error, the UI offers Retry, and the stale-job watch
  sends it by itself once the queue answers again.
- What people see. `JobState` carries status, stage, its label, progress and staleness, so
  pages, the admin job monitor and Home never re-derive them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from dramatiq.middleware import TimeLimitExceeded
from sqlalchemy import ColumnElement, Update, and_, func, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import EmbeddingSpaceMismatch, InvalidInput, NotFound, PermanentError, QuorumError
from core.platform.models import Document, TranscriptionJob
from core.platform.queue import AUDIO_QUEUE, DEFAULT_QUEUE, enqueue
from core.platform.statuses import DocumentStatus, RecordingStage, RecordingStatus

log = logging.getLogger(__name__)

NOT_QUEUED = (
    "Saved, but the job queue could not be reached, so it is not queued yet. It is sent by itself "
    "once the queue is back; Retry sends it now."
)
# Retrying cannot fix these: bad or missing input, a provider's refusal, a changed embedding
# model, a run that hit the time limit (it would hit it again).
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentError,
    InvalidInput,
    NotFound,
    EmbeddingSpaceMismatch,
    TimeLimitExceeded,
)


class JobKind(StrEnum):
    TRANSCRIPTION = "transcription"
    INDEXING = "indexing"


@dataclass(frozen=True)
class JobTable:
    """How one kind of job is stored and sent: its table, its running status, its actor."""

    kind: JobKind
    model: type[Document] | type[TranscriptionJob]
    running: str  # the status of a claimed row
    created: InstrumentedAttribute[datetime]  # the last sign of life before any claim
    actor_name: str
    queue_name: str
    pending_values: Mapping[str, Any] = field(default_factory=dict)  # also written when back to PENDING
    verb: str = "working"  # what a failure message says it was doing
    title: str = "The job"  # what a failure message calls it

    @property
    def pending(self) -> str:
        return RecordingStatus.PENDING  # the same word in both tables


RECORDINGS = JobTable(
    kind=JobKind.TRANSCRIPTION,
    model=TranscriptionJob,
    running=RecordingStatus.PROCESSING,
    created=TranscriptionJob.created_at,
    actor_name="transcribe_recording",
    queue_name=AUDIO_QUEUE,
    pending_values={"stage": RecordingStage.QUEUED},
    verb="transcribing",
    title="Transcription",
)
DOCUMENTS = JobTable(
    kind=JobKind.INDEXING,
    model=Document,
    running=DocumentStatus.INDEXING,
    created=Document.upload_date,
    actor_name="index_document",
    queue_name=DEFAULT_QUEUE,
    verb="indexing",
    title="Indexing",
)
TABLES = {table.kind: table for table in (RECORDINGS, DOCUMENTS)}


# ---------------------------------------------------------------------------- what people see

# PENDING, COMPLETED and FAILED are the same words in both tables; only "running" differs.
_WAITING_OR_RUNNING = (RecordingStatus.PENDING, RecordingStatus.PROCESSING, DocumentStatus.INDEXING)


@dataclass(frozen=True)
class JobState:
    """A job's state as every page shows it (computed in core, never in a page)."""

    status: str  # the row's own status (PENDING, PROCESSING or INDEXING, COMPLETED, FAILED)
    stage: str  # machine name of the step
    stage_label: str  # the step in words
    progress: float  # 0..1; 1 when COMPLETED
    stale: bool  # running, but its worker has not been heard of for too long
    error: str | None = None

    @property
    def active(self) -> bool:
        """Waiting or running with a live worker: pages keep polling while this is true."""
        return self.status in _WAITING_OR_RUNNING and not self.stale

    @property
    def retryable(self) -> bool:
        """Retry may send it again: failed, never taken, or abandoned by its worker."""
        return self.status in (RecordingStatus.FAILED, RecordingStatus.PENDING) or self.stale

    @property
    def needs_attention(self) -> bool:
        """Failed, abandoned, or waiting with a problem noted (not queued, retrying)."""
        return (
            self.status == RecordingStatus.FAILED
            or self.stale
            or (self.status == RecordingStatus.PENDING and self.error is not None)
        )

    @property
    def display_status(self) -> str:
        """ "Completed", "Failed", "Processing (stalled)", ..."""
        text = self.status.title()
        return f"{text} (stalled)" if self.stale else text


def stale_after() -> timedelta:
    return timedelta(seconds=get_settings().job_stale_after_seconds)


def is_stale(
    table: JobTable,
    *,
    status: str,
    heartbeat_at: datetime | None,
    started_at: datetime | None,
    created_at: datetime,
    now: datetime | None = None,
) -> bool:
    """The stale rule in Python; `stale_clause` is the same rule in SQL."""
    if status != table.running:
        return False
    last_sign = heartbeat_at or started_at or created_at
    return (now or datetime.now(UTC)) - last_sign > stale_after()


def last_sign_of_life(table: JobTable) -> ColumnElement[datetime]:
    model = table.model
    return func.coalesce(model.heartbeat_at, model.started_at, table.created)


def stale_clause(table: JobTable) -> ColumnElement[bool]:
    """SQL condition over table.model: running rows whose worker went quiet (see is_stale)."""
    return and_(table.model.status == table.running, last_sign_of_life(table) < func.now() - stale_after())


def row_is_stale(table: JobTable, row: Document | TranscriptionJob, now: datetime | None = None) -> bool:
    return is_stale(
        table,
        status=row.status,
        heartbeat_at=row.heartbeat_at,
        started_at=row.started_at,
        created_at=getattr(row, table.created.key),
        now=now,
    )


# ---------------------------------------------------------------------------- a worker's run


class ClaimLost(Exception):
    """This run no longer owns its row: deleted, retried, or taken over after it went quiet."""


@dataclass
class Claim:
    """One claimed attempt at a job. (attempt, claimed_at) fence every write of the run;
    claimed_at is part of the fence because a retry from the UI restarts the attempt count."""

    table: JobTable
    id: int
    attempt: int
    claimed_at: datetime
    row: Any  # the columns asked for in claim(returning=...), by name
    stage: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    # Set by the write that moves the row out of running (completed, failed, handed back):
    # from then on a heartbeat that finds the row no longer running sees this run's own end.
    ending: threading.Event = field(default_factory=threading.Event)


def claim(
    table: JobTable, job_id: int, *, returning: Sequence[Any] = (), values: Mapping[str, Any] | None = None
) -> Claim | None:
    """Atomically take a PENDING row, or a stale running one with attempts left; None when
    there is nothing to do (done, failed, running elsewhere, deleted). Commits.

    `values` are written with the claim; `returning` columns come back in Claim.row.
    """
    model = table.model
    settings = get_settings()
    with session_scope() as session:
        row = session.execute(
            update(model)
            .where(
                model.id == job_id,
                or_(
                    model.status == table.pending,
                    and_(stale_clause(table), model.attempts < settings.job_max_attempts),
                ),
            )
            .values(
                status=table.running,
                attempts=model.attempts + 1,
                started_at=func.now(),
                heartbeat_at=func.now(),
                error=None,
                **(values or {}),
            )
            .returning(model.attempts, model.started_at, *returning)
            .execution_options(synchronize_session=False)
        ).first()
    if row is None:
        log.info("%s %s: nothing to do (done, failed, running elsewhere or deleted)", table.kind, job_id)
        return None
    log.info("%s %s: claimed (attempt %s)", table.kind, job_id, row.attempts)
    return Claim(table, job_id, row.attempts, cast(datetime, row.started_at), row)


def fenced(claim_: Claim) -> Update:
    """UPDATE of the claimed row that matches only while this run still owns it."""
    model = claim_.table.model
    return update(model).where(
        model.id == claim_.id,
        model.attempts == claim_.attempt,
        model.started_at == claim_.claimed_at,
        model.status == claim_.table.running,
    )


def write(session: Session, claim_: Claim, **values: Any) -> None:
    """Update the claimed row (and its heartbeat, unless given). Does not commit.
    Raises ClaimLost when the row is no longer this run's."""
    values.setdefault("heartbeat_at", func.now())
    if values.get("status", claim_.table.running) != claim_.table.running:
        claim_.ending.set()
    result = session.execute(fenced(claim_).values(**values))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise ClaimLost(f"{claim_.table.kind} {claim_.id} attempt {claim_.attempt} is no longer this run's")


class Heartbeat:
    """Stamps heartbeat_at every settings.job_heartbeat_seconds while a run works, so a long
    request is not mistaken for a dead worker; sets claim.stop when the claim is lost.

    It beats until the run's last write (the one that moves the row out of running) begins.
    That write can wait a while holding the row (a document's generation swap queues on the
    term statistics' totals row behind other swaps): a beat already waiting for the row then
    finds it ended by this very run, which is not a lost claim."""

    def __init__(self, claim_: Claim) -> None:
        self._claim = claim_
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{claim_.id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = get_settings().job_heartbeat_seconds
        while not self._done.wait(interval) and not self._claim.ending.is_set():
            try:
                with session_scope() as session:
                    write(session, self._claim)
            except ClaimLost:
                if self._claim.ending.is_set():
                    return  # the run's own last write moved the row on while this beat waited for it
                log.warning("%s %s: claim lost; stopping", self._claim.table.kind, self._claim.id)
                self._claim.stop.set()
                return
            except SQLAlchemyError:
                log.exception("%s %s: heartbeat failed; will try again", self._claim.table.kind, self._claim.id)


def failure_message(table: JobTable, error: BaseException, *, doing: str | None = None) -> str:
    """A failure in words for the job's owner: a QuorumError's own message, the time limit,
    or what went wrong while `doing` (default table.verb) with the error's first line."""
    if isinstance(error, TimeLimitExceeded):
        hours = get_settings().job_time_limit_seconds / 3600
        return f"{table.title} took longer than the time limit of {hours:g} hours and was stopped."
    if isinstance(error, QuorumError):
        return str(error)
    detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"Something went wrong while {doing or table.verb}: {type(error).__name__}{': ' + detail if detail else ''}."


def record_failure(
    claim_: Claim,
    error: BaseException,
    *,
    doing: str | None = None,
    when_failed: Callable[[Session], None] | None = None,
) -> bool:
    """Write the failure on the claimed row. Returns True when it goes back to PENDING for
    another attempt, False when it is now FAILED (a permanent error, or the last of
    settings.job_max_attempts attempts). `when_failed(session)` runs in the same transaction
    as the FAILED write (cleanup). Commits; a lost claim or an unreachable database is
    logged, never raised.
    """
    settings = get_settings()
    table = claim_.table
    message = failure_message(table, error, doing=doing)
    retry = not isinstance(error, PERMANENT_ERRORS) and claim_.attempt < settings.job_max_attempts
    if retry:
        message += f" Retrying automatically (attempt {claim_.attempt} of {settings.job_max_attempts})."
    log.warning("%s %s failed (attempt %s): %s", table.kind, claim_.id, claim_.attempt, message, exc_info=error)
    values: dict[str, Any] = {
        "status": table.pending if retry else RecordingStatus.FAILED,
        "error": message,
        "heartbeat_at": None,
    }
    if retry:
        values.update(table.pending_values)
    try:
        with session_scope() as session:
            write(session, claim_, **values)
            if not retry and when_failed is not None:
                when_failed(session)
    except ClaimLost:
        log.info("%s %s: claim lost before its failure was recorded", table.kind, claim_.id)
    except SQLAlchemyError:
        log.exception("%s %s: could not record its failure", table.kind, claim_.id)
    return retry


# ---------------------------------------------------------------------------- sending and retrying


def send(table: JobTable, job_id: int) -> bool:
    """Enqueue a committed PENDING row. When the queue cannot be reached the row stays PENDING
    with NOT_QUEUED as its error (the stale-job watch sends it once the queue is back) and
    False is returned; never raises for the queue."""
    try:
        enqueue(table.actor_name, job_id, queue_name=table.queue_name)
    except Exception:
        log.exception("could not enqueue %s %s", table.kind, job_id)
        model = table.model
        with session_scope() as session:
            session.execute(
                update(model).where(model.id == job_id, model.status == table.pending).values(error=NOT_QUEUED)
            )
        return False
    return True


def reset_for_retry(table: JobTable, row: Document | TranscriptionJob) -> None:
    """Put a loaded (locked) row back to PENDING with a fresh attempt count. Does not commit;
    send() after the commit."""
    row.status = table.pending
    row.error = None
    row.attempts = 0
    row.heartbeat_at = None
    for name, value in table.pending_values.items():
        setattr(row, name, value)
