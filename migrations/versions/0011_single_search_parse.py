"""Chunk text is parsed for search once per write, and term statistics touch fewer rows.

Measured on the bulk-ingest path (benchmarks/ingest_stages.py, CPU time per chunk of 500
tokens): the two generated columns parsed every chunk twice, to_tsvector(content) for
search_vector and again inside quorum_search_length(content), 0.5 ms of backend CPU each,
a third of the whole INSERT. Generated columns cannot read one another, so both become plain
columns filled by one BEFORE ROW trigger: search_vector parsed once (quorum_english, migration
0010), search_length counted from it. The trigger keeps what generated columns guaranteed:
whatever a writer sends for them is replaced, and an UPDATE that leaves content alone keeps
them.

quorum_apply_term_statistics ran `DELETE ... WHERE lexeme = ANY(every lexeme)` after each
upsert, a third of a generation swap's cost, though only lexemes whose count went down can
reach zero: it now looks only at those. search_term_stats gets fillfactor 70 so the upserts
of counts can update rows in place (HOT) instead of adding index entries.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_LENGTH_FUNCTION = """
CREATE FUNCTION quorum_tsvector_length(vector tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer FROM unnest(vector)
$$
"""

_SEARCH_COLUMNS_FUNCTION = """
CREATE FUNCTION quorum_chunk_search_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.content IS NOT DISTINCT FROM OLD.content THEN
        NEW.search_vector := OLD.search_vector;
        NEW.search_length := OLD.search_length;
    ELSE
        NEW.search_vector := to_tsvector('quorum_english'::regconfig, NEW.content);
        NEW.search_length := quorum_tsvector_length(NEW.search_vector);
    END IF;
    RETURN NEW;
END
$$
"""

_APPLY_FUNCTION = """
CREATE OR REPLACE FUNCTION quorum_apply_term_statistics(
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
    -- Only a lexeme whose count went down can have reached zero.
    DELETE FROM search_term_stats AS s
    USING unnest(lexemes, lexeme_chunks) AS d(lexeme, chunks)
    WHERE d.chunks < 0 AND s.lexeme = d.lexeme AND s.chunks <= 0;
    RETURN chunk_delta;
END
$$
"""


def _statistics_migration() -> ModuleType:
    path = Path(__file__).with_name("0003_search_term_statistics.py")
    spec = importlib.util.spec_from_file_location("quorum_migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.execute(_LENGTH_FUNCTION)
    op.execute(_SEARCH_COLUMNS_FUNCTION)
    # Keeps the stored values; no table rewrite.
    op.execute("ALTER TABLE document_chunks ALTER COLUMN search_vector DROP EXPRESSION")
    op.execute("ALTER TABLE document_chunks ALTER COLUMN search_length DROP EXPRESSION")
    op.execute("ALTER TABLE document_chunks ALTER COLUMN search_vector SET NOT NULL")  # the trigger fills it
    op.execute(
        "CREATE TRIGGER chunk_search_columns BEFORE INSERT OR UPDATE ON document_chunks "
        "FOR EACH ROW EXECUTE FUNCTION quorum_chunk_search_columns()"
    )
    op.execute(_APPLY_FUNCTION)
    op.execute("ALTER TABLE search_term_stats SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE search_term_stats RESET (fillfactor)")
    op.execute(_statistics_migration()._APPLY_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP TRIGGER chunk_search_columns ON document_chunks")
    # Generated again (a table rewrite); the GIN index goes with the column and is rebuilt.
    op.execute("ALTER TABLE document_chunks DROP COLUMN search_length, DROP COLUMN search_vector")
    op.execute(
        "ALTER TABLE document_chunks "
        "ADD COLUMN search_vector tsvector "
        "GENERATED ALWAYS AS (to_tsvector('quorum_english'::regconfig, content)) STORED, "
        "ADD COLUMN search_length integer NOT NULL GENERATED ALWAYS AS (quorum_search_length(content)) STORED"
    )
    op.execute("CREATE INDEX ix_document_chunks_search_vector ON document_chunks USING gin (search_vector)")
    op.execute("DROP FUNCTION quorum_chunk_search_columns()")
    op.execute("DROP FUNCTION quorum_tsvector_length(tsvector)")
