"""SIGKILL in the middle of a vector index build loses, doubles and hides nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select, text

from core.access.rbac import Actor
from core.documents.vector_segments import INDEX_PREFIX, maintain_vector_index, search_layout, tail_rows
from core.platform.db import get_engine, session_scope
from core.platform.models import Document, DocumentChunk, VectorIndexSegment
from tests.conftest import unique

ROOT = Path(__file__).resolve().parents[2]
ROWS = 3000


def _document_with_chunks(owner: Actor) -> int:
    """A searchable document with ROWS chunks of random vectors, written straight into the tail."""
    with session_scope() as session:
        document = Document(
            filename=f"{unique('bulk')}.txt",
            content_type="text/plain",
            sha256=unique("sha"),
            uploaded_by=owner.id,
            visibility="team",
            status="COMPLETED",
            active_generation=1,
            chunks_total=ROWS,
            chunks_done=ROWS,
        )
        session.add(document)
        session.flush()
        dim = DocumentChunk.__table__.c.embedding.type.dim
        session.execute(
            text(
                "INSERT INTO document_chunks (document_id, generation, chunk_index, content, token_count, embedding) "
                "SELECT :doc, 1, n, 'chunk ' || n, 2, "
                f"(SELECT array_agg(random() - 0.5) FROM generate_series(1, {dim}) WHERE n >= 0)::vector "
                "FROM generate_series(0, :rows - 1) AS n"
            ),
            {"doc": document.id, "rows": ROWS},
        )
        return document.id


def _building() -> bool:
    with get_engine().connect() as connection:
        return bool(connection.scalar(text("SELECT count(*) FROM pg_stat_progress_create_index")))


def test_a_maintenance_run_killed_while_building_leaves_every_chunk_found_once(make_user) -> None:  # type: ignore[no-untyped-def]
    maintain_vector_index(idle=True)  # start from an empty tail
    document = _document_with_chunks(make_user())
    assert tail_rows() >= ROWS
    env = dict(os.environ, QUORUM_VECTOR_TAIL_ROWS="100")
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from core.documents.vector_segments import maintain_vector_index; maintain_vector_index()",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not _building() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _building(), "the index build never started"
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()

    # The killed run's server session may still hold the lock while it finishes; then it is ours.
    deadline = time.monotonic() + 300
    while not maintain_vector_index(idle=True).ran:
        assert time.monotonic() < deadline, "the killed run's lock was never released"
        time.sleep(0.5)

    with session_scope() as session:
        layout = search_layout(session)
        registered = set(session.scalars(select(VectorIndexSegment.index_name)))
        segments = session.scalars(select(DocumentChunk.segment).where(DocumentChunk.document_id == document)).all()
        count = session.scalar(
            select(text("count(*)")).select_from(DocumentChunk).where(DocumentChunk.document_id == document)
        )
    assert count == ROWS  # nothing lost, nothing doubled
    for segment in set(segments):
        assert sum(first <= segment <= last for first, last in layout.indexed) == 1
    with get_engine().connect() as connection:
        present = set(
            connection.scalars(
                text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indrelid = 'document_chunks'::regclass AND c.relname LIKE :p AND i.indisvalid"
                ),
                {"p": INDEX_PREFIX + "%"},
            )
        )
        invalid = connection.scalar(
            text(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = 'document_chunks'::regclass AND NOT i.indisvalid"
            )
        )
    assert present == registered and invalid == 0
    assert tail_rows() == 0
