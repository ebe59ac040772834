"""Meeting recordings: upload, the transcription job, and what the Transcripts page reads.

Flow. `submit_recording` (the page) stores the upload, probes it with ffprobe, commits a
PENDING transcription_jobs row and enqueues "transcribe_recording" on the audio queue.
`transcribe_recording` (the worker) claims the row with one atomic UPDATE and runs the
stages normalising -> splitting -> transcribing -> minutes -> indexing -> COMPLETED,
writing stage, progress (0..1) and heartbeat_at as it goes.

Checkpoints. Each transcribed segment is upserted into transcription_segments on
(job_id, segment_index) the moment it is done; the segment plan is deterministic, so a
retry (automatic, from the UI, or after a worker was killed) transcribes only the missing
segments. Once the stitched transcript is stored, a retry goes straight to the minutes
(written once, skipped when present) and the indexing (idempotent per job and type).

Concurrency and the previous-segment prompt. Whisper is given the closing words of the
previous segment as `prompt`, which needs that segment finished first; fully parallel
requests cannot have it. The segments to send are therefore split into
settings.transcription_concurrency contiguous *lanes* run in parallel, each lane in order:
every segment but the first of each lane gets its predecessor's words (on a resume, also
the first of a lane whose predecessor is already stored), so N segments at concurrency C
take ceil(N / C) request times and lose the prompt at most C - 1 times, deterministically.
("Use it when it happens to be done" would make the transcript depend on timing; waves of
C would lose the prompt on every wave.)

Stitching. Piece times are made global by adding the segment's real cut position. A
piece belongs to the segment whose own stretch holds its midpoint, which drops the pieces
heard twice in the overlap; words still repeated across a boundary (a sentence cut in the
middle) are dropped from the later piece. Pieces with a high no_speech_prob (Whisper
inventing text on silence) are dropped. Speaker labels are kept as the model gives them.
"""

from __future__ import annotations

import difflib
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path, PurePath
from typing import IO, Any, TypeVar, cast

from dramatiq.middleware import TimeLimitExceeded
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor, require
from core.ai.base import AIProvider, Transcription, UsageContext
from core.meetings.audio import (
    CONTENT_TYPES,
    SEGMENT_SUFFIX,
    SegmentPlan,
    detect_silences,
    export_segment,
    extension_of,
    max_segment_seconds,
    normalise_audio,
    plan_segments,
    probe_audio,
    silence_threshold_db,
)
from core.meetings.recording_access import job_visible_clause, may_manage_job
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermanentError, PermissionDenied, QuorumError
from core.platform.models import VISIBILITIES, Document, TranscriptionJob, TranscriptionSegment, UsageRecord
from core.platform.queue import AUDIO_QUEUE, enqueue
from core.platform.storage import delete_stored, get_storage

log = logging.getLogger(__name__)

ACTOR_NAME = "transcribe_recording"
RECORDING_KIND = "recordings"
NO_SPEECH_THRESHOLD = 0.6  # pieces Whisper itself thinks are probably not speech
_PROMPT_WORDS = 60  # whisper-1 reads at most 224 prompt tokens; the closing sentences are what helps
_DEDUPE_WORDS = 40  # how far either side of a boundary repeated words are looked for
_MIN_REPEAT_WORDS = 2

# Progress (0..1) each stage spans. Transcribing dominates the wall time.
_STAGE_SPANS: dict[str, tuple[float, float]] = {
    "normalising": (0.0, 0.03),
    "splitting": (0.03, 0.05),
    "transcribing": (0.05, 0.85),
    "minutes": (0.85, 0.93),
    "indexing": (0.93, 1.0),
}
STAGE_LABELS: dict[str, str] = {
    "queued": "Waiting for a worker",
    "normalising": "Preparing the audio",
    "splitting": "Finding pauses to split at",
    "transcribing": "Transcribing",
    "minutes": "Writing the minutes",
    "indexing": "Indexing for search",
    "done": "Done",
}
ACTIVE_STATUSES = ("PENDING", "PROCESSING")
_SERVABLE_TYPES = frozenset(CONTENT_TYPES.values())

