"""Full-text search words: the quorum_english configuration (every word, compounds by their parts).

PostgreSQL's built-in 'english' configuration was written for ranking without statistics.
Under BM25 (migration 0003) two of its choices cost relevance:

- its 127 stop words drop words that carry meaning in a question ("down" in "is the server
  down?", "off" in "days off", "between", "after", "before", "against", "over", "under",
  "few", "more", "most", "same", "only"). BM25's idf already makes a word that nearly every
  chunk holds weigh almost nothing, so the new dictionary has no stop word list: every word
  is searchable (a question made only of common words, or a quoted phrase such as
  "state of the art", finds what it says);
- a hyphenated compound is kept whole beside its parts ("HIV-positive" -> hiv-posit, hiv,
  posit), so one word of the text counts two or three times. quorum_english keeps the parts.

Everything else is 'english': the Snowball English stemmer for words, numbers, versions,
emails, hosts and paths kept whole by the 'simple' dictionary.

The generated columns search_vector and search_length are re-created with the new
configuration (PostgreSQL 16 cannot change a generation expression in place: one table
rewrite), the GIN index with them, and the term statistics recounted. The offline hashing
vectors' recorded fusion weight follows the new lexical arm (0.3 -> 0.2).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_WORD_TOKENS = "asciiword, word, hword_asciipart, hword_part"
_COMPOUND_TOKENS = "asciihword, hword, numhword"


def _search_length_function(config: str) -> str:
    # Immutable, so a generated column may use it: the words a chunk's search_vector counts.
    return f"""
CREATE OR REPLACE FUNCTION quorum_search_length(content text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer
    FROM unnest(to_tsvector('{config}'::regconfig, content))
$$
"""


def _regenerate_search_columns(config: str) -> None:
    op.drop_index("ix_document_chunks_search_vector", table_name="document_chunks")
    op.drop_column("document_chunks", "search_length")
    op.drop_column("document_chunks", "search_vector")
    op.execute(_search_length_function(config))
    # One ALTER TABLE: both columns are computed in a single rewrite of the table.
    op.execute(
        "ALTER TABLE document_chunks "
        f"ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (to_tsvector('{config}'::regconfig, content)) STORED, "
        "ADD COLUMN search_length integer NOT NULL GENERATED ALWAYS AS (quorum_search_length(content)) STORED"
    )
    op.create_index("ix_document_chunks_search_vector", "document_chunks", ["search_vector"], postgresql_using="gin")
    op.execute("SELECT quorum_recount_term_statistics()")


def upgrade() -> None:
    op.execute("CREATE TEXT SEARCH DICTIONARY quorum_english_stem (TEMPLATE = snowball, Language = english)")
    op.execute("CREATE TEXT SEARCH CONFIGURATION quorum_english (COPY = pg_catalog.english)")
    op.execute(
        f"ALTER TEXT SEARCH CONFIGURATION quorum_english ALTER MAPPING FOR {_WORD_TOKENS} WITH quorum_english_stem"
    )
    op.execute(f"ALTER TEXT SEARCH CONFIGURATION quorum_english DROP MAPPING FOR {_COMPOUND_TOKENS}")
    _regenerate_search_columns("quorum_english")
    # The offline hashing vectors' fusion weight was tuned against the old words; the same
    # tuning (benchmarks/results/quality.md) gives 0.2 with these (core.ai.embedding_space).
    op.execute("UPDATE embedding_space SET vector_weight = 0.2 WHERE model = 'hashing-v1'")


def downgrade() -> None:
    _regenerate_search_columns("english")
    op.execute("UPDATE embedding_space SET vector_weight = 0.3 WHERE model = 'hashing-v1'")
    op.execute("DROP TEXT SEARCH CONFIGURATION quorum_english")
    op.execute("DROP TEXT SEARCH DICTIONARY quorum_english_stem")
