"""The Dramatiq options every job actor shares (core.platform.jobs: indexing, transcription)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from core.platform.config import get_settings
from core.platform.errors import PermanentError
from core.platform.jobs import JobTable
from workers import broker  # noqa: F401  (the broker must be set up before actors are declared)


def job_actor(table: JobTable, *, min_backoff_ms: int) -> Callable[[Callable[[int], None]], Any]:
    """Declare the actor of `table`'s jobs: its name and queue, retries, backoff, time limit."""
    settings = get_settings()
    return dramatiq.actor(
        actor_name=table.actor_name,
        queue_name=table.queue_name,
        # The job counts its own claims and fails itself at job_max_attempts, so Dramatiq
        # needs one fewer retry; a retry resumes from what the last run checkpointed.
        max_retries=max(settings.job_max_attempts - 1, 0),
        min_backoff=min_backoff_ms,
        max_backoff=300_000,
        time_limit=settings.job_time_limit_seconds * 1000,
        throws=(PermanentError,),
    )