T = TypeVar("T")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class JobSummary:
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

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def stage_label(self) -> str:
        return STAGE_LABELS.get(self.stage, self.stage)

    def is_stale(self, now: datetime | None = None) -> bool:
        """True when it says PROCESSING but its worker has not been heard of for too long."""
        if self.status != "PROCESSING":
            return False
        last = self.heartbeat_at or self.started_at or self.created_at
        now = now or datetime.now(UTC)
        return (now - last).total_seconds() > get_settings().job_stale_after_seconds


@dataclass(frozen=True)
class TranscriptLine:
    """A timestamped line of the transcript; seconds from the start of the recording."""

    start: float
    end: float
    text: str
    speaker: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "speaker": self.speaker}


@dataclass(frozen=True)
class JobDetail:
    """One recording with its transcript. `transcript_complete` is False while segments
    are still coming in (lines then holds what is done so far)."""

    summary: JobSummary
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


@dataclass(frozen=True)
class StoredSegment:
    """A transcribed segment as checkpointed: its own stretch [start, end) and its pieces
    (dicts with global start, end, text, speaker, no_speech_prob)."""

    index: int
    start: float
    end: float
    text: str
    pieces: tuple[dict[str, Any], ...] = ()


# --------------------------------------------------------------------------- upload


def _declared_size(file: IO[bytes]) -> int | None:
    size = getattr(file, "size", None)  # Streamlit's UploadedFile knows its size
    if isinstance(size, int):
        return size
    try:
        position = file.tell()
        end = file.seek(0, 2)
        file.seek(position)
    except (AttributeError, OSError, ValueError):
        return None
    return int(end - position)


def _clean_filename(filename: str) -> str:
    name = PurePath(str(filename or "").replace("\\", "/")).name
    # Control and format characters (NUL, DEL, C1, the bidi overrides that make
    # "x\u202egpj.mp3" display as "x3pm.jpg") never reach a stored name.
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name:
        return "recording"
    if len(name) > 255:
        suffix = PurePath(name).suffix[:16]
        name = name[: 255 - len(suffix)] + suffix
    return name


def submit_recording(
    *, actor: Actor, file: IO[bytes], filename: str, visibility: str = "team", language: str | None = None
) -> JobSummary:
    """Store an uploaded or recorded meeting and queue its transcription.

    Needs transcribe_audio. The size limit (settings.max_audio_mb) is checked against the
    declared size before anything is read, and again while the stream is stored. The file
    is probed with ffprobe: corrupt, non-audio, video-only or unsupported files raise
    InvalidInput with a message for the uploader and leave nothing behind. Commits the
    PENDING job, then enqueues it. Raises PermissionDenied, InvalidInput, or QuorumError
    when the queue cannot be reached (the job is then FAILED and can be retried).
    """
    require(actor, "transcribe_audio")
    if visibility not in VISIBILITIES:
        raise InvalidInput("Visibility must be 'team' or 'private'.")
    name = _clean_filename(filename)
    extension = extension_of(name)
    settings = get_settings()
    declared = _declared_size(file)
    if declared is not None and declared > settings.max_audio_bytes:
        raise InvalidInput(
            f"{name} is {declared / 1024 / 1024:.0f} MB; recordings are limited to {settings.max_audio_mb} MB."
        )
    storage = get_storage()
    stored = storage.put(file, kind=RECORDING_KIND, suffix=f".{extension}", max_bytes=settings.max_audio_bytes)
    try:
        if stored.size_bytes == 0:
            raise InvalidInput(f"{name} is empty.")
        with storage.local_path(stored.key) as path:
            info = probe_audio(path, filename=name)
        with session_scope() as session:
            job = TranscriptionJob(
                owner_id=actor.id,
                filename=name,
                content_type=CONTENT_TYPES[extension],
                size_bytes=stored.size_bytes,
                storage_key=stored.key,
                sha256=stored.sha256,
                duration_seconds=info.duration_seconds,
                language=language or None,
                visibility=visibility,
                status="PENDING",
                stage="queued",
                progress=0.0,
            )
            session.add(job)
            session.flush()
            job_id = job.id
    except BaseException:
        storage.delete(stored.key)
        raise
    log.info("recording %s stored as job %s (%.0f s, %s)", name, job_id, info.duration_seconds, info.codec)
    _enqueue_or_fail(job_id)
    return get_job_summary(actor=actor, job_id=job_id)


