"""The stale-job watch: finding work a dead worker left behind, and putting it back in the queue.

A worker that is killed (SIGKILL, OOM, power loss) leaves its row running forever: Dramatiq
only redelivers when the worker acks late and Redis notices, which does not cover every
case. The stale rule and the sending policy are core.platform.jobs's; this module runs them
periodically.

The periodic check is one message chain: start_stale_job_watch() sends the first message
to the "requeue_stale_jobs" actor with a fresh token and records that token in Redis; each
run calls continue_stale_job_watch(token), which does the work and sends the next message
with a delay. A chain whose token is no longer the recorded one stops, so however often the
app and workers are started, one chain runs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from core.access.audit import record_audit
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.jobs import NOT_QUEUED, TABLES, JobTable, send, stale_clause
from core.platform.queue import enqueue, get_broker
from core.platform.statuses import RecordingStatus

log = logging.getLogger(__name__)

WATCH_ACTOR = "requeue_stale_jobs"
VECTOR_INDEX_ACTOR = "maintain_vector_index"  # core.documents.vector_segments.ACTOR_NAME
_WATCH_TOKEN_KEY = "quorum:maintenance:stale-job-watch"


@dataclass(frozen=True)
class _Orphan:
    table: JobTable
    id: int
    attempts: int


def requeue_stale_jobs() -> int:
    """Put stale running jobs (see is_stale) back to PENDING and enqueue them again, and send
    the PENDING ones a dead queue kept back (NOT_QUEUED). Returns how many were sent.

    A job already claimed settings.job_max_attempts times is marked FAILED instead, with a
    readable error, so one file that kills the worker cannot crash it forever.
    Rows are taken FOR UPDATE SKIP LOCKED, so concurrent runs split the work; a second run
    finds nothing to do (idempotent). Commits the resets with one audit row per stale job,
    then enqueues. A worker that picks a job up claims it again from PENDING.
    """
    settings = get_settings()
    orphans: list[_Orphan] = []
    unsent: list[_Orphan] = []
    with session_scope() as session:
        for table in TABLES.values():
            model = table.model
            rows = session.execute(
                select(model.id, model.attempts)
                .where(stale_clause(table))
                .order_by(model.id)
                .with_for_update(skip_locked=True)
            ).all()
            orphans += [_Orphan(table, row.id, row.attempts) for row in rows]
            kept_back = session.execute(
                update(model)
                .where(model.status == table.pending, model.error == NOT_QUEUED)
                .values(error=None)
                .returning(model.id, model.attempts)
            ).all()
            unsent += [_Orphan(table, row.id, row.attempts) for row in kept_back]
        requeued: list[_Orphan] = []
        for orphan in orphans:
            model = orphan.table.model
            give_up = orphan.attempts >= settings.job_max_attempts
            if give_up:
                error = (
                    f"The worker stopped {orphan.attempts} times while working on this; it was not retried "
                    "again. Check the worker logs, then retry it from the Jobs tab."
                )
                values: dict[str, Any] = {"status": RecordingStatus.FAILED, "error": error, "heartbeat_at": None}
            else:
                values = {"status": orphan.table.pending, "error": None, "heartbeat_at": None}
                values.update(orphan.table.pending_values)
                requeued.append(orphan)
            session.execute(update(model).where(model.id == orphan.id).values(**values))
            record_audit(
                session,
                actor=None,
                action="job.fail_stale" if give_up else "job.requeue_stale",
                target_type=orphan.table.kind,
                target_id=orphan.id,
                details={"attempts": orphan.attempts, "stale_after_seconds": settings.job_stale_after_seconds},
            )
    # Enqueued after the commit: a worker must find the row PENDING when the message arrives.
    for orphan in requeued + unsent:
        send(orphan.table, orphan.id)
    if orphans or unsent:
        log.warning(
            "stale jobs: requeued %s, failed %s (no heartbeat for %ss); sent %s kept back by the queue",
            len(requeued),
            len(orphans) - len(requeued),
            settings.job_stale_after_seconds,
            len(unsent),
        )
    return len(requeued) + len(unsent)


def start_stale_job_watch() -> str:
    """Start the periodic stale-job check (call once when the system starts; calling it
    again replaces the running chain instead of adding one). Runs one check now, in the
    caller, so jobs orphaned while the system was down are requeued at once (a database
    error there is logged, not raised). Returns the chain's token.
    """
    token = uuid.uuid4().hex
    get_broker().client.set(_WATCH_TOKEN_KEY, token)
    try:
        requeue_stale_jobs()
    except SQLAlchemyError:
        log.exception("stale-job check at start failed; the periodic check will try again")
    finally:
        enqueue(WATCH_ACTOR, token, delay_ms=get_settings().job_stale_check_seconds * 1000)
    return token


def continue_stale_job_watch(token: str) -> bool:
    """One run of the periodic check: requeue stale jobs, then schedule the next run with
    the same token. Returns False, doing nothing, when `token` belongs to a replaced chain.

    The next run is scheduled even when this check fails (database down), so the watch
    survives outages.
    """
    client = get_broker().client
    current = client.get(_WATCH_TOKEN_KEY)
    if current is None:
        # Redis lost the key (flushed): the first chain to run takes over.
        client.set(_WATCH_TOKEN_KEY, token, nx=True)
        current = client.get(_WATCH_TOKEN_KEY)
    if (current.decode() if isinstance(current, bytes) else current) != token:
        log.info("stale-job watch %s replaced by another; stopping it", token)
        return False
    try:
        requeue_stale_jobs()
    finally:
        enqueue(WATCH_ACTOR, token, delay_ms=get_settings().job_stale_check_seconds * 1000)
        # Indexes the chunks of a tail that went quiet (core.documents.vector_segments).
        enqueue(VECTOR_INDEX_ACTOR)
    return True
