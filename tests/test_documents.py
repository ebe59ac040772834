"""Documents end to end on real PostgreSQL+pgvector and Redis: upload, index, re-index, delete."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core.access.rbac import Actor
from core.ai import get_provider
from core.ai.base import TranscriptPiece
from core.documents import (
    UploadOutcome,
    delete_documents,
    document_chunks,
    download_document,
    get_document,
    index_document,
    index_text_document,
    ingest_paths,
    list_documents,
    list_uploaders,
    reindex_document,
    retry_document,
    searchable_documents_clause,
    upload_documents,
    visible_documents_clause,
)
from core.platform.config import get_settings
from core.platform.db import get_engine, session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ProviderError, ProviderRejected
from core.platform.jobs import DOCUMENTS
from core.platform.models import Document, DocumentChunk, TranscriptionJob
from core.platform.storage import get_storage
from tests.conftest import unique
from tests.doc_factory import PNG_BYTES, make_docx, make_image_only_pdf, make_pdf
from tests.job_factory import insert_job

ROOT = Path(__file__).resolve().parent.parent


def named(name: str, data: bytes) -> io.BytesIO:
    """An upload as Streamlit hands it over: a BytesIO with a name (and a size)."""
    stream = io.BytesIO(data)
    stream.name = name  # type: ignore[attr-defined]
    stream.size = len(data)  # type: ignore[attr-defined]
    return stream


def prose(token: str, sentences: int = 40) -> str:
    """Unique, searchable text: every sentence carries `token`."""
    topics = ["budget", "hiring", "roadmap", "security", "vendors", "migration", "customers", "launch"]
    return " ".join(
        f"Sentence {i} about {topics[i % len(topics)]} mentions {token} and the quarterly plan."
        for i in range(sentences)
    )


def upload_one(actor: Actor, name: str, data: bytes, visibility: str = "team") -> int:
    [outcome] = upload_documents(actor=actor, files=[named(name, data)], visibility=visibility)
    assert outcome.status == "accepted", outcome.message
    assert outcome.document_id is not None
    return outcome.document_id


def row(document_id: int) -> Document:
    with session_scope() as session:
        document = session.get(Document, document_id)
        assert document is not None
        session.expunge(document)
        return document


def chunk_rows(document_id: int) -> list[tuple[int, int, int]]:
    """(generation, chunk_index, id) of every stored chunk of a document, in order."""
    with session_scope() as session:
        return [
            (r.generation, r.chunk_index, r.id)
            for r in session.execute(
                select(DocumentChunk.generation, DocumentChunk.chunk_index, DocumentChunk.id)
                .where(DocumentChunk.document_id == document_id)
                .order_by(DocumentChunk.generation, DocumentChunk.chunk_index)
            )
        ]


def searchable_ids(actor: Actor, document_id: int) -> list[int]:
    """Chunk ids a search by `actor` may return for the document (the retrieval join)."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(DocumentChunk.id)
                .join(
                    Document,
                    (Document.id == DocumentChunk.document_id)
                    & (DocumentChunk.generation == Document.active_generation),
                )
                .where(Document.id == document_id, searchable_documents_clause(actor))
                .order_by(DocumentChunk.chunk_index)
            )
        )


def age_heartbeat(document_id: int) -> None:
    """Make a run's heartbeat look older than job_stale_after_seconds (time passing)."""
    with session_scope() as session:
        session.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(heartbeat_at=func.now() - timedelta(hours=1), started_at=func.now() - timedelta(hours=1))
        )


@pytest.fixture
def services(database: str, redis_server: str) -> None:
    """Real PostgreSQL (migrated) and real Redis for enqueue."""


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(get_settings(), "embedding_batch_size", 4)
    return 4


class EmbedSpy:
    """Counts embed calls and texts; hooks run with the 1-based call number before each call."""

    def __init__(self) -> None:
        self.hooks: list[Callable[[int], None]] = []
        self.calls = 0
        self.texts = 0


@pytest.fixture
def embed_hook(monkeypatch: pytest.MonkeyPatch) -> EmbedSpy:
    provider = get_provider()
    original = provider.embed
    spy = EmbedSpy()

    def embed(texts: Any, *, usage: Any) -> list[list[float]]:
        spy.calls += 1
        spy.texts += len(texts)
        for hook in spy.hooks:
            hook(spy.calls)
        return original(texts, usage=usage)

    monkeypatch.setattr(provider, "embed", embed)
    return spy


