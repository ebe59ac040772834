"""BM25 term statistics stay equal to a recount from scratch through every kind of write.

Real PostgreSQL: the counts are kept by triggers in the writing transactions, so each test
drives the real write paths (indexing, re-index with more or fewer chunks, a failed
re-index, delete, cascades, direct writes) and compares the stored counts with
counted_term_statistics, which recounts the searchable chunks themselves.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from core.access.rbac import Actor
from core.ai.hashing import hashing_embed
from core.documents import delete_documents, index_document, reindex_document, retry_document, write_chunks
from core.documents.chunking import Chunk
from core.documents.term_statistics import (
    counted_term_statistics,
    recount_term_statistics,
    stored_term_statistics,
)
from core.platform.config import get_settings
from core.platform.db import get_engine, session_scope
from core.platform.errors import ProviderRejected
from core.platform.models import Document
from tests.conftest import unique
from tests.test_documents import EmbedSpy, embed_hook, prose, upload_one  # noqa: F401  (fixture)


@pytest.fixture
def services(database: str, redis_server: str) -> None:
    """Real PostgreSQL (migrated) and real Redis for enqueue."""


def assert_exact() -> None:
    with session_scope() as session:
        stored = stored_term_statistics(session)
        counted = counted_term_statistics(session)
    assert (stored.chunks, stored.total_length) == (counted.chunks, counted.total_length)
    assert stored.chunks_per_lexeme == counted.chunks_per_lexeme


def lexeme_chunks(lexeme: str) -> int:
    with session_scope() as session:
        return stored_term_statistics(session).chunks_per_lexeme.get(lexeme, 0)


def test_inserts_reindex_with_more_and_fewer_chunks_and_delete_keep_the_counts_exact(
    services: None, member: Actor, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = unique("stat")
    first = upload_one(member, "stats-a.txt", prose(token, 120).encode())
    second = upload_one(member, "stats-b.txt", prose(unique("stat"), 60).encode())
    index_document(first)
    index_document(second)
    assert_exact()
    with session_scope() as session:
        chunks_before = session.scalar(
            text("SELECT count(*) FROM document_chunks WHERE document_id = :d"), {"d": first}
        )
    assert lexeme_chunks(token) == chunks_before  # every chunk of the first document holds the token

    settings = get_settings()
    monkeypatch.setattr(settings, "chunk_size_tokens", 120)  # re-index into more chunks
    monkeypatch.setattr(settings, "chunk_overlap_tokens", 10)
    reindex_document(actor=member, document_id=first)
    index_document(first)
    assert_exact()
    more = lexeme_chunks(token)
    assert more > chunks_before

    monkeypatch.setattr(settings, "chunk_size_tokens", 400)  # and back into fewer chunks
    reindex_document(actor=member, document_id=first)
    index_document(first)
    assert_exact()
    assert 0 < lexeme_chunks(token) < more

    delete_documents(actor=admin, document_ids=[first])
    assert_exact()
    assert lexeme_chunks(token) == 0  # a lexeme no chunk holds any more is dropped
    delete_documents(actor=admin, document_ids=[second])
    assert_exact()


def test_a_failed_reindex_changes_nothing(services: None, member: Actor, embed_hook: EmbedSpy) -> None:  # noqa: F811
    document_id = upload_one(member, "stats-fail.txt", prose(unique("fail"), 200).encode())
    index_document(document_id)
    with session_scope() as session:
        before = stored_term_statistics(session)

    def refuse_second(call: int) -> None:
        if call == 2:
            raise ProviderRejected("refused")

    monkey_batches = get_settings().embedding_batch_size
    get_settings().embedding_batch_size = 2
    try:
        embed_hook.hooks.append(refuse_second)
        embed_hook.calls = 0
        reindex_document(actor=member, document_id=document_id)
        index_document(document_id)  # one batch of the new generation written, then FAILED
    finally:
        get_settings().embedding_batch_size = monkey_batches
    with session_scope() as session:
        assert session.get(Document, document_id).status == "FAILED"  # type: ignore[union-attr]
        assert stored_term_statistics(session) == before
    assert_exact()
    embed_hook.hooks.clear()
    retry_document(actor=member, document_id=document_id)
    index_document(document_id)
    assert_exact()


def _bare_document(owner: int, words: str, chunks: int, *, generation: int = 1) -> int:
    """A document with `chunks` chunks written in `generation`, not yet searchable."""
    with session_scope() as session:
        document = Document(
            filename=f"{unique('bare')}.txt", sha256=hashlib.sha256(unique().encode()).hexdigest(), uploaded_by=owner
        )
        session.add(document)
        session.flush()
        texts = [f"{words} chunk {i} {unique('w')}" for i in range(chunks)]
        write_chunks(
            session,
            document.id,
            generation,
            [Chunk(index=i, text=t, token_count=len(t.split())) for i, t in enumerate(texts)],
            hashing_embed(texts, get_settings().embedding_dim).tolist(),
        )
        return document.id


def test_direct_writes_updates_and_cascades_are_counted(services: None, member: Actor) -> None:
    _bare_document(member.id, "never searchable draft", 2, generation=0)
    assert_exact()  # generation 0 of a document with no active generation: never counted
    document_id = _bare_document(member.id, "alpha beta gamma", 3)
    assert_exact()  # written, not searchable: not counted
    with session_scope() as session:
        session.execute(text("UPDATE documents SET active_generation = 1 WHERE id = :d"), {"d": document_id})
    assert_exact()
    with session_scope() as session:  # a write straight into the active generation
        write_chunks(
            session,
            document_id,
            1,
            [Chunk(index=7, text="delta epsilon zeta", token_count=3)],
            hashing_embed(["delta epsilon zeta"], get_settings().embedding_dim).tolist(),
        )
    assert_exact()
    with session_scope() as session:  # edited in place, and one removed
        session.execute(
            text("UPDATE document_chunks SET content = content || ' omega' WHERE document_id = :d AND chunk_index = 0"),
            {"d": document_id},
        )
        session.execute(
            text("DELETE FROM document_chunks WHERE document_id = :d AND chunk_index = 1"), {"d": document_id}
        )
    assert_exact()
    with session_scope() as session:  # a rolled-back write leaves no trace
        session.execute(text("UPDATE documents SET active_generation = 0 WHERE id = :d"), {"d": document_id})
        session.rollback()
    assert_exact()
    with session_scope() as session:  # the owner's deletion cascades to the document
        session.execute(text("DELETE FROM documents WHERE uploaded_by = :u"), {"u": member.id})
    assert_exact()


def _backend_waits_for_lock(pid: int) -> bool:
    with get_engine().connect() as conn:
        return bool(
            conn.scalar(text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"), {"p": pid})
        )


def test_two_concurrent_swaps_queue_on_the_totals_row_and_stay_exact(services: None, member: Actor) -> None:
    # The same words in both documents, so the two swaps touch the same lexeme rows.
    first = _bare_document(member.id, "shared vocabulary quarterly roadmap budget", 20)
    second = _bare_document(member.id, "budget roadmap quarterly vocabulary shared", 20)
    engine = get_engine()
    outcome: dict[str, Any] = {}

    with engine.connect() as holder:
        holder.execute(text("UPDATE documents SET active_generation = 1 WHERE id = :d"), {"d": first})

        def swap_second() -> None:
            try:
                with engine.begin() as conn:
                    outcome["pid"] = conn.scalar(text("SELECT pg_backend_pid()"))
                    conn.execute(text("UPDATE documents SET active_generation = 1 WHERE id = :d"), {"d": second})
                outcome["ok"] = True
            except Exception as error:  # noqa: BLE001  (surfaced by the assertion below)
                outcome["error"] = error

        thread = threading.Thread(target=swap_second)
        thread.start()
        deadline = time.monotonic() + 30
        while not (outcome.get("pid") and _backend_waits_for_lock(outcome["pid"])):
            assert time.monotonic() < deadline, "the second swap never waited for the first"
            time.sleep(0.05)
        holder.commit()  # the first swap commits; the second goes on with its counts
    thread.join(timeout=30)
    assert outcome.get("ok"), outcome.get("error")
    assert_exact()


def test_parallel_indexing_of_many_documents_stays_exact(services: None, member: Actor) -> None:
    ids = [upload_one(member, f"par-{i}.txt", prose(unique("par"), 30).encode()) for i in range(8)]
    errors: list[BaseException] = []

    def index_all(part: list[int]) -> None:
        try:
            for document_id in part:
                index_document(document_id)
        except BaseException as error:  # noqa: BLE001  (asserted below)
            errors.append(error)

    threads = [threading.Thread(target=index_all, args=(ids[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert_exact()


def test_recount_repairs_counts_edited_by_hand(services: None, member: Actor) -> None:
    upload = upload_one(member, "stats-repair.txt", prose(unique("fix"), 10).encode())
    index_document(upload)
    with session_scope() as session:
        session.execute(text("UPDATE search_term_stats SET chunks = chunks + 5"))
        session.execute(text("UPDATE search_corpus_stats SET chunks = chunks - 1"))
    with session_scope() as session:
        recount_term_statistics(session)
    assert_exact()
