"""BM25 term statistics of the searchable chunks, kept exact by the database itself.

- document_chunks.search_length: how many words (lexeme positions) its search_vector holds;
- search_term_stats: per lexeme, how many searchable chunks contain it;
- search_corpus_stats: one row, searchable chunks and their total length;
- embedding_space.vector_weight: the vector arm's weight in rank fusion, chosen by the embedder.

"Searchable" means a chunk of its document's active generation. The counts change only
through one function, quorum_apply_term_statistics, which triggers call in the same
transaction as every write that changes the searchable set: chunks inserted, updated or
deleted in an active generation (a direct write, or the tail a re-index cuts off), a
generation swap (documents.active_generation moving), a document deleted (directly or by a
cascade from its recording or owner), and TRUNCATE (a full recount). Chunks written into a
generation that is not yet active cost one empty join and take no lock, so parallel
indexing does not contend until the swap.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Immutable, so a generated column may use it: the words a chunk's search_vector counts.
_SEARCH_LENGTH_FUNCTION = """
CREATE FUNCTION quorum_search_length(content text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer
    FROM unnest(to_tsvector('english'::regconfig, content))
$$
"""

_APPLY_FUNCTION = """
CREATE FUNCTION quorum_apply_term_statistics(
    lexemes text[], lexeme_chunks integer[], chunk_delta bigint, length_delta bigint
) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF chunk_delta = 0 AND length_delta = 0 AND cardinality(lexemes) = 0 THEN
        RETURN 0;
    END IF;
    -- Every writer locks the one totals row first: concurrent writers queue here, so their
    -- per-lexeme upserts never wait on each other in opposite orders (no deadlock), and
    -- each sees the counts the previous one committed.
    UPDATE search_corpus_stats
    SET chunks = chunks + chunk_delta, total_length = total_length + length_delta
    WHERE id = 1;
    INSERT INTO search_term_stats AS s (lexeme, chunks)
    SELECT d.lexeme, d.chunks FROM unnest(lexemes, lexeme_chunks) AS d(lexeme, chunks)
    WHERE d.chunks <> 0
    ORDER BY d.lexeme
    ON CONFLICT (lexeme) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks;
    DELETE FROM search_term_stats WHERE lexeme = ANY(lexemes) AND chunks <= 0;
    RETURN chunk_delta;
END
$$
"""


def _apply_delta(rows: str) -> str:
    """PL/pgSQL that applies the signed chunks of `rows` (search_vector, search_length, sign)."""
    return f"""
    WITH delta AS ({rows}),
    terms AS (
        SELECT lexeme, sum(delta.sign)::integer AS chunks
        FROM delta, unnest(tsvector_to_array(delta.search_vector)) AS lexeme
        GROUP BY lexeme
    )
    SELECT quorum_apply_term_statistics(
        coalesce((SELECT array_agg(lexeme ORDER BY lexeme) FROM terms), '{{}}'),
        coalesce((SELECT array_agg(chunks ORDER BY lexeme) FROM terms), '{{}}'),
        coalesce((SELECT sum(sign) FROM delta), 0),
        coalesce((SELECT sum(sign * search_length) FROM delta), 0)
    ) INTO STRICT ignored;
    """


def _trigger_function(name: str, body: str, returns: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ignored bigint;
BEGIN
    {body}
    RETURN {returns};
END
$$
"""


# Generation 0 means "none yet": its chunks are never searchable (see migration 0008).
_ACTIVE_NEW = (
    "SELECT n.search_vector, n.search_length, 1 AS sign FROM new_chunks n "
    "JOIN documents d ON d.id = n.document_id AND d.active_generation = n.generation AND n.generation > 0"
)
_ACTIVE_OLD = (
    "SELECT o.search_vector, o.search_length, -1 AS sign FROM old_chunks o "
    "JOIN documents d ON d.id = o.document_id AND d.active_generation = o.generation AND o.generation > 0"
)
_SWAPPED = (
    "SELECT c.search_vector, c.search_length, "
    "CASE WHEN c.generation = NEW.active_generation THEN 1 ELSE -1 END AS sign "
    "FROM document_chunks c WHERE c.document_id = NEW.id AND c.generation > 0 "
    "AND c.generation IN (OLD.active_generation, NEW.active_generation)"
)
_DELETED_DOCUMENT = (
    "SELECT c.search_vector, c.search_length, -1 AS sign FROM document_chunks c "
    "WHERE c.document_id = OLD.id AND c.generation = OLD.active_generation AND c.generation > 0"
)

_RECOUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION quorum_recount_term_statistics() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_corpus_stats SET chunks = 0, total_length = 0 WHERE id = 1;  -- the writers' lock
    DELETE FROM search_term_stats;
    UPDATE search_corpus_stats AS t
    SET chunks = s.chunks, total_length = s.total_length
    FROM (
        SELECT count(*) AS chunks, coalesce(sum(c.search_length), 0) AS total_length
        FROM document_chunks c
        JOIN documents d ON d.id = c.document_id AND d.active_generation = c.generation AND c.generation > 0
    ) AS s
    WHERE t.id = 1;
    INSERT INTO search_term_stats (lexeme, chunks)
    SELECT lexeme, count(*)
    FROM document_chunks c
    JOIN documents d ON d.id = c.document_id AND d.active_generation = c.generation AND c.generation > 0,
    unnest(tsvector_to_array(c.search_vector)) AS lexeme
    GROUP BY lexeme
    ORDER BY lexeme;
END
$$
"""

_TRIGGER_FUNCTIONS = {
    "quorum_chunks_inserted": (_apply_delta(_ACTIVE_NEW), "NULL"),
    "quorum_chunks_updated": (_apply_delta(f"{_ACTIVE_NEW} UNION ALL {_ACTIVE_OLD}"), "NULL"),
    "quorum_chunks_deleted": (_apply_delta(_ACTIVE_OLD), "NULL"),
    "quorum_generation_swapped": (_apply_delta(_SWAPPED), "NULL"),
    "quorum_document_deleted": (_apply_delta(_DELETED_DOCUMENT), "OLD"),
    "quorum_chunks_truncated": ("PERFORM quorum_recount_term_statistics();", "NULL"),
}

_TRIGGERS = [
    "CREATE TRIGGER term_statistics_insert AFTER INSERT ON document_chunks "
    "REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION quorum_chunks_inserted()",
    "CREATE TRIGGER term_statistics_update AFTER UPDATE ON document_chunks "
    "REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks FOR EACH STATEMENT "
    "EXECUTE FUNCTION quorum_chunks_updated()",
    "CREATE TRIGGER term_statistics_delete AFTER DELETE ON document_chunks "
    "REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION quorum_chunks_deleted()",
    "CREATE TRIGGER term_statistics_truncate AFTER TRUNCATE ON document_chunks "
    "FOR EACH STATEMENT EXECUTE FUNCTION quorum_chunks_truncated()",
    "CREATE TRIGGER term_statistics_swap AFTER UPDATE OF active_generation ON documents FOR EACH ROW "
    "WHEN (OLD.active_generation IS DISTINCT FROM NEW.active_generation) "
    "EXECUTE FUNCTION quorum_generation_swapped()",
    # BEFORE: the document's chunks are still there to subtract; the cascade that deletes
    # them afterwards finds no document and counts nothing twice.
    "CREATE TRIGGER term_statistics_document_delete BEFORE DELETE ON documents FOR EACH ROW "
    "WHEN (OLD.active_generation > 0) EXECUTE FUNCTION quorum_document_deleted()",
]


def create_counting_functions() -> None:
    """(Re)define the recount and the trigger functions (migration 0008 replaces buggy ones)."""
    op.execute(_RECOUNT_FUNCTION)
    for name, (body, returns) in _TRIGGER_FUNCTIONS.items():
        op.execute(_trigger_function(name, body, returns))


def upgrade() -> None:
    op.execute(_SEARCH_LENGTH_FUNCTION)
    op.add_column(
        "document_chunks",
        sa.Column(
            "search_length",
            sa.Integer,
            sa.Computed("quorum_search_length(content)", persisted=True),
            nullable=False,
        ),
    )
    op.create_table(
        "search_term_stats",
        sa.Column("lexeme", sa.Text, primary_key=True),
        sa.Column("chunks", sa.Integer, nullable=False),
    )
    op.create_table(
        "search_corpus_stats",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("chunks", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("total_length", sa.BigInteger, server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name="ck_search_corpus_stats_singleton"),
    )
    op.execute("INSERT INTO search_corpus_stats (id) VALUES (1)")
    op.add_column("embedding_space", sa.Column("vector_weight", sa.Float))
    op.execute(_APPLY_FUNCTION)
    create_counting_functions()
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute("SELECT quorum_recount_term_statistics()")


def downgrade() -> None:
    for trigger, table in [
        ("term_statistics_insert", "document_chunks"),
        ("term_statistics_update", "document_chunks"),
        ("term_statistics_delete", "document_chunks"),
        ("term_statistics_truncate", "document_chunks"),
        ("term_statistics_swap", "documents"),
        ("term_statistics_document_delete", "documents"),
    ]:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for name in [*_TRIGGER_FUNCTIONS, "quorum_recount_term_statistics", "quorum_apply_term_statistics"]:
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
    op.drop_column("embedding_space", "vector_weight")
    op.drop_table("search_corpus_stats")
    op.drop_table("search_term_stats")
    op.drop_column("document_chunks", "search_length")
    op.execute("DROP FUNCTION IF EXISTS quorum_search_length(text)")