# ---------------------------------------------------------------------------- upload


def test_a_mixed_batch_gets_one_clear_outcome_per_file_and_the_rest_goes_on(services: None, member: Actor) -> None:
    token = unique("mix")

    class HugeUpload(io.BytesIO):
        """Says it is 60 MB; reading it would fail the test (size is checked first)."""

        name = "huge.pdf"
        size = 60 * 1024 * 1024

        def read(self, *args: Any) -> bytes:
            raise AssertionError("an oversized upload was read")

    files = [
        named("plan.pdf", make_pdf([prose(token, 5), "Second page about " + token])),
        named("notes.docx", make_docx([("h1", "Notes"), ("p", prose(token, 3))])),
        named("readme.txt", prose(token, 2).encode()),
        named("guide.md", f"# Guide\n\n{prose(token, 2)}".encode()),
        named("page.html", f"<h1>Page</h1><p>{prose(token, 2)}</p>".encode()),
        named("table.csv", f"name,notes\nann,{token}\n".encode()),
        named("photo.pdf", PNG_BYTES),
        named("empty.txt", b""),
        HugeUpload(),
        named("tool.exe", b"MZ\x90\x00" + token.encode()),
    ]
    outcomes = upload_documents(actor=member, files=files, visibility="team")
    assert [o.status for o in outcomes] == ["accepted"] * 6 + ["rejected"] * 4
    assert [o.filename for o in outcomes] == [f.name for f in files]  # type: ignore[attr-defined]
    assert "photo.pdf: named .pdf but the content is a PNG file" in outcomes[6].message
    assert outcomes[7].message == "empty.txt: the file is empty."
    assert outcomes[8].message == "huge.pdf: the file is 60.0 MB; the limit is 50 MB."
    assert ".exe files are not supported" in outcomes[9].message

    for outcome in outcomes[:6]:
        assert outcome.document_id is not None
        assert row(outcome.document_id).status == "PENDING"
        index_document(outcome.document_id)
        document = row(outcome.document_id)
        assert (document.status, document.error) == ("COMPLETED", None)
        assert document.chunks_total == document.chunks_done > 0
        assert document.active_generation == 1

    pdf_chunks = document_chunks(actor=member, document_id=outcomes[0].document_id or 0)
    assert [c.page_number for c in pdf_chunks] == [1, 2]
    docx_chunks = document_chunks(actor=member, document_id=outcomes[1].document_id or 0)
    assert docx_chunks[0].heading == "Notes"
    csv_chunks = document_chunks(actor=member, document_id=outcomes[5].document_id or 0)
    assert csv_chunks[0].heading == "Columns: name, notes" and token in csv_chunks[0].content


def test_non_seekable_streams_are_spooled_and_still_size_checked(services: None, member: Actor) -> None:
    class Pipe:
        name = "stream.txt"

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._data.read(size)

    token = unique("pipe")
    [ok] = upload_documents(actor=member, files=[Pipe(prose(token, 3).encode())])
    assert ok.status == "accepted"
    too_big = Pipe(b"a" * (get_settings().max_document_bytes + 10))
    [refused] = upload_documents(actor=member, files=[too_big])
    assert refused.status == "rejected" and "the limit is 50 MB" in refused.message


def test_an_unreadable_upload_is_refused_and_the_batch_goes_on(services: None, member: Actor) -> None:
    class Unreadable(io.BytesIO):
        name = "broken.txt"

        def read(self, *args: Any) -> bytes:
            raise OSError("the connection was reset")

    good = named("fine.txt", prose(unique("fine"), 3).encode())
    broken, fine = upload_documents(actor=member, files=[Unreadable(b"x" * 10), good])
    assert broken.status == "rejected"
    assert broken.message == "broken.txt: could not be stored (OSError: the connection was reset). Try again."
    assert fine.status == "accepted"


