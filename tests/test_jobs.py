"""Stale-job detection (core.jobs) and the job monitor (core.admin) with real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import admin as svc
from core import jobs
from core.config import get_settings
from core.errors import PermissionDenied
from core.models import Document, TranscriptionJob
from core.queue import get_broker, queue_depths
from core.rbac import Actor
from tests.admin_data import audit_actions_for, get_row, make_document, make_recording

pytestmark = pytest.mark.usefixtures("redis_server")


def _messages(queue: str) -> list[dict[str, Any]]:
    """Every message waiting in `queue` (ready and delayed), decoded, read straight from Redis."""
    broker = get_broker()
    found = []
    for name in (queue, f"{queue}.DQ"):
        for raw in broker.client.hvals(f"{broker.namespace}:{name}.msgs"):
            found.append(json.loads(raw))
    return found


def _sent(actor_name: str, job_id: int, queue: str) -> int:
    return sum(1 for m in _messages(queue) if m["actor_name"] == actor_name and m["args"] == [job_id])


def _long_ago() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=get_settings().job_stale_after_seconds + 600)


def test_a_job_left_running_by_a_dead_worker_is_requeued_once(database: str) -> None:
    stale_recording = make_recording(
        None, status="PROCESSING", stage="transcribing", attempts=1, heartbeat_at=_long_ago()
    )
    # No heartbeat yet: the start time counts.
    stale_document = make_document(None, status="INDEXING", attempts=1, started_at=_long_ago())
    live_recording = make_recording(None, status="PROCESSING", attempts=1, heartbeat_at=datetime.now(UTC))
    waiting_document = make_document(None, status="PENDING", started_at=_long_ago())
    depths_before = queue_depths()

    requeued = jobs.requeue_stale_jobs()

    assert requeued >= 2
    recording = get_row(TranscriptionJob, stale_recording)
    assert (recording.status, recording.stage, recording.heartbeat_at) == ("PENDING", "queued", None)
    assert get_row(Document, stale_document).status == "PENDING"
    assert get_row(TranscriptionJob, live_recording).status == "PROCESSING"
    assert get_row(Document, waiting_document).status == "PENDING"
    depths_after = queue_depths()
    assert depths_after["audio"] >= depths_before["audio"] + 1
    assert depths_after["default"] >= depths_before["default"] + 1
    assert _sent("transcribe_recording", stale_recording, "audio") == 1
    assert _sent("index_document", stale_document, "default") == 1
    assert _sent("transcribe_recording", live_recording, "audio") == 0
    assert audit_actions_for("transcription", stale_recording) == [("job.requeue_stale", "(system)")]
    assert audit_actions_for("indexing", stale_document) == [("job.requeue_stale", "(system)")]

    # Idempotent: a second run finds nothing of these and sends nothing more.
    jobs.requeue_stale_jobs()
    assert _sent("transcribe_recording", stale_recording, "audio") == 1
    assert _sent("index_document", stale_document, "default") == 1
    assert len(audit_actions_for("transcription", stale_recording)) == 1


def test_a_job_that_keeps_killing_workers_is_failed_not_requeued(database: str) -> None:
    attempts = get_settings().job_max_attempts
    poison = make_recording(None, status="PROCESSING", attempts=attempts, heartbeat_at=_long_ago())
    jobs.requeue_stale_jobs()
    row = get_row(TranscriptionJob, poison)
    assert row.status == "FAILED"
    assert f"stopped {attempts} times" in row.error
    assert _sent("transcribe_recording", poison, "audio") == 0
    assert audit_actions_for("transcription", poison) == [("job.fail_stale", "(system)")]


def test_the_periodic_watch_runs_one_chain(database: str) -> None:
    def watch_messages() -> list[dict[str, Any]]:
        return [m for m in _messages("default") if m["actor_name"] == jobs.WATCH_ACTOR]

    before = {m["message_id"] for m in watch_messages()}
    first = jobs.start_stale_job_watch()
    scheduled = [m for m in watch_messages() if m["message_id"] not in before]
    assert [m["args"] for m in scheduled] == [[first]]
    assert scheduled[0]["options"]["eta"] > 0  # delayed, not immediate

    second = jobs.start_stale_job_watch()
    assert second != first
    # The replaced chain stops at its next run and schedules nothing.
    count = len(watch_messages())
    assert jobs.continue_stale_job_watch(first) is False
    assert len(watch_messages()) == count
    # The current chain checks and schedules its next run.
    stale = make_recording(None, status="PROCESSING", attempts=1, heartbeat_at=_long_ago())
    assert jobs.continue_stale_job_watch(second) is True
    assert len(watch_messages()) == count + 1
    assert get_row(TranscriptionJob, stale).status == "PENDING"


def test_the_maintenance_actor_is_registered_on_the_broker() -> None:
    from workers import maintenance_actors

    actor = get_broker().get_actor(jobs.WATCH_ACTOR)
    assert actor.fn is maintenance_actors.requeue_stale_jobs.fn
    assert actor.options["max_retries"] == 0


def test_the_job_monitor_lists_both_kinds_with_stage_progress_and_staleness(
    admin: Actor, member: Actor, make_user: Callable[..., Actor]
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=5)
    running = make_recording(
        member.id, status="PROCESSING", stage="transcribing", progress=0.4, started_at=started, heartbeat_at=_long_ago()
    )
    failed = make_document(
        member.id, status="FAILED", error="The PDF is damaged.", attempts=2, started_at=started, indexed_at=None
    )
    indexing = make_document(
        member.id, status="INDEXING", chunks_total=10, chunks_done=5, started_at=started, heartbeat_at=datetime.now(UTC)
    )
    rows = {(row.kind, row.id): row for row in svc.list_jobs(actor=admin)}
    recording = rows[("transcription", running)]
    assert (recording.status, recording.stage, recording.owner) == ("PROCESSING", "transcribing", member.username)
    assert recording.progress == pytest.approx(0.4)
    assert recording.stale and recording.duration_seconds is not None and recording.duration_seconds >= 290
    document = rows[("indexing", failed)]
    assert (document.status, document.error, document.attempts) == ("FAILED", "The PDF is damaged.", 2)
    assert rows[("indexing", indexing)].progress == pytest.approx(0.5)
    assert rows[("indexing", indexing)].stage == "indexing 5/10 chunks"
    assert not rows[("indexing", indexing)].stale

    only_failed = svc.list_jobs(actor=admin, kind="indexing", status="FAILED")
    assert {row.status for row in only_failed} == {"FAILED"} and failed in {row.id for row in only_failed}
    processing = svc.list_jobs(actor=admin, kind="indexing", status="PROCESSING")
    assert indexing in {row.id for row in processing}

    depths = svc.job_queue_depths(actor=admin)
    assert set(depths) == {"default", "audio"} and all(value >= 0 for value in depths.values())
    with pytest.raises(PermissionDenied):
        svc.list_jobs(actor=member)
    with pytest.raises(PermissionDenied):
        svc.job_queue_depths(actor=member)
