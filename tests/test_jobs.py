"""Stale-job detection (core.platform.jobs) and the job monitor (core.admin), real services."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import core.admin as svc
from core.access.rbac import Actor
from core.admin.analytics import usage_analytics
from core.platform import jobs, stale_job_watch
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import PermissionDenied
from core.platform.models import Document, MessageFeedback, TranscriptionJob, UsageRecord
from core.platform.queue import get_broker, queue_depths
from tests.admin_data import (
    audit_actions_for,
    get_row,
    make_chat,
    make_document,
    make_feedback,
    make_recording,
    set_fields,
)

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

    requeued = stale_job_watch.requeue_stale_jobs()

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
    stale_job_watch.requeue_stale_jobs()
    assert _sent("transcribe_recording", stale_recording, "audio") == 1
    assert _sent("index_document", stale_document, "default") == 1
    assert len(audit_actions_for("transcription", stale_recording)) == 1


def test_a_job_that_keeps_killing_workers_is_failed_not_requeued(database: str) -> None:
    attempts = get_settings().job_max_attempts
    poison = make_recording(None, status="PROCESSING", attempts=attempts, heartbeat_at=_long_ago())
    stale_job_watch.requeue_stale_jobs()
    row = get_row(TranscriptionJob, poison)
    assert row.status == "FAILED"
    assert f"stopped {attempts} times" in row.error
    assert _sent("transcribe_recording", poison, "audio") == 0
    assert audit_actions_for("transcription", poison) == [("job.fail_stale", "(system)")]


def test_the_periodic_watch_runs_one_chain(database: str) -> None:
    def watch_messages() -> list[dict[str, Any]]:
        return [m for m in _messages("default") if m["actor_name"] == stale_job_watch.WATCH_ACTOR]

    before = {m["message_id"] for m in watch_messages()}
    first = stale_job_watch.start_stale_job_watch()
    scheduled = [m for m in watch_messages() if m["message_id"] not in before]
    assert [m["args"] for m in scheduled] == [[first]]
    assert scheduled[0]["options"]["eta"] > 0  # delayed, not immediate

    second = stale_job_watch.start_stale_job_watch()
    assert second != first
    # The replaced chain stops at its next run and schedules nothing.
    count = len(watch_messages())
    assert stale_job_watch.continue_stale_job_watch(first) is False
    assert len(watch_messages()) == count
    # The current chain checks and schedules its next run.
    stale = make_recording(None, status="PROCESSING", attempts=1, heartbeat_at=_long_ago())
    assert stale_job_watch.continue_stale_job_watch(second) is True
    assert len(watch_messages()) == count + 1
    assert get_row(TranscriptionJob, stale).status == "PENDING"


def test_the_maintenance_actor_is_registered_on_the_broker() -> None:
    from workers import maintenance_actors

    actor = get_broker().get_actor(stale_job_watch.WATCH_ACTOR)
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
    assert rows[("indexing", indexing)].stage_label == "Indexing 5/10 chunks"
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


def test_usage_analytics_counts_jobs_audio_tokens_and_thumbs_up(admin: Actor, make_user: Callable[..., Actor]) -> None:
    user = make_user()
    day = datetime(2031, 3, 14, 12, tzinfo=UTC)  # a day no other test writes to
    make_recording(user.id, status="COMPLETED", duration_seconds=5400.0, created_at=day, completed_at=day)
    make_recording(user.id, status="FAILED", created_at=day)
    make_document(user.id, status="COMPLETED", upload_date=day)
    with session_scope() as session:
        session.add_all(
            [
                UsageRecord(
                    created_at=day,
                    purpose="chat",
                    provider="openai",
                    model="gpt-4o-mini",
                    input_tokens=1000,
                    output_tokens=200,
                    cost_usd=0.5,
                    user_id=user.id,
                ),
                UsageRecord(
                    created_at=day,
                    purpose="embedding",
                    provider="openai",
                    model="text-embedding-3-small",
                    input_tokens=3000,
                    cost_usd=0.25,
                    user_id=user.id,
                ),
            ]
        )
    _, answers = make_chat(user.id, [("a?", "A."), ("b?", "B."), ("c?", "C.")])
    for answer, rating in zip(answers, ("good", "good", "bad"), strict=True):
        set_fields(MessageFeedback, make_feedback(answer, user.id, rating=rating), created_at=day)

    result = usage_analytics(actor=admin, since=day.date())

    jobs_that_day = {(row.kind, row.status): row.jobs for row in result.jobs_per_day if row.day == day.date()}
    assert jobs_that_day == {
        ("transcription", "COMPLETED"): 1,
        ("transcription", "FAILED"): 1,
        ("indexing", "COMPLETED"): 1,
    }
    (audio,) = [row for row in result.audio_per_day if row.day == day.date()]
    assert (audio.recordings, audio.audio_hours) == (1, pytest.approx(1.5))
    (feedback_day,) = [row for row in result.feedback_per_day if row.day == day.date()]
    assert (feedback_day.good, feedback_day.bad, feedback_day.share_good) == (2, 1, pytest.approx(2 / 3))
    by_purpose = {row.purpose: row for row in result.usage.by_day_purpose if row.day == day.date()}
    assert by_purpose["chat"].input_tokens == 1000 and by_purpose["chat"].cost_usd == pytest.approx(0.5)
    assert by_purpose["embedding"].input_tokens == 3000
    (by_user,) = [row for row in result.usage.by_day_user if row.day == day.date()]
    assert (by_user.username, by_user.tokens, by_user.cost_usd) == (user.username, 4200, pytest.approx(0.75))
    assert result.share_good == pytest.approx(2 / 3)
    with pytest.raises(PermissionDenied):
        usage_analytics(actor=user)


def test_retry_from_the_monitor_requeues_failed_jobs_through_their_owners(admin: Actor, member: Actor) -> None:
    recording = make_recording(member.id, status="FAILED", error="Provider said no.", attempts=3)
    document = make_document(member.id, status="FAILED", error="Broken PDF.", attempts=2)
    svc.retry_job(actor=admin, kind="transcription", job_id=recording)
    svc.retry_job(actor=admin, kind="indexing", job_id=document)

    assert (get_row(TranscriptionJob, recording).status, get_row(TranscriptionJob, recording).attempts) == (
        "PENDING",
        0,
    )
    assert get_row(Document, document).status == "PENDING"
    assert _sent("transcribe_recording", recording, "audio") == 1
    assert _sent("index_document", document, "default") == 1
    assert audit_actions_for("transcription", recording) == [("job.retry", admin.username)]
    assert audit_actions_for("indexing", document) == [("job.retry", admin.username)]
    with pytest.raises(PermissionDenied):
        svc.retry_job(actor=member, kind="indexing", job_id=document)


# --------------------------------------------------------------------------- one lifecycle for both kinds


def test_the_stale_rule_is_the_same_in_python_and_in_sql(database: str) -> None:
    limit = get_settings().job_stale_after_seconds
    just_inside = datetime.now(UTC) - timedelta(seconds=limit - 30)
    ids = {
        "recording, quiet": make_recording(None, status="PROCESSING", heartbeat_at=_long_ago()),
        "recording, beating": make_recording(None, status="PROCESSING", heartbeat_at=just_inside),
        "recording, started long ago, no beat": make_recording(None, status="PROCESSING", started_at=_long_ago()),
        "recording, failed long ago": make_recording(None, status="FAILED", heartbeat_at=_long_ago()),
        "document, quiet": make_document(None, status="INDEXING", heartbeat_at=_long_ago()),
        "document, beating": make_document(None, status="INDEXING", heartbeat_at=just_inside),
        "document, uploaded long ago, never started": make_document(None, status="INDEXING", upload_date=_long_ago()),
        "document, waiting long": make_document(None, status="PENDING", upload_date=_long_ago()),
    }
    for name, row_id in ids.items():
        table = jobs.RECORDINGS if name.startswith("recording") else jobs.DOCUMENTS
        with session_scope() as session:
            row = session.get(table.model, row_id)
            in_python = jobs.row_is_stale(table, row)
            in_sql = session.scalar(select(func.count()).where(table.model.id == row_id, jobs.stale_clause(table)))
        assert in_python == bool(in_sql), name
        assert in_python == ("quiet" in name or "long ago, no beat" in name or "never started" in name), name


def test_a_job_the_queue_could_not_take_stays_pending_and_is_sent_once_the_queue_is_back(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = make_document(None, status="PENDING")
    recording = make_recording(None, status="PENDING", stage="queued")

    def unreachable(*_: Any, **__: Any) -> str:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(jobs, "enqueue", unreachable)
    assert not jobs.send(jobs.DOCUMENTS, document)
    assert not jobs.send(jobs.RECORDINGS, recording)
    for model, row_id in ((Document, document), (TranscriptionJob, recording)):
        row = get_row(model, row_id)
        assert (row.status, row.error) == ("PENDING", jobs.NOT_QUEUED)
    monkeypatch.undo()

    assert stale_job_watch.requeue_stale_jobs() >= 2  # the watch runs from the queue, so the queue is back
    assert _sent("index_document", document, "default") == 1
    assert _sent("transcribe_recording", recording, "audio") == 1
    assert get_row(Document, document).error is None and get_row(TranscriptionJob, recording).error is None
    stale_job_watch.requeue_stale_jobs()
    assert _sent("index_document", document, "default") == 1  # sent once


def test_both_kinds_share_retry_eligibility_and_home_shows_a_finished_document_as_done(
    admin: Actor, member: Actor
) -> None:
    from core.admin.dashboard import home_overview

    empty = make_document(member.id, status="COMPLETED", chunks_total=0, chunks_done=0)
    failed = make_recording(member.id, status="FAILED", error="The file is damaged.")
    waiting = make_recording(member.id, status="PENDING")
    overview = home_overview(actor=member)
    items = {item.name: item for item in overview.recent}
    done = items[get_row(Document, empty).filename]
    assert (done.state.progress, done.state.stage_label, done.state.active) == (1.0, "Done", False)
    assert done not in overview.in_progress
    assert items[get_row(TranscriptionJob, failed).filename].state.retryable
    assert items[get_row(TranscriptionJob, waiting).filename] in overview.in_progress

    rows = {(row.kind, row.id): row for row in svc.list_jobs(actor=admin)}
    assert rows[("indexing", empty)].progress == 1.0 and not rows[("indexing", empty)].can_retry
    assert rows[("transcription", failed)].can_retry and rows[("transcription", failed)].needs_attention
    assert rows[("transcription", waiting)].can_retry and not rows[("transcription", waiting)].needs_attention