def test_identical_content_points_to_the_existing_document(services: None, make_user: Any) -> None:
    alice, bob = make_user(), make_user()
    data = prose(unique("dup"), 5).encode()
    first = upload_one(alice, "first.txt", data)
    [again] = upload_documents(actor=bob, files=[named("copy.txt", data)])
    assert again.status == "duplicate" and again.document_id == first
    assert "already in the knowledge base as “first.txt”" in again.message

    # A private document of someone else is not revealed: the content is stored again.
    secret = prose(unique("secret"), 5).encode()
    private_id = upload_one(alice, "secret.txt", secret, visibility="private")
    [other] = upload_documents(actor=bob, files=[named("mine.txt", secret)], visibility="private")
    assert other.status == "accepted" and other.document_id != private_id


def test_upload_needs_ingest_permission_and_a_known_visibility(services: None, member: Actor) -> None:
    reader = Actor(id=member.id, username=member.username, role="reader", permissions=frozenset({"read_documents"}))
    with pytest.raises(PermissionDenied):
        upload_documents(actor=reader, files=[named("a.txt", b"hello")])
    with pytest.raises(InvalidInput):
        upload_documents(actor=member, files=[named("a.txt", b"hello")], visibility="public")


# ---------------------------------------------------------------------------- visibility


def test_private_documents_are_visible_to_uploader_and_admins_only(
    services: None, make_user: Any, admin: Actor
) -> None:
    owner, colleague = make_user(), make_user()
    token = unique("private")
    private_id = upload_one(owner, "private.txt", prose(token, 5).encode(), visibility="private")
    team_id = upload_one(owner, "team.txt", prose(unique("team"), 5).encode(), visibility="team")
    index_document(private_id)
    index_document(team_id)

    def listed(actor: Actor) -> set[int]:
        return {d.id for d in list_documents(actor=actor, uploader_id=owner.id)}

    assert listed(owner) == {private_id, team_id}
    assert listed(admin) == {private_id, team_id}
    assert listed(colleague) == {team_id}
    for action in (get_document, document_chunks, download_document):
        with pytest.raises(NotFound):
            action(actor=colleague, document_id=private_id)  # type: ignore[operator]
    assert searchable_ids(colleague, private_id) == []
    assert len(searchable_ids(owner, private_id)) == row(private_id).chunks_total
    assert len(searchable_ids(admin, private_id)) == row(private_id).chunks_total

    # Without read_documents only one's own documents are visible.
    no_read = Actor(id=colleague.id, username=colleague.username, role="x", permissions=frozenset())
    assert listed(no_read) == set()
    with session_scope() as session:
        mine = session.scalars(select(Document.id).where(visible_documents_clause(owner), Document.id == private_id))
        assert list(mine) == [private_id]


def test_the_retrieval_search_applies_the_visibility_rule_in_its_sql(
    services: None, make_user: Any, admin: Actor
) -> None:
    from core.chat.retrieval import retrieve

    owner, colleague = make_user(), make_user()
    token = unique("zebra")
    private_id = upload_one(owner, "zebra.txt", prose(token, 5).encode(), visibility="private")
    index_document(private_id)
    assert retrieve(actor=owner, query=token)[0].document_id == private_id
    assert private_id in {c.document_id for c in retrieve(actor=admin, query=token)}
    assert private_id not in {c.document_id for c in retrieve(actor=colleague, query=token)}


# ---------------------------------------------------------------------------- the job


def test_indexing_twice_or_redelivered_leaves_exactly_one_set(services: None, member: Actor) -> None:
    document_id = upload_one(member, "twice.txt", prose(unique("twice"), 120).encode())
    index_document(document_id)
    first = chunk_rows(document_id)
    index_document(document_id)  # redelivered after completion: nothing to do
    assert chunk_rows(document_id) == first
    # A message delivered again while the row is (again) PENDING rebuilds, still one set.
    with session_scope() as session:
        session.execute(update(Document).where(Document.id == document_id).values(status="PENDING"))
    index_document(document_id)
    index_document(document_id)
    again = chunk_rows(document_id)
    assert [(g, i) for g, i, _ in again] == [(2, i) for i in range(len(first))]
    assert row(document_id).chunks_total == len(first) > 3


