"""Storing an uploaded or recorded meeting and queueing its transcription."""

from __future__ import annotations

import logging
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.rbac import Actor, require
from core.ai.usage import check_ai_budget
from core.meetings.audio import CONTENT_TYPES, extension_of, probe_audio
from core.meetings.recordings import RecordingSummary, enqueue_transcription, get_recording_summary
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import DuplicateRecording, InvalidInput
from core.platform.models import TranscriptionJob
from core.platform.statuses import RecordingStage, RecordingStatus
from core.platform.storage import get_storage
from core.platform.uploads import check_visibility, clean_filename

log = logging.getLogger(__name__)

RECORDING_KIND = "recordings"


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


def _refuse_duplicate(session: Session, actor: Actor, sha256: str) -> None:
    """Raise DuplicateRecording when the actor already uploaded this exact content."""
    earlier = session.execute(
        select(TranscriptionJob.id, TranscriptionJob.filename, TranscriptionJob.status, TranscriptionJob.created_at)
        .where(TranscriptionJob.owner_id == actor.id, TranscriptionJob.sha256 == sha256)
        .order_by(TranscriptionJob.id.desc())
        .limit(1)
    ).first()
    if earlier is None:
        return
    state = {
        RecordingStatus.COMPLETED: "already transcribed",
        RecordingStatus.FAILED: "already uploaded (its transcription failed)",
    }.get(earlier.status, "already being transcribed")
    raise DuplicateRecording(
        f"This recording was {state} as “{earlier.filename}” (#{earlier.id}, {earlier.created_at:%Y-%m-%d %H:%M}).",
        job_id=earlier.id,
        filename=earlier.filename,
    )


def submit_recording(
    *,
    actor: Actor,
    file: IO[bytes],
    filename: str,
    visibility: str = "team",
    language: str | None = None,
    transcribe_again: bool = False,
) -> RecordingSummary:
    """Store an uploaded or recorded meeting and queue its transcription.

    The same content uploaded before by the same owner raises DuplicateRecording (naming
    the earlier recording) and stores nothing, unless `transcribe_again` says it is wanted.

    Needs transcribe_audio. The size limit (settings.max_audio_mb) is checked against the
    declared size before anything is read, and again while the stream is stored. The file
    is probed with ffprobe: corrupt, non-audio, video-only or unsupported files raise
    InvalidInput with a message for the uploader and leave nothing behind. Commits the
    PENDING job, then enqueues it. Raises PermissionDenied, InvalidInput, or QuorumError
    when the queue cannot be reached (the job is then FAILED and can be retried).
    """
    require(actor, "transcribe_audio")
    check_ai_budget(actor)  # transcription, minutes and indexing are AI work
    check_visibility(visibility)
    name = clean_filename(filename, fallback="recording")
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
            info = probe_audio(path, filename=name, max_seconds=settings.max_recording_seconds)
        with session_scope() as session:
            if not transcribe_again:
                _refuse_duplicate(session, actor, stored.sha256)
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
                status=RecordingStatus.PENDING,
                stage=RecordingStage.QUEUED,
                progress=0.0,
            )
            session.add(job)
            session.flush()
            job_id = job.id
    except BaseException:
        storage.delete(stored.key)
        raise
    log.info("recording %s stored as job %s (%.0f s, %s)", name, job_id, info.duration_seconds, info.codec)
    enqueue_transcription(job_id)
    return get_recording_summary(actor=actor, job_id=job_id)
