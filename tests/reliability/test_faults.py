"""Faults with the real processes: Dramatiq workers killed with SIGKILL, a Redis server stopped
and started again on its append-only file, a PostgreSQL server restarted under a live engine.

Workers are real `python -m dramatiq workers.actors` processes against the test database.
They take their messages from the reliability tests' own Redis (conftest.private_queue),
to which the test process sends too. Settings that make recovery take seconds instead of
minutes go to the workers as QUORUM_* environment variables (PrivateQueue.worker_env).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from core.access.rbac import Actor
from core.documents import retry_document, upload_documents
from core.platform.config import get_settings
from core.platform.db import get_engine, reset_engine, session_scope
from core.platform.models import AuditLog, Document, DocumentChunk, TranscriptionJob, TranscriptionSegment
from tests.admin_data import get_row
from tests.conftest import unique
from tests.fake_openai import FakeOpenAI
from tests.recording_fixtures import numbered_transcripts, submit
from tests.reliability.processes import ROOT, PrivateQueue, Worker, wait_for

pytest_plugins = ["tests.recording_fixtures"]  # fake_api, offline, long_tones

TRANSCRIPTIONS = "/v1/audio/transcriptions"
EMBEDDINGS = "/v1/embeddings"


# --------------------------------------------------------------------------- rows


def _document(document_id: int) -> Document:
    return get_row(Document, document_id)


def _job(job_id: int) -> TranscriptionJob:
    return get_row(TranscriptionJob, job_id)


def _segments(job_id: int) -> list[tuple[int, float, float, str]]:
    with session_scope() as session:
        return [
            tuple(row)  # type: ignore[misc]
            for row in session.execute(
                select(
                    TranscriptionSegment.segment_index,
                    TranscriptionSegment.start_seconds,
                    TranscriptionSegment.end_seconds,
                    TranscriptionSegment.text,
                )
                .where(TranscriptionSegment.job_id == job_id)
                .order_by(TranscriptionSegment.segment_index)
            )
        ]


def _chunk_keys(document_id: int) -> list[tuple[int, int]]:
    """(generation, chunk_index) of every stored chunk of the document, duplicates included."""
    with session_scope() as session:
        return [
            (row.generation, row.chunk_index)
            for row in session.execute(
                select(DocumentChunk.generation, DocumentChunk.chunk_index)
                .where(DocumentChunk.document_id == document_id)
                .order_by(DocumentChunk.generation, DocumentChunk.chunk_index)
            )
        ]


def _assert_indexed_once(document_id: int) -> Document:
    """COMPLETED with exactly one set of chunks: one per index, all in the active generation."""
    document = _document(document_id)
    assert document.status == "COMPLETED", document.error
    keys = _chunk_keys(document_id)
    assert len(keys) == len(set(keys)) == document.chunks_total > 0
    assert keys == [(document.active_generation, index) for index in range(document.chunks_total)]
    return document


def _upload(actor: Actor, name: str, text: str) -> tuple[int, str]:
    stream = io.BytesIO(text.encode())
    stream.name = name  # type: ignore[attr-defined]
    [outcome] = upload_documents(actor=actor, files=[stream])
    assert outcome.status == "accepted" and outcome.document_id is not None, outcome.message
    return outcome.document_id, outcome.message


def _prose(token: str, sentences: int) -> str:
    topics = ["budget", "hiring", "roadmap", "security", "vendors", "migration", "customers", "launch"]
    return " ".join(
        f"Sentence {i} about {topics[i % len(topics)]} mentions {token} and the quarterly plan."
        for i in range(sentences)
    )


# --------------------------------------------------------------------------- killed workers


def test_a_worker_killed_during_transcription_is_redelivered_and_finishes_once(
    fake_api: Callable[..., FakeOpenAI], private_queue: PrivateQueue, member: Actor, long_tones: Path, tmp_path: Path
) -> None:
    fake = fake_api(transcription_segment_seconds=30, transcription_overlap_seconds=1, transcription_concurrency=1)
    fake.delay_next(1000, 0.5, path=TRANSCRIPTIONS)  # slow enough to kill the worker between segments
    job_id = submit(member, long_tones)
    env = private_queue.worker_env()

    first = Worker(env, tmp_path / "first-worker.log")
    try:
        wait_for(lambda: len(_segments(job_id)) >= 1, "the first segment checkpoint", first)
    finally:
        first.kill()
    done_before = _segments(job_id)
    killed = _job(job_id)
    assert (killed.status, killed.stage, killed.attempts) == ("PROCESSING", "transcribing", 1)
    # The message is neither lost nor back in the queue: it sits with the dead worker, unacked.
    assert private_queue.unacked("audio") == 1 and private_queue.waiting("audio") == []

    fake.reset()
    seen = numbered_transcripts(fake)
    second = Worker(env, tmp_path / "second-worker.log")
    try:
        wait_for(lambda: _job(job_id).status in ("COMPLETED", "FAILED"), "the job to finish", second)
    finally:
        second.stop()

    job = _job(job_id)
    assert (job.status, job.error, job.attempts) == ("COMPLETED", None, 2)
    rows = _segments(job_id)
    assert [row[0] for row in rows] == list(range(len(rows))) and len(rows) > len(done_before)
    assert rows[: len(done_before)] == done_before  # the checkpoints of the killed worker were kept
    assert len(seen) == len(rows) - len(done_before)  # only the missing segments were transcribed again
    assert private_queue.unacked("audio") == 0 and private_queue.waiting("audio") == []

    # Minutes written once, by the second worker, and transcript and minutes indexed once.
    assert job.minutes is not None and job.minutes_markdown
    with session_scope() as session:
        documents = session.execute(
            select(Document.id, Document.document_type).where(Document.transcription_job_id == job_id)
        ).all()
    assert sorted(kind for _, kind in documents) == ["full_transcript", "meeting_minutes"]
    for document_id, _ in documents:
        _assert_indexed_once(document_id)
    assert len(fake.calls("/v1/chat/completions")) == 1


def test_a_worker_killed_during_indexing_is_requeued_by_the_stale_job_check_and_finishes_once(
    fake_api: Callable[..., FakeOpenAI],
    private_queue: PrivateQueue,
    member: Actor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.platform.stale_job_watch import requeue_stale_jobs

    # One request at a time, 4 chunks each: the document is written in many small steps to kill between.
    fake = fake_api(embedding_batch_size=4, embedding_concurrency=1)
    fake.delay_next(1000, 0.3, path=EMBEDDINGS)
    document_id, _ = _upload(member, "handbook.txt", _prose(unique("kill"), 400))
    # Dramatiq's own redelivery is kept out of this test (default heartbeat timeout of 60 s):
    # here the stale-job check is what finds the job.
    env = private_queue.worker_env(broker_heartbeat_timeout_seconds=60)

    first = Worker(env, tmp_path / "first-worker.log")
    try:
        wait_for(lambda: _document(document_id).chunks_done > 0, "the first chunks", first)
    finally:
        first.kill()
    killed = _document(document_id)
    assert killed.status == "INDEXING" and 0 < killed.chunks_done < killed.chunks_total
    written = len(_chunk_keys(document_id))
    assert written == killed.chunks_done

    fake.reset()
    second = Worker(env, tmp_path / "second-worker.log")
    try:
        # The dead worker's heartbeat is long past; the check only takes jobs this old, so
        # rows other tests left behind stay out of it.
        with session_scope() as session:
            session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(heartbeat_at=func.now() - timedelta(days=30), started_at=func.now() - timedelta(days=30))
            )
        monkeypatch.setattr(get_settings(), "job_stale_after_seconds", 29 * 86400)
        assert requeue_stale_jobs() == 1
        assert _document(document_id).status in ("PENDING", "INDEXING", "COMPLETED")
        wait_for(lambda: _document(document_id).status in ("COMPLETED", "FAILED"), "indexing to finish", second)
    finally:
        second.stop()

    document = _assert_indexed_once(document_id)
    assert document.attempts == 2
    # The resumed run embedded exactly the chunks the killed one had not written.
    assert sum(call.inputs or 0 for call in fake.calls(EMBEDDINGS)) == document.chunks_total - written
    with session_scope() as session:
        actions = session.scalars(
            select(AuditLog.action).where(AuditLog.target_type == "indexing", AuditLog.target_id == str(document_id))
        ).all()
    assert actions == ["job.requeue_stale"]


# --------------------------------------------------------------------------- Redis restarts


def test_queued_jobs_survive_redis_restarts_and_workers_reconnect(
    offline: Callable[..., None], private_queue: PrivateQueue, member: Actor, tmp_path: Path
) -> None:
    offline()
    token = unique("redis")
    queued, message = _upload(member, "queued.txt", _prose(token + "a", 30))
    assert message.endswith("indexing has been queued.")
    assert len(private_queue.waiting("default")) == 1

    private_queue.server.stop()  # before any worker took the message
    unsent, message = _upload(member, "during-outage.txt", _prose(token + "b", 30))
    assert "the indexing queue is unreachable; press Retry once it is back" in message
    assert _document(unsent).status == "PENDING"  # stored and listed, waiting for the retry

    private_queue.server.start()  # same folder: the append-only file brings the message back
    [kept] = private_queue.waiting("default")
    assert f'"args":[{queued}]' in kept.replace(" ", "")

    worker = Worker(private_queue.worker_env(), tmp_path / "worker.log")
    try:
        wait_for(lambda: _document(queued).status == "COMPLETED", "the queued document", worker)
        retry_document(actor=member, document_id=unsent)
        wait_for(lambda: _document(unsent).status == "COMPLETED", "the retried document", worker)

        # Redis restarted under a running worker: it reconnects and takes new work.
        private_queue.server.stop()
        private_queue.server.start()
        later, _ = _upload(member, "after-restart.txt", _prose(token + "c", 30))
        wait_for(lambda: _document(later).status == "COMPLETED", "a document sent after the restart", worker)
        # Its follow-up messages (index maintenance) done too: stopped mid-message, a loaded
        # machine's worker could outlast the stop's grace period and leave one unacknowledged.
        wait_for(
            lambda: private_queue.waiting("default") == [] and private_queue.unacked("default") == 0,
            "the queue drained",
            worker,
        )
    finally:
        worker.stop()
    for document_id in (queued, unsent, later):
        _assert_indexed_once(document_id)
    assert private_queue.waiting("default") == [] and private_queue.unacked("default") == 0


# --------------------------------------------------------------------------- PostgreSQL restart


class ScratchPostgres:
    """A PostgreSQL+pgvector of this test's own (pgserver), stopped and started with pg_ctl."""

    def __init__(self, folder: Path) -> None:
        import pgserver

        self.server: Any = pgserver.get_server(str(folder), cleanup_mode="delete")
        self.folder = folder.resolve()
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        self.url = "postgresql+psycopg://" + self.server.get_uri().split("://", 1)[1]

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import, one per binary
        pg_ctl(list(args), pgdata=self.folder, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-w", "stop", "-m", "fast")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.folder / "log"), "start")


@pytest.fixture
def scratch_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScratchPostgres]:
    """The process's engine pointed at a fresh, migrated scratch server; the session's after."""
    from core.platform.schema import upgrade_database

    server = ScratchPostgres(tmp_path / "pg")
    monkeypatch.setenv("DATABASE_URL", server.url)
    get_settings.cache_clear()
    reset_engine()
    try:
        upgrade_database()
        yield server
    finally:
        reset_engine()
        monkeypatch.undo()
        get_settings.cache_clear()
        # pgserver stops only the postmaster it started itself; this one was restarted here.
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.stop()
        server.server.cleanup()