def test_a_worker_killed_mid_way_is_resumed_into_one_set(
    services: None, member: Actor, embed_hook: EmbedSpy, small_batches: int
) -> None:
    document_id = upload_one(member, "killed.txt", prose(unique("kill"), 600).encode())
    # A real kill: another process indexes with the same database and dies (os._exit) after 2 batches.
    env = {
        **os.environ,
        "DATABASE_URL": get_engine().url.render_as_string(hide_password=False),
        "QUORUM_EMBEDDING_BATCH_SIZE": str(small_batches),
    }
    script = (
        "import os, sys\n"
        "from core.documents.indexing import index_document\n"
        "def die(done):\n"
        "    if done >= 8:\n"
        "        os._exit(9)\n"
        "index_document(int(sys.argv[1]), after_batch=die)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(document_id)], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert result.returncode == 9, result.stderr.decode()[-2000:]
    killed = row(document_id)
    assert killed.status == "INDEXING" and killed.chunks_done == 8
    assert len(chunk_rows(document_id)) == 8

    index_document(document_id)  # the dead run's heartbeat is fresh: left alone
    assert row(document_id).status == "INDEXING"

    age_heartbeat(document_id)
    index_document(document_id)
    done = row(document_id)
    assert done.status == "COMPLETED" and done.attempts == 2
    rows = chunk_rows(document_id)
    assert [(g, i) for g, i, _ in rows] == [(1, i) for i in range(done.chunks_total)]
    # The resumed run embedded only what the killed one had not written.
    assert embed_hook.texts == done.chunks_total - 8


def test_an_error_mid_way_hands_the_row_back_and_the_retry_finishes_one_set(
    services: None, member: Actor, embed_hook: EmbedSpy, small_batches: int
) -> None:
    document_id = upload_one(member, "flaky.txt", prose(unique("flaky"), 300).encode())

    def outage(call: int) -> None:
        if call == 3:
            raise ProviderError("The AI provider is unreachable.")

    embed_hook.hooks.append(outage)
    embed_hook.calls = 0
    with pytest.raises(ProviderError):
        index_document(document_id)
    interrupted = row(document_id)
    assert interrupted.status == "PENDING"
    attempts = get_settings().job_max_attempts
    assert interrupted.error == f"The AI provider is unreachable. Retrying automatically (attempt 1 of {attempts})."
    assert len(chunk_rows(document_id)) == 2 * small_batches

    embed_hook.hooks.clear()
    index_document(document_id)
    done = row(document_id)
    assert done.status == "COMPLETED" and done.error is None
    assert [(g, i) for g, i, _ in chunk_rows(document_id)] == [(1, i) for i in range(done.chunks_total)]


def _pids_blocked_by(connection: Any, pid: int) -> list[int]:
    return [
        int(blocked)
        for (blocked,) in connection.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (pid,)
        )
    ]


