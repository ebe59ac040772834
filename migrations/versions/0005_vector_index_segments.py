"""Vector index segments: chunks are written without touching an HNSW index, indexes are built in bulk.

Replaces the one HNSW index over every chunk (maintained row by row on insert: ~140 rows/s
at 1536 dimensions) by partial HNSW indexes over ranges of `segment` numbers, registered in
vector_index_segments and built by core.documents.vector_segments. Existing chunks form
segment 0, indexed here; new chunks take the open segment (quorum_open_segment()) and are
searched exactly until their segment is indexed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vector_index_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("open_segment", sa.Integer, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_vector_index_state_single_row"),
    )
    op.execute("INSERT INTO vector_index_state (id, open_segment) VALUES (1, 1)")
    op.execute(
        "CREATE FUNCTION quorum_open_segment() RETURNS integer LANGUAGE sql STABLE "
        "AS $$ SELECT open_segment FROM vector_index_state WHERE id = 1 $$"
    )
    op.create_table(
        "vector_index_segments",
        sa.Column("index_name", sa.String(63), primary_key=True),
        sa.Column("first_segment", sa.Integer, nullable=False),
        sa.Column("last_segment", sa.Integer, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("first_segment <= last_segment", name="ck_vector_index_segments_range"),
    )
    # Existing rows are segment 0; the default then moves to the open segment.
    op.add_column("document_chunks", sa.Column("segment", sa.Integer, server_default="0", nullable=False))
    op.execute("ALTER TABLE document_chunks ALTER COLUMN segment SET DEFAULT quorum_open_segment()")
    op.create_index("ix_document_chunks_segment", "document_chunks", ["segment"])
    op.execute(
        "CREATE INDEX ix_chunk_vectors_0_0 ON document_chunks USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64) WHERE segment BETWEEN 0 AND 0"
    )
    op.execute(
        "INSERT INTO vector_index_segments (index_name, first_segment, last_segment, row_count) "
        "SELECT 'ix_chunk_vectors_0_0', 0, 0, count(*) FROM document_chunks"
    )
    op.drop_index("ix_document_chunks_embedding_hnsw", table_name="document_chunks")


def downgrade() -> None:
    for (name,) in op.get_bind().execute(sa.text("SELECT index_name FROM vector_index_segments")):
        op.execute(f'DROP INDEX IF EXISTS "{name}"')
    op.create_index(
        "ix_document_chunks_embedding_hnsw",
        "document_chunks",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.drop_index("ix_document_chunks_segment", table_name="document_chunks")
    op.drop_column("document_chunks", "segment")
    op.drop_table("vector_index_segments")
    op.execute("DROP FUNCTION quorum_open_segment()")
    op.drop_table("vector_index_state")
