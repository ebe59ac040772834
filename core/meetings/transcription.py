"""The transcription job: normalise, split, transcribe, minutes, index, COMPLETED.

Flow. `submit_recording` (core.meetings.recording_upload) stores the upload, probes it with
ffprobe, commits a PENDING transcription_jobs row and enqueues "transcribe_recording" on the
audio queue. `transcribe_recording` (the worker) claims the row with one atomic UPDATE and
runs the stages normalising -> splitting -> transcribing -> minutes -> indexing -> COMPLETED,
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

Stitching: core.meetings.stitching.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from dramatiq.middleware import TimeLimitExceeded
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.ai.base import AIProvider, Transcription, UsageContext
from core.meetings.audio import (
    SEGMENT_SUFFIX,
    SegmentPlan,
    check_free_disk,
    detect_silences,
    export_segment,
    max_segment_seconds,
    normalise_audio,
    plan_segments,
    silence_threshold_db,
)
from core.meetings.recordings import STAGE_LABELS, stored_segments
from core.meetings.stitching import StoredSegment, closing_words, split_into_lanes, stitch_segments, transcript_text
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound, PermanentError, QuorumError
from core.platform.models import TranscriptionJob, TranscriptionSegment, UsageRecord
from core.platform.storage import get_storage

log = logging.getLogger(__name__)

# Progress (0..1) each stage spans. Transcribing dominates the wall time.
_STAGE_SPANS: dict[str, tuple[float, float]] = {
    "normalising": (0.0, 0.03),
    "splitting": (0.03, 0.05),
    "transcribing": (0.05, 0.85),
    "minutes": (0.85, 0.93),
    "indexing": (0.93, 1.0),
}


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
    duration_seconds: float | None = None  # as probed at upload
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
                TranscriptionJob.duration_seconds,
            )
            .execution_options(synchronize_session=False)
        ).first()
    if row is None:
        return None
    attempt, claimed_at, owner_id, storage_key, language, has_transcript, duration_seconds = row
    return _Run(
        job_id=job_id,
        attempt=attempt,
        claimed_at=cast(datetime, claimed_at),  # set by this very UPDATE
        owner_id=owner_id,
        storage_key=storage_key,
        language=language,
        has_transcript=bool(has_transcript),
        duration_seconds=duration_seconds,
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
    from core.meetings.minutes import write_minutes_for_recording

    write_minutes_for_recording(run.job_id)
    _enter_stage(run, "indexing")
    from core.documents import index_recording_documents  # late: documents imports the embedding stack

    index_recording_documents(run.job_id)
    _complete(run)


def _transcribe(run: _Run, provider: AIProvider, work: Path) -> None:
    settings = get_settings()
    _enter_stage(run, "normalising")
    with get_storage().local_path(run.storage_key) as source:
        longest = settings.max_recording_seconds
        check_free_disk(work, seconds=min(run.duration_seconds or longest, longest))
        audio = normalise_audio(source, work / "normalised.wav", max_seconds=longest)
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
        stored = stored_segments(session, run.job_id)
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
        done = {s.index: s for s in stored_segments(session, run.job_id)}
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
