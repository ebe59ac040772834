"""Maintenance actors: the periodic stale-job check and vector index upkeep. Thin: one core call each."""

from __future__ import annotations

import dramatiq

from core.documents.vector_segments import ACTOR_NAME as VECTOR_INDEX_ACTOR
from core.documents.vector_segments import maintain_vector_index as maintain_vector_index_job
from core.platform.errors import PermanentError
from core.platform.stale_job_watch import WATCH_ACTOR, continue_stale_job_watch
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


@dramatiq.actor(
    actor_name=VECTOR_INDEX_ACTOR,
    queue_name="default",
    max_retries=0,  # asked for again after every busy indexing run and by the periodic watch
    time_limit=6 * 3600 * 1000,  # merging a large corpus into one index takes a while
    throws=(PermanentError,),
)
def maintain_vector_index() -> None:
    """Index the newest chunks in bulk and merge indexes (core.documents.vector_segments)."""
    maintain_vector_index_job()
