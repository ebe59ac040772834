"""Vectors sit in their row, uncompressed (migration 0012): exact scans and index builds read
them in place instead of fetching them from the TOAST table or decompressing them."""

from __future__ import annotations

from sqlalchemy import text

from core.ai.hashing import hashing_embed
from core.documents import write_chunks
from core.documents.chunking import Chunk
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.models import Document


def test_a_written_chunk_keeps_its_vector_whole_in_the_row_and_its_long_text_goes_out(database: str) -> None:
    dim = get_settings().embedding_dim
    long_text = " ".join(f"word{i}" for i in range(1500))  # about 12 KB: too large to stay in the row
    with session_scope() as session:
        document = Document(filename="inline.txt", sha256="d" * 64)
        session.add(document)
        session.flush()
        # A hashing vector is mostly zeros: the default storage would have compressed it.
        write_chunks(session, document.id, 1, [Chunk(0, long_text, 1500)], hashing_embed([long_text], dim))
        document_id = document.id
    with session_scope() as session:
        stored = session.execute(
            text(
                "SELECT pg_column_size(embedding) AS vector_bytes, pg_column_size(content) AS content_bytes, "
                "length(content) AS content_chars FROM document_chunks WHERE document_id = :id"
            ),
            {"id": document_id},
        ).one()
        storage = dict(
            session.execute(
                text(
                    "SELECT attrelid::regclass::text, attstorage FROM pg_attribute "
                    "WHERE (attrelid, attname) IN (('document_chunks'::regclass, 'embedding'), "
                    "('message_feedback'::regclass, 'question_embedding'))"
                )
            ).all()
        )
    assert stored.vector_bytes == 4 * dim + 8  # uncompressed
    assert stored.content_bytes < stored.content_chars  # the text was compressed to make room
    assert storage == {"document_chunks": "p", "message_feedback": "p"}
