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
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

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
from core.platform.errors import PermanentError
from core.platform.jobs import RECORDINGS, Claim, ClaimLost, Heartbeat, claim, failure_message, record_failure, write
from core.platform.models import TranscriptionJob, TranscriptionSegment, UsageRecord
from core.platform.statuses import RecordingStage, RecordingStatus
from core.platform.storage import get_storage

log = logging.getLogger(__name__)

# Progress (0..1) each stage spans. Transcribing dominates the wall time.
_STAGE_SPANS: dict[str, tuple[float, float]] = {
    RecordingStage.NORMALISING: (0.0, 0.03),
    RecordingStage.SPLITTING: (0.03, 0.05),
    RecordingStage.TRANSCRIBING: (0.05, 0.85),
    RecordingStage.MINUTES: (0.85, 0.93),
    RecordingStage.INDEXING: (0.93, 1.0),
}


def _claim(job_id: int) -> Claim | None:
    return claim(
        RECORDINGS,
        job_id,
        returning=(
            TranscriptionJob.owner_id,
            TranscriptionJob.storage_key,
            TranscriptionJob.language,
            TranscriptionJob.transcript_segments.is_not(None).label("has_transcript"),
            TranscriptionJob.duration_seconds,  # as probed at upload
        ),
    )


def _enter_stage(run: Claim, stage: str, **values: Any) -> None:
    if run.stop.is_set():
        raise ClaimLost(f"job {run.id} stopped")
    run.stage = stage
    with session_scope() as session:
        write(
            session,
            run,
            stage=stage,
            progress=func.greatest(TranscriptionJob.progress, _STAGE_SPANS[stage][0]),
            **values,
        )
    log.info("job %s: %s", run.id, stage)


def _progress(stage: str, fraction: float) -> float:
    low, high = _STAGE_SPANS[stage]
    return low + (high - low) * min(max(fraction, 0.0), 1.0)


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
        return
    try:
        with Heartbeat(run):
            _process(run)
    except ClaimLost as lost:
        log.warning("job %s: %s", job_id, lost)
    except BaseException as error:
        doing = STAGE_LABELS.get(run.stage, run.stage).lower()
        if record_failure(run, error, doing=doing) or isinstance(error, PermanentError):
            raise
        raise PermanentError(failure_message(RECORDINGS, error, doing=doing)) from error


def _process(run: Claim) -> None:
    from core.ai import get_provider

    provider = get_provider()
    if not run.row.has_transcript:
        with tempfile.TemporaryDirectory(prefix=f"quorum-job-{run.id}-") as work:
            _transcribe(run, provider, Path(work))
    _enter_stage(run, RecordingStage.MINUTES)
    from core.meetings.minutes import write_minutes_for_recording

    write_minutes_for_recording(run.id)
    _enter_stage(run, RecordingStage.INDEXING)
    from core.documents import index_recording_documents  # late: documents imports the embedding stack

    index_recording_documents(run.id)
    _complete(run)


def _transcribe(run: Claim, provider: AIProvider, work: Path) -> None:
    settings = get_settings()
    _enter_stage(run, RecordingStage.NORMALISING)
    with get_storage().local_path(run.row.storage_key) as source:
        longest = settings.max_recording_seconds
        check_free_disk(work, seconds=min(run.row.duration_seconds or longest, longest))
        audio = normalise_audio(source, work / "normalised.wav", max_seconds=longest)
    _enter_stage(run, RecordingStage.SPLITTING, duration_seconds=round(audio.duration_seconds, 3))
    silences = detect_silences(audio.path, threshold_db=silence_threshold_db(audio), duration=audio.duration_seconds)
    model = None if settings.offline else settings.transcription_model  # the duration caps are per API model
    plans = plan_segments(
        duration=audio.duration_seconds,
        silences=silences,
        max_seconds=max_segment_seconds(settings, model),
        overlap_seconds=settings.transcription_overlap_seconds,
    )
    log.info("job %s: %.0f s in %s segments", run.id, audio.duration_seconds, len(plans))
    _enter_stage(run, RecordingStage.TRANSCRIBING, provider=provider.name)
    _transcribe_segments(run, provider, audio.path, plans, work)
    with session_scope() as session:
        stored = stored_segments(session, run.id)
        lines = stitch_segments(stored, overlap_seconds=settings.transcription_overlap_seconds)
        write(
            session,
            run,
            transcript_segments=[line.to_json() for line in lines],
            transcript_text=transcript_text(lines),
            progress=_STAGE_SPANS[RecordingStage.TRANSCRIBING][1],
        )


def _matches_plan(stored: StoredSegment, plans: Sequence[SegmentPlan]) -> bool:
    if stored.index >= len(plans):
        return False
    plan = plans[stored.index]
    return abs(stored.start - plan.start) < 0.01 and abs(stored.end - plan.end) < 0.01