def test_a_swap_queued_behind_another_writer_completes_without_a_lost_claim(
    services: None, member: Actor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Swaps queue on the term statistics' totals row. A heartbeat that falls while this run's
    swap waits there must not report the run's own COMPLETED row as a lost claim (issue 16:
    nine such reports in a 1,000-document ingest where every document took one attempt)."""
    interval = 0.05
    monkeypatch.setattr(get_settings(), "job_heartbeat_seconds", interval)
    document_id = upload_one(member, "queued-swap.txt", prose(unique("swapq"), 40).encode())
    indexing = threading.Thread(target=index_document, args=(document_id,))
    with get_engine().connect() as other_writer, get_engine().connect() as connection:
        watcher = connection.execution_options(isolation_level="AUTOCOMMIT")
        # Another document's swap, holding the writers' lock until it ends.
        other_writer.exec_driver_sql("UPDATE search_corpus_stats SET chunks = chunks WHERE id = 1")
        writer_pid = int(other_writer.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        with caplog.at_level(logging.INFO, logger="core.platform.jobs"):
            indexing.start()
            deadline = time.monotonic() + 60
            while not (swap := _pids_blocked_by(watcher, writer_pid)):  # the run's swap waits in the queue
                assert indexing.is_alive() and time.monotonic() < deadline, "the swap never queued"
                time.sleep(interval / 5)
            # Several heartbeats fall while it waits; one that went for the row waits behind the swap.
            beats = time.monotonic() + 40 * interval
            while time.monotonic() < beats and not _pids_blocked_by(watcher, swap[0]):
                time.sleep(interval / 5)
            other_writer.rollback()
            indexing.join(timeout=60)
    assert not indexing.is_alive()
    done = row(document_id)
    assert (done.status, done.attempts, done.error) == ("COMPLETED", 1, None)
    assert [(g, i) for g, i, _ in chunk_rows(document_id)] == [(1, i) for i in range(done.chunks_total)]
    assert not [r.getMessage() for r in caplog.records if "claim lost" in r.getMessage()]


def test_unreadable_content_fails_with_a_readable_error_and_can_be_retried(services: None, member: Actor) -> None:
    document_id = upload_one(member, "scan.pdf", make_image_only_pdf() + unique().encode())
    index_document(document_id)
    failed = row(document_id)
    assert failed.status == "FAILED"
    assert failed.error is not None and "no extractable text" in failed.error
    assert chunk_rows(document_id) == []
    listed = get_document(actor=member, document_id=document_id)
    assert listed.can_manage and not listed.searchable

    retry_document(actor=member, document_id=document_id)
    assert row(document_id).status == "PENDING"
    with pytest.raises(Conflict):
        reindex_document(actor=member, document_id=document_id)  # already queued


def test_reindex_builds_beside_the_old_chunks_and_a_failure_leaves_them(
    services: None, member: Actor, embed_hook: EmbedSpy, small_batches: int
) -> None:
    document_id = upload_one(member, "reindex.txt", prose(unique("reidx"), 400).encode())
    index_document(document_id)
    old = chunk_rows(document_id)
    old_ids = [chunk_id for _, _, chunk_id in old]
    assert {g for g, _, _ in old} == {1}

    seen_during_build: list[list[int]] = []

    def refuse_third(call: int) -> None:
        seen_during_build.append(searchable_ids(member, document_id))
        if call == 3:
            raise ProviderRejected("The embedding model was refused: unknown model.")

    embed_hook.hooks.append(refuse_third)
    embed_hook.calls = 0
    reindex_document(actor=member, document_id=document_id)
    assert row(document_id).status == "PENDING"
    assert searchable_ids(member, document_id) == old_ids  # queued: still searchable
    index_document(document_id)

    # Old chunks were the searchable ones throughout, even with new ones half written.
    assert seen_during_build == [old_ids] * 3
    failed = row(document_id)
    assert failed.status == "FAILED" and failed.active_generation == 1
    assert failed.error == "The embedding model was refused: unknown model."
    assert chunk_rows(document_id) == old  # intact, and the half-built generation is gone
    assert searchable_ids(member, document_id) == old_ids

    embed_hook.hooks.clear()
    retry_document(actor=member, document_id=document_id)
    index_document(document_id)
    swapped = row(document_id)
    assert swapped.status == "COMPLETED" and swapped.active_generation == 2
    new = chunk_rows(document_id)
    assert [(g, i) for g, i, _ in new] == [(2, i) for i in range(len(old))]
    assert searchable_ids(member, document_id) == [chunk_id for _, _, chunk_id in new]


def test_search_keeps_finding_a_document_while_it_is_reindexed(services: None, member: Actor) -> None:
    from core.chat.retrieval import retrieve

    token = unique("stay")
    document_id = upload_one(member, "stay.txt", prose(token, 20).encode())
    index_document(document_id)
    reindex_document(actor=member, document_id=document_id)
    assert document_id in {c.document_id for c in retrieve(actor=member, query=token)}


def test_reindex_and_retry_need_the_uploader_or_an_admin(services: None, make_user: Any, admin: Actor) -> None:
    owner, colleague = make_user(), make_user()
    document_id = upload_one(owner, "shared.txt", prose(unique("perm"), 5).encode())
    index_document(document_id)
    with pytest.raises(PermissionDenied):
        reindex_document(actor=colleague, document_id=document_id)
    with pytest.raises(Conflict):
        retry_document(actor=admin, document_id=document_id)  # completed: re-index instead
    reindex_document(actor=admin, document_id=document_id)
    assert row(document_id).status == "PENDING"


def test_delete_removes_row_chunks_file_and_search_results(services: None, member: Actor, admin: Actor) -> None:
    from core.chat.retrieval import retrieve

    token = unique("gone")
    document_id = upload_one(member, "gone.txt", prose(token, 20).encode())
    index_document(document_id)
    key = row(document_id).storage_key
    assert key and get_storage().exists(key)
    assert document_id in {c.document_id for c in retrieve(actor=member, query=token)}

    with pytest.raises(PermissionDenied):
        delete_documents(actor=member, document_ids=[document_id])
    assert delete_documents(actor=admin, document_ids=[document_id, 10**9]) == 1
    with session_scope() as session:
        assert session.get(Document, document_id) is None
    assert chunk_rows(document_id) == []
    assert not get_storage().exists(key)
    assert document_id not in {c.document_id for c in retrieve(actor=member, query=token)}
    assert document_id not in {d.id for d in list_documents(actor=admin)}
    assert delete_documents(actor=admin, document_ids=[document_id]) == 0  # idempotent


# ---------------------------------------------------------------------------- listing and download


def test_listing_filters(services: None, make_user: Any, admin: Actor) -> None:
    uploader = make_user()
    token = unique("filt")
    a = upload_one(uploader, f"{token}_alpha%.txt", prose(token + "a", 3).encode())
    b = upload_one(uploader, f"{token}-beta.md", f"# B\n\n{prose(token + 'b', 3)}".encode())
    index_document(a)

    def ids(**filters: Any) -> list[int]:
        return [d.id for d in list_documents(actor=admin, uploader_id=uploader.id, **filters)]

    assert ids() == [b, a]  # newest first
    assert ids(status="COMPLETED") == [a]
    assert ids(status="PENDING") == [b]
    assert ids(document_type="general_document") == [b, a]
    assert ids(document_type="meeting_minutes") == []
    assert ids(filename_contains="ALPHA%") == [a]  # case-insensitive, % taken literally
    assert ids(filename_contains=f"{token}_") == [a]  # _ taken literally
    today = datetime.now(UTC).date()
    assert ids(date_from=today, date_to=today) == [b, a]
    assert ids(date_to=today - timedelta(days=1)) == []
    assert ids(date_from=date(2000, 1, 1), date_to=today - timedelta(days=2)) == []
    assert (uploader.id, uploader.username) in list_uploaders(actor=admin)
    with pytest.raises(InvalidInput):
        list_documents(actor=admin, status="DONE")
    info = list_documents(actor=admin, uploader_id=uploader.id, status="COMPLETED")[0]
    assert (info.uploader, info.chunks_done, info.searchable, info.can_delete) == (
        uploader.username,
        info.chunks_total,
        True,
        True,
    )


def test_download_returns_the_original_with_an_inert_content_type(services: None, member: Actor) -> None:
    pdf = make_pdf([prose(unique("dl"), 3)])
    pdf_id = upload_one(member, "report.pdf", pdf)
    html = f"<h1>Hi</h1><script>alert(1)</script><p>{unique('dl')}</p>".encode()
    html_id = upload_one(member, "page.html", html)
    download = download_document(actor=member, document_id=pdf_id)
    assert (download.filename, download.content_type, download.data) == ("report.pdf", "application/pdf", pdf)
    download = download_document(actor=member, document_id=html_id)
    assert (download.content_type, download.data) == ("application/octet-stream", html)


# ---------------------------------------------------------------------------- the actor through Redis


def test_the_dramatiq_actor_indexes_through_redis_and_redelivery_adds_nothing(services: None, member: Actor) -> None:
    import dramatiq

    from workers import document_actors

    broker = dramatiq.get_broker()
    broker.flush_all()
    document_id = upload_one(member, "queued.txt", prose(unique("queue"), 80).encode())
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while row(document_id).status != "COMPLETED" and time.monotonic() < deadline:
            time.sleep(0.1)
        first = chunk_rows(document_id)
        assert row(document_id).status == "COMPLETED" and first
        # The same message delivered twice more (a redelivery after a lost ack).
        document_actors.index_document.send(document_id)
        document_actors.index_document.send(document_id)
        broker.join("default", timeout=60_000)
        worker.join()
    finally:
        worker.stop()
    assert chunk_rows(document_id) == first
    assert document_actors.index_document.actor_name == DOCUMENTS.actor_name
    assert document_actors.index_document.options["max_retries"] == get_settings().job_max_attempts - 1
    assert document_actors.index_document.options["throws"]


# ---------------------------------------------------------------------------- transcripts and minutes


def test_transcript_and_minutes_documents_are_indexed_once_and_refreshed_on_edit(services: None, member: Actor) -> None:
    token = unique("standup")
    segments = [
        {"start": i * 5.0, "end": i * 5.0 + 4.0, "text": f"Point {i} about {token} and the release.", "speaker": "A"}
        for i in range(120)
    ]
    job_id = insert_job(
        member, segments=segments, filename="standup.mp3", minutes_markdown=f"# Decisions\n\nShip {token} Friday."
    )
    transcript_id = index_text_document(job_id=job_id, document_type="full_transcript", index_now=True)
    minutes_id = index_text_document(job_id=job_id, document_type="meeting_minutes", index_now=True)
    assert transcript_id and minutes_id and transcript_id != minutes_id

    transcript = row(transcript_id)
    assert (transcript.status, transcript.document_type, transcript.filename) == (
        "COMPLETED",
        "full_transcript",
        "standup transcript.txt",
    )
    chunks = document_chunks(actor=member, document_id=transcript_id)
    assert chunks[0].start_seconds == 0.0 and chunks[-1].end_seconds == segments[-1]["end"]
    assert all(c.start_seconds is not None and c.end_seconds is not None for c in chunks)
    text = download_document(actor=member, document_id=transcript_id)
    assert text.content_type.startswith("text/plain")
    assert text.data.decode().startswith(f"[0:00] A: Point 0 about {token}")

    # The same content again: same document, nothing rebuilt.
    before = chunk_rows(transcript_id)
    assert index_text_document(job_id=job_id, document_type="full_transcript", index_now=True) == transcript_id
    assert chunk_rows(transcript_id) == before

    # Minutes edited: the same document is re-indexed as a new generation.
    old_key = row(minutes_id).storage_key
    with session_scope() as session:
        session.execute(
            update(TranscriptionJob)
            .where(TranscriptionJob.id == job_id)
            .values(minutes_markdown=f"# Decisions\n\nShip {token} Monday instead.")
        )
    assert index_text_document(job_id=job_id, document_type="meeting_minutes", index_now=True) == minutes_id
    minutes = row(minutes_id)
    assert minutes.status == "COMPLETED" and minutes.active_generation == 2
    assert old_key and not get_storage().exists(old_key)
    [chunk] = document_chunks(actor=member, document_id=minutes_id)
    assert "Monday" in chunk.content and chunk.heading == "Decisions"

    # Pieces passed explicitly (the transcription worker's way), private like their job.
    private_job = insert_job(member, visibility="private")
    explicit = index_text_document(
        job_id=private_job,
        document_type="full_transcript",
        title="Board call",
        sections_or_pieces=[TranscriptPiece(0.0, 2.0, f"Hello {token}."), TranscriptPiece(2.0, 4.0, "Bye.")],
        index_now=True,
    )
    assert explicit is not None
    board = row(explicit)
    assert (board.filename, board.visibility, board.status) == ("Board call transcript.txt", "private", "COMPLETED")
    assert index_text_document(job_id=insert_job(member), document_type="meeting_minutes") is None  # no minutes


# ---------------------------------------------------------------------------- command line


def test_ingest_paths_runs_the_pipeline_for_files_and_folders(services: None, member: Actor, tmp_path: Path) -> None:
    token = unique("cli")
    # The folder given lives under a dot-directory (like ~/.data/docs): only what is
    # hidden inside it is skipped.
    tmp_path = tmp_path / ".data"
    (tmp_path / "docs" / ".git").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text(f"# A\n\n{prose(token + 'a', 4)}")
    (tmp_path / "docs" / ".hidden.txt").write_text("skip me")
    (tmp_path / "docs" / ".git" / "config.txt").write_text("skip me too")
    (tmp_path / "b.txt").write_text(prose(token + "b", 4))
    (tmp_path / "bad.pdf").write_bytes(PNG_BYTES)
    results = ingest_paths(
        actor=member,
        paths=[tmp_path / "docs", tmp_path / "b.txt", tmp_path / "bad.pdf", tmp_path / "missing.txt"],
        visibility="private",
    )
    assert [Path(r.path).name for r in results] == ["a.md", "b.txt", "bad.pdf", "missing.txt"]
    assert [(r.outcome.status, r.status) for r in results] == [
        ("accepted", "COMPLETED"),
        ("accepted", "COMPLETED"),
        ("rejected", None),
        ("rejected", None),
    ]
    assert all(r.chunks > 0 for r in results[:2])
    assert row(results[0].outcome.document_id or 0).visibility == "private"
    assert isinstance(results[2].outcome, UploadOutcome) and "PNG" in results[2].outcome.message
