"""quorum_at_least(words, k): a full-text query for "at least k of these words".

The full-text arm of a search scores each candidate chunk by reading its tsvector (a 500-token
chunk's is ~3.5 KB, kept in the TOAST table): ~12-16 us a candidate, the bulk of a search
over a large corpus. When every word of a question is common, the arm picked its candidates
as "every chunk holding the rarest word" (1,600 at p95 over 100k chunks, measured) and still
missed chunks holding all the other words. Chunks holding more of the question's words score
higher under BM25, and the GIN index answers "at least k of these words" by itself (no
tsvector read), so the search takes candidates from k = all words down to 1 until it has
enough (core.chat.search_statement._bm25_hits). Measured on the 100k-chunk benchmark corpus (50
questions of 4 common words): BM25's top 10 kept 100% (was 94%) while scoring 224 chunks at
p50 (was 646) and 239 at p95 (was 1,608).

`words` are lexemes as stored (already normalised); the caller passes few (the question's
rarest five), so the 2^n - 1 combinations stay small.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each bit pattern of the words is one combination; those of exactly k words, ORed.
    op.execute(
        """
        CREATE FUNCTION quorum_at_least(words text[], k integer) RETURNS tsquery
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT string_agg(combination, ' | ')::tsquery
            FROM (
                SELECT '(' || string_agg(quote_literal(words[i]), ' & ') || ')' AS combination
                FROM generate_series(1, (1 << cardinality(words)) - 1) AS mask
                CROSS JOIN generate_subscripts(words, 1) AS i
                WHERE mask & (1 << (i - 1)) <> 0
                GROUP BY mask
                HAVING count(*) = k
            ) AS combinations
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION quorum_at_least(text[], integer)")
