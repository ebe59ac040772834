"""Alembic owns the schema: up, down, up again, and the models agree with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from core.documents.vector_segments import include_in_autogenerate
from core.platform.db import get_engine
from core.platform.models import Base
from core.platform.schema import alembic_config


@pytest.fixture
def scratch_engine(database: str) -> Iterator[Engine]:
    """An empty database on the same server, dropped afterwards."""
    name = "quorum_migrations_test"
    admin_engine = create_engine(get_engine().url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = create_engine(get_engine().url.set(database=name))
    yield engine
    engine.dispose()
    with admin_engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin_engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(scratch_engine: Engine) -> None:
    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert {
        "users",
        "roles",
        "permissions",
        "role_permissions",
        "documents",
        "document_chunks",
        "transcription_jobs",
        "chats",
        "chat_messages",
        "message_feedback",
        "usage_records",
        "audit_log",
    } <= _tables(scratch_engine)
    with scratch_engine.connect() as conn:
        assert conn.scalar(text("SELECT extname FROM pg_extension WHERE extname = 'vector'")) == "vector"

    with scratch_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert _tables(scratch_engine) <= {"alembic_version"}

    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert "document_chunks" in _tables(scratch_engine)


def test_models_match_migrations(database: str) -> None:
    with get_engine().connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_in_autogenerate}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_indexes_exist(database: str) -> None:
    indexes = {ix["name"] for ix in inspect(get_engine()).get_indexes("document_chunks")}
    assert {"ix_document_chunks_segment", "ix_document_chunks_search_vector"} <= indexes
    # The HNSW indexes are partial, one per registered range of segments (the schema starts
    # with one over the existing rows; maintenance builds and merges the others).
    with get_engine().connect() as conn:
        registered = set(conn.scalars(text("SELECT index_name FROM vector_index_segments")))
    assert registered and registered == {name for name in indexes if name.startswith("ix_chunk_vectors_")}


def test_cascades(database: str, member) -> None:  # type: ignore[no-untyped-def]
    from core.platform.db import session_scope
    from core.platform.models import Chat, ChatMessage, Document, DocumentChunk, MessageFeedback

    with session_scope() as session:
        doc = Document(filename="a.txt", sha256="0" * 64, uploaded_by=member.id)
        session.add(doc)
        session.flush()
        session.add(
            DocumentChunk(
                document_id=doc.id,
                chunk_index=0,
                content="hello",
                token_count=1,
                embedding=[0.0] * Base.metadata.tables["document_chunks"].c.embedding.type.dim,
            )
        )
        chat = Chat(owner_id=member.id)
        session.add(chat)
        session.flush()
        message = ChatMessage(chat_id=chat.id, role="assistant", content="hi")
        session.add(message)
        session.flush()
        session.add(MessageFeedback(message_id=message.id, user_id=member.id, rating="good"))
        doc_id, chat_id, message_id = doc.id, chat.id, message.id
    with session_scope() as session:
        session.execute(text("DELETE FROM documents WHERE id = :id"), {"id": doc_id})
        session.execute(text("DELETE FROM chats WHERE id = :id"), {"id": chat_id})
    with session_scope() as session:
        assert session.scalar(text("SELECT count(*) FROM document_chunks WHERE document_id = :i"), {"i": doc_id}) == 0
        assert session.scalar(text("SELECT count(*) FROM chat_messages WHERE chat_id = :i"), {"i": chat_id}) == 0
        assert (
            session.scalar(text("SELECT count(*) FROM message_feedback WHERE message_id = :i"), {"i": message_id}) == 0
        )


def test_status_constrained(database: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from core.platform.db import session_scope
    from core.platform.models import Document

    with pytest.raises(IntegrityError), session_scope() as session:
        session.add(Document(filename="x", sha256="1" * 64, status="DONE"))
        session.flush()


def test_search_words_migration_recounts_existing_chunks(scratch_engine: Engine) -> None:
    """0010 re-creates the full-text columns of chunks already stored, in quorum_english words,
    and leaves the BM25 statistics equal to a recount (and so does its downgrade)."""
    from sqlalchemy.orm import Session

    from core.documents.term_statistics import counted_term_statistics, stored_term_statistics
    from core.platform.config import get_settings

    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0009")
        document = conn.scalar(
            text("INSERT INTO documents (filename, sha256) VALUES ('status.md', :sha) RETURNING id"), {"sha": "2" * 64}
        )
        vector = "[" + ",".join(["1"] + ["0"] * (get_settings().embedding_dim - 1)) + "]"
        for position, content in enumerate(["The build server is down.", "HIV-positive patients were treated."]):
            conn.execute(
                text(
                    "INSERT INTO document_chunks "
                    "(document_id, generation, chunk_index, content, token_count, embedding) "
                    "VALUES (:d, 1, :i, :c, 5, CAST(:v AS vector))"
                ),
                {"d": document, "i": position, "c": content, "v": vector},
            )
        conn.execute(text("UPDATE documents SET active_generation = 1 WHERE id = :d"), {"d": document})

    def lexemes() -> set[str]:
        with Session(scratch_engine) as session:
            stored, counted = stored_term_statistics(session), counted_term_statistics(session)
            assert stored == counted
            return set(stored.chunks_per_lexeme)

    assert {"down", "hiv-posit"} & lexemes() == {"hiv-posit"}  # 'english': "down" is a stop word
    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0010")
    words = lexemes()
    assert {"the", "is", "down", "hiv", "posit", "build", "server"} <= words and "hiv-posit" not in words
    with scratch_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0009")
    assert "down" not in lexemes()
