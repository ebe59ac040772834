"""Maintenance actors: the periodic stale-job check. Thin: one core call each."""

from __future__ import annotations

import dramatiq

from core.platform.errors import PermanentError
from core.platform.jobs import WATCH_ACTOR, continue_stale_job_watch
from workers import broker  # noqa: F401  (the broker must be set up before actors are declared)


@dramatiq.actor(
    actor_name=WATCH_ACTOR,
    queue_name="default",
    max_retries=0,  # the chain reschedules itself; a retry would start a second run
    time_limit=120_000,
    throws=(PermanentError,),
)
def requeue_stale_jobs(token: str) -> None:
    """Requeue jobs whose worker died, then schedule the next check (see core.platform.jobs)."""
    continue_stale_job_watch(token)