def _enqueue_or_fail(job_id: int) -> None:
    """Send the job's message; when the queue is down, mark it FAILED so the UI offers a retry."""
    try:
        enqueue(ACTOR_NAME, job_id, queue_name=AUDIO_QUEUE)
    except Exception as error:
        log.exception("could not enqueue transcription job %s", job_id)
        message = "The recording was saved but could not be queued (the job queue is unreachable). Retry it."
        with session_scope() as session:
            session.execute(
                update(TranscriptionJob).where(TranscriptionJob.id == job_id).values(status="FAILED", error=message)
            )
        raise QuorumError(message) from error


# --------------------------------------------------------------------------- reading


def _ledger_cost() -> Any:
    return (
        select(func.coalesce(func.sum(UsageRecord.cost_usd), 0))
        .where(UsageRecord.transcription_job_id == TranscriptionJob.id)
        .correlate(TranscriptionJob)
        .scalar_subquery()
    )


def _summary(job: TranscriptionJob, cost: Decimal | float | None) -> JobSummary:
    owner = job.owner
    return JobSummary(
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
    )


def _readable_row(session: Session, actor: Actor, job_id: int) -> tuple[TranscriptionJob, Decimal]:
    row = session.execute(
        select(TranscriptionJob, _ledger_cost()).where(TranscriptionJob.id == job_id, job_visible_clause(actor))
    ).first()
    if row is None:
        raise NotFound(f"Recording {job_id} was not found.")
    return row[0], row[1]


def list_jobs(
    *, actor: Actor, statuses: Sequence[str] | None = None, mine_only: bool = False, limit: int = 200
) -> list[JobSummary]:
    """Recordings the actor may see, newest first. Read-only.

    Visible: the actor's own; team recordings with read_transcripts; every recording with
    delete_documents (admins), as core.meetings.recording_access defines.
    """
    statement = select(TranscriptionJob, _ledger_cost()).where(job_visible_clause(actor))
    if statuses:
        statement = statement.where(TranscriptionJob.status.in_(list(statuses)))
    if mine_only:
        statement = statement.where(TranscriptionJob.owner_id == actor.id)
    statement = statement.order_by(TranscriptionJob.created_at.desc(), TranscriptionJob.id.desc()).limit(limit)
    with session_scope() as session:
        return [_summary(job, cost) for job, cost in session.execute(statement).all()]


def get_job_summary(*, actor: Actor, job_id: int) -> JobSummary:
    """One recording's summary. Read-only. Raises NotFound when the actor may not see it."""
    with session_scope() as session:
        return _summary(*_readable_row(session, actor, job_id))


def _stored_segments(session: Session, job_id: int) -> list[StoredSegment]:
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
    return [StoredSegment(r[0], r[1], r[2], r[3], tuple(r[4] or ())) for r in rows]


