"""Audio actors: transcribing a recording. Thin: one core call each."""

from __future__ import annotations

from core.meetings import transcribe_recording as transcribe_recording_job
from core.platform.jobs import RECORDINGS
from workers.job_actor import job_actor


@job_actor(RECORDINGS, min_backoff_ms=10_000)
def transcribe_recording(job_id: int) -> None:
    """Transcribe recording `job_id`, write its minutes and index both (core.meetings.transcription).
    A retry resumes from the checkpointed segments."""
    transcribe_recording_job(job_id)