def test_the_app_explains_a_database_outage_and_recovers_without_a_restart(
    scratch_postgres: ScratchPostgres,
) -> None:
    from streamlit.testing.v1 import AppTest

    from core.access.accounts import actor_from_user, insert_user
    from core.chat import create_chat, list_chats
    from core.platform.health import database_problem

    with session_scope() as session:
        actor = actor_from_user(
            session,
            insert_user(session, username="ops", email="ops@example.com", password="correct-horse-9", role_name="user"),
        )
    create_chat(actor=actor, title="Before the outage")
    engine = get_engine()
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30)
    assert database_problem() is None

    scratch_postgres.stop()
    try:
        problem = database_problem()
        assert problem is not None and "cannot reach its database" in problem
        with pytest.raises(OperationalError):
            list_chats(actor=actor)
        app.run()
        assert [error.value for error in app.error] == [problem]
        assert [button.label for button in app.button] == ["Try again"]
    finally:
        scratch_postgres.start()

    # Same process, same engine: the pool's pre-ping replaces the dead connections.
    assert database_problem() is None
    assert get_engine() is engine
    assert [chat.title for chat in list_chats(actor=actor)] == ["Before the outage"]
    create_chat(actor=actor, title="After the outage")

    # A restart nobody noticed (no query while it was down): the pooled connections are dead,
    # and the next call still works because the pool tests each one before handing it out.
    scratch_postgres.stop()
    scratch_postgres.start()
    assert [chat.title for chat in list_chats(actor=actor)] == ["After the outage", "Before the outage"]
    app.run()
    assert not app.error
    assert "Username" in [field.label for field in app.text_input]
