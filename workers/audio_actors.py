"""Audio actors: transcribing a recording. Thin: one core call each."""

from __future__ import annotations

import dramatiq

from core.meetings import transcribe_recording as transcribe_recording_job
from core.platform.config import get_settings
from core.platform.errors import PermanentError
from core.platform.jobs import RECORDINGS
from workers import broker  # noqa: F401  (the broker must be set up before actors are declared)

_settings = get_settings()


@dramatiq.actor(
    actor_name=RECORDINGS.actor_name,
    queue_name=RECORDINGS.queue_name,
    # The job counts its own claims and fails itself at job_max_attempts, so Dramatiq
    # needs one fewer retry; each retry resumes from the checkpointed segments.
    max_retries=max(_settings.job_max_attempts - 1, 0),
    min_backoff=10_000,
    max_backoff=300_000,
    time_limit=_settings.job_time_limit_seconds * 1000,
    throws=(PermanentError,),
)
def transcribe_recording(job_id: int) -> None:
    """Transcribe recording `job_id`, write its minutes and index both (core.meetings.transcription)."""
    transcribe_recording_job(job_id)
