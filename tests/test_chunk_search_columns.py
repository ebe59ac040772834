"""A chunk's search columns are derived from its text by the database, on every write path.

search_vector and search_length were generated columns; they are filled by one trigger now
(the text parsed once: migration 0010). These tests hold the trigger to what generated
columns guaranteed, against a recomputation from the text.
"""

from __future__ import annotations

from sqlalchemy import text

from core.ai.hashing import hashing_embed
from core.documents import write_chunks
from core.documents.chunking import Chunk
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.models import Document

_DERIVED = (
    "SELECT bool_and(search_vector = to_tsvector('quorum_english'::regconfig, content) "
    "AND search_length = quorum_search_length(content)) FROM document_chunks WHERE document_id = :id"
)


def _document() -> int:
    with session_scope() as session:
        document = Document(filename="columns.txt", sha256="c" * 64)
        session.add(document)
        session.flush()
        return document.id


def _chunk(index: int, words: str) -> Chunk:
    return Chunk(index, words, len(words.split()))


def test_bulk_written_chunks_get_the_parse_of_their_text(database: str) -> None:
    document_id = _document()
    texts = ["Budgets were approved for the billing migration.", "Meetings, meetings: the meeting ran late!", ""]
    with session_scope() as session:
        chunks = [_chunk(i, words) for i, words in enumerate(texts)]
        write_chunks(session, document_id, 1, chunks, hashing_embed(texts, get_settings().embedding_dim))
    with session_scope() as session:
        assert session.scalar(text(_DERIVED), {"id": document_id}) is True
        lengths = session.execute(
            text("SELECT chunk_index, search_length FROM document_chunks WHERE document_id = :id ORDER BY 1"),
            {"id": document_id},
        ).all()
    # Every word counts (quorum_english keeps stop words); "meetings, meetings, meeting" is one
    # lexeme at three positions.
    assert [row.search_length for row in lengths] == [7, 6, 0]


def test_a_writer_cannot_set_them_and_an_update_of_the_text_recomputes_them(database: str) -> None:
    document_id = _document()
    dim = get_settings().embedding_dim
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO document_chunks (document_id, generation, chunk_index, content, token_count, "
                "embedding, search_vector, search_length) "
                "VALUES (:id, 1, 0, 'quarterly revenue', 2, :vector, to_tsvector('simple', 'forged'), 99)"
            ),
            {"id": document_id, "vector": str([0.0] * dim)},
        )
    with session_scope() as session:
        assert session.scalar(text(_DERIVED), {"id": document_id}) is True
        # Another column changes: the parse is kept, not redone or forged.
        session.execute(
            text("UPDATE document_chunks SET token_count = 3, search_length = 42 WHERE document_id = :id"),
            {"id": document_id},
        )
    with session_scope() as session:
        assert session.scalar(text(_DERIVED), {"id": document_id}) is True
        session.execute(
            text("UPDATE document_chunks SET content = 'annual revenue targets' WHERE document_id = :id"),
            {"id": document_id},
        )
    with session_scope() as session:
        assert session.scalar(text(_DERIVED), {"id": document_id}) is True
        assert (
            session.scalar(
                text("SELECT search_length FROM document_chunks WHERE document_id = :id"), {"id": document_id}
            )
            == 3
        )


def test_upsert_of_a_rewritten_chunk_reparses_it(database: str) -> None:
    document_id = _document()
    dim = get_settings().embedding_dim
    with session_scope() as session:
        write_chunks(session, document_id, 1, [_chunk(0, "old words here")], hashing_embed(["old"], dim))
    with session_scope() as session:
        write_chunks(session, document_id, 1, [_chunk(0, "entirely new sentence")], hashing_embed(["new"], dim))
    with session_scope() as session:
        assert session.scalar(text(_DERIVED), {"id": document_id}) is True
        vector = session.scalar(
            text("SELECT search_vector::text FROM document_chunks WHERE document_id = :id"), {"id": document_id}
        )
    assert "old" not in vector and "sentenc" in vector