def get_job(*, actor: Actor, job_id: int) -> JobDetail:
    """A recording with its timestamped transcript (or the part transcribed so far).

    Read-only. Raises NotFound when the actor may not see it.
    """
    with session_scope() as session:
        job, cost = _readable_row(session, actor, job_id)
        summary = _summary(job, cost)
        stored = _stored_segments(session, job_id)
        if job.transcript_segments is not None:
            lines = tuple(_line_from_json(item) for item in job.transcript_segments)
            complete = True
        else:
            lines = tuple(stitch_segments(stored, overlap_seconds=get_settings().transcription_overlap_seconds))
            complete = False
        return JobDetail(
            summary=summary,
            lines=lines,
            transcript_complete=complete,
            segments_done=len(stored),
            can_manage=may_manage_job(actor, job),
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


# --------------------------------------------------------------------------- retry and delete


def _may_delete(actor: Actor, job: TranscriptionJob) -> bool:
    return job.owner_id == actor.id or actor.can("delete_documents")


def _locked_readable(session: Session, actor: Actor, job_id: int) -> TranscriptionJob:
    job = session.scalar(
        select(TranscriptionJob)
        .where(TranscriptionJob.id == job_id, job_visible_clause(actor))
        .with_for_update(of=TranscriptionJob)
    )
    if job is None:
        raise NotFound(f"Recording {job_id} was not found.")
    return job


def retry_job(*, actor: Actor, job_id: int) -> JobSummary:
    """Queue a failed (or stalled) recording again; it resumes from its checkpoints.

    Allowed for the owner, admins (core.meetings.recording_access) and holders of view_jobs, on a FAILED
    job, a PROCESSING job whose worker has gone quiet, or a PENDING one (re-sending its
    message is harmless: the claim is idempotent). Resets the automatic-retry count.
    Commits with an audit row, then enqueues. Raises NotFound, PermissionDenied, Conflict.
    """
    with session_scope() as session:
        job = _locked_readable(session, actor, job_id)
        if not (may_manage_job(actor, job) or actor.can("view_jobs")):
            raise PermissionDenied("Only the owner of this recording or an admin can retry it.")
        summary = _summary(job, None)
        if job.status == "COMPLETED":
            raise Conflict("This recording is already transcribed. Regenerate its minutes instead.")
        if job.status == "PROCESSING" and not summary.is_stale():
            raise Conflict("This recording is being transcribed right now.")
        record_audit(
            session,
            actor=actor,
            action="job.retry",
            target_type="transcription",
            target_id=job_id,
            details={"previous_status": job.status, "previous_error": job.error, "attempts": job.attempts},
        )
        job.status, job.stage, job.error, job.attempts, job.heartbeat_at = "PENDING", "queued", None, 0, None
        session.flush()
    _enqueue_or_fail(job_id)
    return get_job_summary(actor=actor, job_id=job_id)


def delete_job(*, actor: Actor, job_id: int) -> None:
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


# --------------------------------------------------------------------------- stitching


_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[tuple[str, int]]:
    """(normalised word, index of the whitespace token it came from) for each word in `text`."""
    result = []
    for position, token in enumerate(text.split()):
        normalised = "".join(_WORD.findall(token.lower()))
        if normalised:
            result.append((normalised, position))
    return result


def drop_repeated_words(previous: str, text: str) -> str:
    """`text` without its opening words when they repeat the closing words of `previous`.

    The overlap makes both neighbours hear the words around a cut: the longest run of at
    least two words that ends `previous` (give or take one word the cut garbled) and
    starts `text` (likewise) is removed from `text`. Pure.
    """
    tail = _words(previous)[-_DEDUPE_WORDS:]
    head = _words(text)[:_DEDUPE_WORDS]
    if not tail or not head:
        return text
    matcher = difflib.SequenceMatcher(None, [w for w, _ in tail], [w for w, _ in head], autojunk=False)
    match = matcher.find_longest_match(0, len(tail), 0, len(head))
    if match.size < _MIN_REPEAT_WORDS or match.a + match.size < len(tail) - 1 or match.b > 1:
        return text
    tokens = text.split()
    last_repeated = head[match.b + match.size - 1][1]
    return " ".join(tokens[last_repeated + 1 :])


def stitch_segments(segments: Sequence[StoredSegment], *, overlap_seconds: float = 2.0) -> list[TranscriptLine]:
    """One timestamped transcript from checkpointed segments, in order. Pure.

    Keeps each piece in the segment whose own stretch holds its midpoint (the first and
    last segments own everything before and after them), drops pieces with
    no_speech_prob over NO_SPEECH_THRESHOLD, and removes words repeated across a boundary
    from a segment's first piece when it starts within `overlap_seconds` of the cut.
    """
    ordered = sorted(segments, key=lambda s: s.index)
    lines: list[TranscriptLine] = []
    for position, segment in enumerate(ordered):
        low = segment.start if position > 0 else float("-inf")
        high = segment.end if position < len(ordered) - 1 else float("inf")
        at_boundary = position > 0
        for piece in segment.pieces:
            text = str(piece.get("text") or "").strip()
            no_speech = piece.get("no_speech_prob")
            if not text or (no_speech is not None and float(no_speech) > NO_SPEECH_THRESHOLD):
                continue
            start, end = float(piece.get("start") or 0.0), float(piece.get("end") or 0.0)
            if not low <= (start + end) / 2 < high:
                continue
            if at_boundary and lines and start < segment.start + overlap_seconds:
                text = drop_repeated_words(lines[-1].text, text).strip()
                if not text:
                    continue
            at_boundary = False
            if lines and start < lines[-1].start:
                start = lines[-1].start
            lines.append(TranscriptLine(start=start, end=max(end, start), text=text, speaker=piece.get("speaker")))
    return lines


def transcript_text(lines: Sequence[TranscriptLine]) -> str:
    """Plain text of a transcript: one line per piece, "Speaker: " in front when known."""
    return "\n".join(f"{line.speaker}: {line.text}" if line.speaker else line.text for line in lines)


def closing_words(text: str | None, limit: int = _PROMPT_WORDS) -> str | None:
    """The last `limit` words of `text`, as the prompt for the segment that follows."""
    words = (text or "").split()
    return " ".join(words[-limit:]) if words else None


def split_into_lanes(items: Sequence[T], count: int) -> list[list[T]]:
    """`items` in at most `count` contiguous runs whose lengths differ by at most one."""
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    lanes, position = [], 0
    for lane in range(count):
        length = size + (1 if lane < extra else 0)
        lanes.append(list(items[position : position + length]))
        position += length
    return [lane for lane in lanes if lane]


# --------------------------------------------------------------------------- the worker


class _ClaimLost(Exception):
    """The job was deleted, or another worker claimed it after this one went quiet."""


@dataclass
class _Run:
    """One claimed attempt at a job. (attempt, claimed_at) fences every write: a worker whose
    job was reclaimed by another (after it went quiet) can no longer change it. claimed_at
    is part of the fence because a retry from the UI restarts the attempt count."""

    job_id: int
    attempt: int
    claimed_at: datetime
    owner_id: int | None
    storage_key: str
    language: str | None
    has_transcript: bool
    stage: str = "queued"
    stop: threading.Event = field(default_factory=threading.Event)


def _claim(job_id: int) -> _Run | None:
    """Atomically take a PENDING job, or a PROCESSING one whose worker went quiet."""
    settings = get_settings()
    last_sign = func.coalesce(TranscriptionJob.heartbeat_at, TranscriptionJob.started_at, TranscriptionJob.created_at)
    with session_scope() as session:
        row = session.execute(
            update(TranscriptionJob)
            .where(
                TranscriptionJob.id == job_id,
                or_(
                    TranscriptionJob.status == "PENDING",
                    and_(
                        TranscriptionJob.status == "PROCESSING",
                        TranscriptionJob.attempts < settings.job_max_attempts,
                        last_sign < func.now() - timedelta(seconds=settings.job_stale_after_seconds),
                    ),
                ),
            )
            .values(
                status="PROCESSING",
                attempts=TranscriptionJob.attempts + 1,
                started_at=func.now(),
                heartbeat_at=func.now(),
                error=None,
            )
            .returning(
                TranscriptionJob.attempts,
                TranscriptionJob.started_at,
                TranscriptionJob.owner_id,
                TranscriptionJob.storage_key,
                TranscriptionJob.language,
                TranscriptionJob.transcript_segments.is_not(None),
            )
            .execution_options(synchronize_session=False)
        ).first()
    if row is None:
        return None
    attempt, claimed_at, owner_id, storage_key, language, has_transcript = row
    return _Run(
        job_id=job_id,
        attempt=attempt,
        claimed_at=cast(datetime, claimed_at),  # set by this very UPDATE
        owner_id=owner_id,
        storage_key=storage_key,
        language=language,
        has_transcript=bool(has_transcript),
    )


def _fenced(run: _Run) -> Any:
    return update(TranscriptionJob).where(
        TranscriptionJob.id == run.job_id,
        TranscriptionJob.attempts == run.attempt,
        TranscriptionJob.started_at == run.claimed_at,
        TranscriptionJob.status == "PROCESSING",
    )


def _write_job(session: Session, run: _Run, **values: Any) -> None:
    """Update the claimed job (heartbeat included). Raises _ClaimLost if it is no longer ours."""
    result = session.execute(_fenced(run).values(heartbeat_at=func.now(), **values))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise _ClaimLost(f"job {run.job_id} attempt {run.attempt} is no longer this worker's")


def _enter_stage(run: _Run, stage: str, **values: Any) -> None:
    if run.stop.is_set():
        raise _ClaimLost(f"job {run.job_id} stopped")
    run.stage = stage
    with session_scope() as session:
        _write_job(
            session,
            run,
            stage=stage,
            progress=func.greatest(TranscriptionJob.progress, _STAGE_SPANS[stage][0]),
            **values,
        )
    log.info("job %s: %s", run.job_id, stage)


def _progress(stage: str, fraction: float) -> float:
    low, high = _STAGE_SPANS[stage]
    return low + (high - low) * min(max(fraction, 0.0), 1.0)


class _Heartbeat:
    """Stamps heartbeat_at every settings.job_heartbeat_seconds while a job runs, so a long
    request is not mistaken for a dead worker; sets run.stop when the claim is lost."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run.job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = get_settings().job_heartbeat_seconds
        while not self._done.wait(interval):
            try:
                with session_scope() as session:
                    _write_job(session, self._run)
            except _ClaimLost:
                log.warning("job %s: claim lost; stopping", self._run.job_id)
                self._run.stop.set()
                return
            except SQLAlchemyError:
                log.exception("job %s: heartbeat failed; will try again", self._run.job_id)


def transcribe_recording(job_id: int) -> None:
    """Worker entry point: transcribe a recording, write its minutes, index both, COMPLETED.

    Idempotent: a redelivered message for a job that is done, running elsewhere, deleted
    or FAILED returns without doing anything; a resumed job redoes no finished segment.
    On failure the job records a readable error: PermanentError (and InvalidInput, NotFound,
    a time limit, or the last of settings.job_max_attempts attempts) -> FAILED and PermanentError
    raised, so Dramatiq does not retry; anything else -> back to PENDING and re-raised, so
    Dramatiq retries it with backoff.
    """
    run = _claim(job_id)
    if run is None:
        log.info("job %s: nothing to do (done, running elsewhere, failed or deleted)", job_id)
        return
    log.info("job %s: claimed (attempt %s)", job_id, run.attempt)
    try:
        with _Heartbeat(run):
            _process(run)
    except _ClaimLost as lost:
        log.warning("job %s: %s", job_id, lost)
    except BaseException as error:
        replacement = _record_failure(run, error)
        if replacement is None:
            raise
        raise replacement from error


def _process(run: _Run) -> None:
    from core.ai import get_provider

    provider = get_provider()
    if not run.has_transcript:
        with tempfile.TemporaryDirectory(prefix=f"quorum-job-{run.job_id}-") as work:
            _transcribe(run, provider, Path(work))
    _enter_stage(run, "minutes")
    from core.meetings.minutes import write_minutes_for_job

    write_minutes_for_job(run.job_id)
    _enter_stage(run, "indexing")
    _index_job_documents(run.job_id)
    _complete(run)


def _transcribe(run: _Run, provider: AIProvider, work: Path) -> None:
    settings = get_settings()
    _enter_stage(run, "normalising")
    with get_storage().local_path(run.storage_key) as source:
        audio = normalise_audio(source, work / "normalised.wav")
    _enter_stage(run, "splitting", duration_seconds=round(audio.duration_seconds, 3))
    silences = detect_silences(audio.path, threshold_db=silence_threshold_db(audio), duration=audio.duration_seconds)
    model = None if settings.offline else settings.transcription_model  # the duration caps are per API model
    plans = plan_segments(
        duration=audio.duration_seconds,
        silences=silences,
        max_seconds=max_segment_seconds(settings, model),
        overlap_seconds=settings.transcription_overlap_seconds,
    )
    log.info("job %s: %.0f s in %s segments", run.job_id, audio.duration_seconds, len(plans))
    _enter_stage(run, "transcribing", provider=provider.name)
    _transcribe_segments(run, provider, audio.path, plans, work)
    with session_scope() as session:
        stored = _stored_segments(session, run.job_id)
        lines = stitch_segments(stored, overlap_seconds=settings.transcription_overlap_seconds)
        _write_job(
            session,
            run,
            transcript_segments=[line.to_json() for line in lines],
            transcript_text=transcript_text(lines),
            progress=_STAGE_SPANS["transcribing"][1],
        )


def _matches_plan(stored: StoredSegment, plans: Sequence[SegmentPlan]) -> bool:
    if stored.index >= len(plans):
        return False
    plan = plans[stored.index]
    return abs(stored.start - plan.start) < 0.01 and abs(stored.end - plan.end) < 0.01


def _transcribe_segments(run: _Run, provider: AIProvider, wav: Path, plans: Sequence[SegmentPlan], work: Path) -> None:
    """Transcribe every segment not yet checkpointed, in concurrent lanes; checkpoint each."""
    settings = get_settings()
    with session_scope() as session:
        done = {s.index: s for s in _stored_segments(session, run.job_id)}
        if any(not _matches_plan(s, plans) for s in done.values()):
            # Settings (segment length, model) changed since they were made: start over.
            log.warning("job %s: stored segments do not match the plan; transcribing again", run.job_id)
            session.execute(delete(TranscriptionSegment).where(TranscriptionSegment.job_id == run.job_id))
            done = {}
    total = sum(p.end - p.start for p in plans) or 1.0
    finished = [sum(p.end - p.start for p in plans if p.index in done)]
    lock = threading.Lock()
    usage = UsageContext(purpose="transcription", user_id=run.owner_id, transcription_job_id=run.job_id)
    max_bytes = int(settings.transcription_max_request_mb * 1024 * 1024)

    def checkpoint(plan: SegmentPlan, result: Transcription | None) -> None:
        with lock:
            finished[0] += plan.end - plan.start
            progress = _progress("transcribing", finished[0] / total)
        pieces = _global_pieces(plan, result) if result is not None else []
        values: dict[str, Any] = {"progress": func.greatest(TranscriptionJob.progress, progress)}
        if result is not None:
            values["model"] = result.model
            values["language"] = func.coalesce(TranscriptionJob.language, (result.language or "")[:16] or None)
        row = pg_insert(TranscriptionSegment).values(
            job_id=run.job_id,
            segment_index=plan.index,
            start_seconds=plan.start,
            end_seconds=plan.end,
            text=result.text.strip() if result is not None else "",
            pieces=pieces,
        )
        upsert = row.on_conflict_do_update(
            constraint="uq_transcription_segments_job_index",
            set_={name: row.excluded[name] for name in ("start_seconds", "end_seconds", "text", "pieces")},
        )
        with session_scope() as session:
            _write_job(session, run, **values)
            session.execute(upsert)

    def cut(plan: SegmentPlan) -> Path:
        return export_segment(wav, plan, work / f"segment-{plan.index:05d}{SEGMENT_SUFFIX}", max_bytes=max_bytes)

    def transcribe_lane(lane: list[SegmentPlan]) -> None:
        """The lane's segments in order, each cut by ffmpeg while the previous one is sent."""
        previous = done.get(lane[0].index - 1)
        prompt = closing_words(previous.text) if previous is not None else None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"job{run.job_id}-cut") as cutter:
            upcoming = cutter.submit(cut, lane[0])
            for position, plan in enumerate(lane):
                path = upcoming.result()
                if run.stop.is_set():
                    return
                if position + 1 < len(lane):
                    upcoming = cutter.submit(cut, lane[position + 1])
                started = time.perf_counter()
                try:
                    result = provider.transcribe(path, usage=usage, language=run.language, prompt=prompt)
                finally:
                    path.unlink(missing_ok=True)
                log.debug("job %s: segment %s transcribed in %.1f s", run.job_id, plan.index,
                          time.perf_counter() - started)  # fmt: skip
                checkpoint(plan, result)
                prompt = closing_words(result.text)

    missing = [p for p in plans if p.index not in done]
    for plan in (p for p in missing if p.is_silent):  # nothing to send: Whisper would invent text
        checkpoint(plan, None)
    lanes = split_into_lanes([p for p in missing if not p.is_silent], settings.transcription_concurrency)
    if missing:
        log.info("job %s: %s segments to transcribe in %s lanes", run.job_id, len(missing), len(lanes))
    _run_lanes(run, lanes, transcribe_lane)