def _transcribe_segments(run: Claim, provider: AIProvider, wav: Path, plans: Sequence[SegmentPlan], work: Path) -> None:
    """Transcribe every segment not yet checkpointed, in concurrent lanes; checkpoint each."""
    settings = get_settings()
    with session_scope() as session:
        done = {s.index: s for s in stored_segments(session, run.id)}
        if any(not _matches_plan(s, plans) for s in done.values()):
            # Settings (segment length, model) changed since they were made: start over.
            log.warning("job %s: stored segments do not match the plan; transcribing again", run.id)
            session.execute(delete(TranscriptionSegment).where(TranscriptionSegment.job_id == run.id))
            done = {}
    total = sum(p.end - p.start for p in plans) or 1.0
    finished = [sum(p.end - p.start for p in plans if p.index in done)]
    lock = threading.Lock()
    usage = UsageContext(purpose="transcription", user_id=run.row.owner_id, transcription_job_id=run.id)
    max_bytes = int(settings.transcription_max_request_mb * 1024 * 1024)

    def checkpoint(plan: SegmentPlan, result: Transcription | None) -> None:
        with lock:
            finished[0] += plan.end - plan.start
            progress = _progress(RecordingStage.TRANSCRIBING, finished[0] / total)
        pieces = _global_pieces(plan, result) if result is not None else []
        values: dict[str, Any] = {"progress": func.greatest(TranscriptionJob.progress, progress)}
        if result is not None:
            values["model"] = result.model
            values["language"] = func.coalesce(TranscriptionJob.language, (result.language or "")[:16] or None)
        row = pg_insert(TranscriptionSegment).values(
            job_id=run.id,
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
            write(session, run, **values)
            session.execute(upsert)

    def cut(plan: SegmentPlan) -> Path:
        return export_segment(wav, plan, work / f"segment-{plan.index:05d}{SEGMENT_SUFFIX}", max_bytes=max_bytes)

    def transcribe_lane(lane: list[SegmentPlan]) -> None:
        """The lane's segments in order, each cut by ffmpeg while the previous one is sent."""
        previous = done.get(lane[0].index - 1)
        prompt = closing_words(previous.text) if previous is not None else None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"job{run.id}-cut") as cutter:
            upcoming = cutter.submit(cut, lane[0])
            for position, plan in enumerate(lane):
                path = upcoming.result()
                if run.stop.is_set():
                    return
                if position + 1 < len(lane):
                    upcoming = cutter.submit(cut, lane[position + 1])
                started = time.perf_counter()
                try:
                    result = provider.transcribe(path, usage=usage, language=run.row.language, prompt=prompt)
                finally:
                    path.unlink(missing_ok=True)
                log.debug("job %s: segment %s transcribed in %.1f s", run.id, plan.index,
                          time.perf_counter() - started)  # fmt: skip
                checkpoint(plan, result)
                prompt = closing_words(result.text)

    missing = [p for p in plans if p.index not in done]
    for plan in (p for p in missing if p.is_silent):  # nothing to send: Whisper would invent text
        checkpoint(plan, None)
    lanes = split_into_lanes([p for p in missing if not p.is_silent], settings.transcription_concurrency)
    if missing:
        log.info("job %s: %s segments to transcribe in %s lanes", run.id, len(missing), len(lanes))
    _run_lanes(run, lanes, transcribe_lane)


def _run_lanes(run: Claim, lanes: list[list[SegmentPlan]], work: Callable[[list[SegmentPlan]], None]) -> None:
    """Run each lane in its own thread; the first error stops the others after their
    current request (its segments stay checkpointed) and is raised."""
    if not lanes:
        return
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix=f"job{run.id}-lane") as pool:
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
    real = [e for e in errors if not isinstance(e, ClaimLost)]
    if real:
        raise real[0]
    if errors or run.stop.is_set():
        raise ClaimLost(f"job {run.id} stopped while transcribing")


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


def _complete(run: Claim) -> None:
    with session_scope() as session:
        totals = session.execute(
            select(
                func.coalesce(func.sum(UsageRecord.cost_usd), 0).label("cost_usd"),
                func.coalesce(func.sum(UsageRecord.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(UsageRecord.output_tokens), 0).label("output_tokens"),
            ).where(UsageRecord.transcription_job_id == run.id)
        ).one()
        write(
            session,
            run,
            status=RecordingStatus.COMPLETED,
            stage=RecordingStage.DONE,
            progress=1.0,
            error=None,
            completed_at=func.now(),
            cost_usd=totals.cost_usd,
            input_tokens=int(totals.input_tokens),
            output_tokens=int(totals.output_tokens),
        )
    log.info("job %s: completed", run.id)