def _run_lanes(run: _Run, lanes: list[list[SegmentPlan]], work: Callable[[list[SegmentPlan]], None]) -> None:
    """Run each lane in its own thread; the first error stops the others after their
    current request (its segments stay checkpointed) and is raised."""
    if not lanes:
        return
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix=f"job{run.job_id}-lane") as pool:
        try:
            futures = [pool.submit(work, lane) for lane in lanes]
            for future in as_completed(futures):
                error = future.exception()
                if error is not None:
                    run.stop.set()
                    errors.append(error)
        except BaseException:
            run.stop.set()  # a time limit or shutdown arrived here: let the lanes wind down
            raise
    real = [e for e in errors if not isinstance(e, _ClaimLost)]
    if real:
        raise real[0]
    if errors or run.stop.is_set():
        raise _ClaimLost(f"job {run.job_id} stopped while transcribing")


def _global_pieces(plan: SegmentPlan, result: Transcription) -> list[dict[str, Any]]:
    """The result's pieces on the recording's clock (the segment's real cut position added)."""
    pieces = list(result.pieces)
    if not pieces and result.text.strip():
        # Models without timestamps (gpt-4o transcribe) give text only: it spans the segment.
        return [
            {"start": plan.start, "end": plan.end, "text": result.text.strip(), "speaker": None, "no_speech_prob": None}
        ]
    items = []
    for piece in pieces:
        start = min(plan.audio_start + max(piece.start, 0.0), plan.audio_end)
        end = min(plan.audio_start + max(piece.end, piece.start, 0.0), plan.audio_end)
        items.append(
            {
                "start": round(start, 3),
                "end": round(max(end, start), 3),
                "text": piece.text.strip(),
                "speaker": piece.speaker,
                "no_speech_prob": piece.no_speech_prob,
            }
        )
    return items


def _index_job_documents(job_id: int) -> None:
    """Index the transcript and the minutes as full_transcript / meeting_minutes documents,
    in this worker (the job is COMPLETED only once both are searchable). Idempotent."""
    from core.documents.indexing import index_text_document  # imported late: documents imports the embedding stack

    for document_type in ("full_transcript", "meeting_minutes"):
        index_text_document(job_id=job_id, document_type=document_type, index_now=True)


def _complete(run: _Run) -> None:
    with session_scope() as session:
        totals = session.execute(
            select(
                func.coalesce(func.sum(UsageRecord.cost_usd), 0),
                func.coalesce(func.sum(UsageRecord.input_tokens), 0),
                func.coalesce(func.sum(UsageRecord.output_tokens), 0),
            ).where(UsageRecord.transcription_job_id == run.job_id)
        ).one()
        _write_job(
            session,
            run,
            status="COMPLETED",
            stage="done",
            progress=1.0,
            error=None,
            completed_at=func.now(),
            cost_usd=totals[0],
            input_tokens=int(totals[1]),
            output_tokens=int(totals[2]),
        )
    log.info("job %s: completed", run.job_id)


def _describe(run: _Run, error: BaseException) -> str:
    if isinstance(error, TimeLimitExceeded):
        hours = get_settings().job_time_limit_seconds / 3600
        return f"Transcription took longer than the time limit of {hours:g} hours and was stopped."
    if isinstance(error, QuorumError):
        return str(error)
    stage = STAGE_LABELS.get(run.stage, run.stage).lower()
    detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"Something went wrong while {stage}: {type(error).__name__}{': ' + detail if detail else ''}."


def _record_failure(run: _Run, error: BaseException) -> PermanentError | None:
    """Record the failure on the job. Returns None when `error` should be re-raised as it
    is (Dramatiq retries it, or it is a PermanentError already), else the PermanentError
    that stops Dramatiq from retrying."""
    settings = get_settings()
    message = _describe(run, error)
    # NotFound: the stored file or the job itself is gone; waiting will not bring it back.
    permanent = isinstance(error, PermanentError | InvalidInput | NotFound | TimeLimitExceeded)
    exhausted = run.attempt >= settings.job_max_attempts
    retry = not permanent and not exhausted
    if retry:
        message += f" Retrying automatically (attempt {run.attempt} of {settings.job_max_attempts})."
    log.warning("job %s failed at %s (attempt %s): %s", run.job_id, run.stage, run.attempt, message, exc_info=error)
    try:
        with session_scope() as session:
            session.execute(
                _fenced(run).values(status="PENDING" if retry else "FAILED", error=message, heartbeat_at=None)
            )
    except SQLAlchemyError:
        log.exception("job %s: could not record its failure", run.job_id)
    if retry or isinstance(error, PermanentError):
        return None
    return PermanentError(message)
