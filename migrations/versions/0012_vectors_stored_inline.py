"""Vectors are stored in the row, uncompressed: exact scans and index builds stop unpacking them.

A pgvector value of 1,536 dimensions is 6 KB, over PostgreSQL's 2 KB TOAST threshold, so
with the type's default storage (EXTENDED) every vector was compressed (the offline
hashing vectors, mostly zeros, compress well) or moved to the TOAST table in four pieces
(a model's dense vectors do not compress). Every exact scan (the newest chunks no HNSW index
covers yet, small or filtered searches) and every HNSW build then fetched and reassembled
or decompressed each vector. Measured on this machine (2,000 rows x 1,536, exact top 40):
dense 13.9 -> 4.0 ms, hashing 8.8 -> 3.8 ms; HNSW build over 10,000 dense rows 400-470 ->
600-620 rows/s.

PLAIN keeps a vector in its row, never compressed or moved: the text columns of the row
(EXTENDED) are compressed or moved instead, and a 6 KB vector leaves room for the rest of
the row in an 8 KB page. Up to PLAIN_MAX_DIMENSIONS only (pgvector's HNSW indexes at most
2,000); above it MAIN: in the row when the row fits, never split for a smaller row.

Rows written before this migration keep their stored form until they are written again
(re-indexing a document writes new rows; `python -m core.cli reindex --all` rewrites all).
Only the catalogue changes here: no table rewrite, a brief lock.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# 4 bytes a dimension + 8 of header; 1,900 dimensions = 7.6 KB leaves ~500 bytes of the
# 8,160 a row may take for the chunk's other columns (their text is moved out when large).
PLAIN_MAX_DIMENSIONS = 1900
_VECTOR_COLUMNS = (("document_chunks", "embedding"), ("message_feedback", "question_embedding"))


def _dimensions(table: str, column: str) -> int:
    return int(
        op.get_bind().scalar(
            sa.text(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = CAST(:table AS regclass) "
                "AND attname = :column AND NOT attisdropped"
            ),
            {"table": table, "column": column},
        )
    )


def upgrade() -> None:
    for table, column in _VECTOR_COLUMNS:
        storage = "PLAIN" if _dimensions(table, column) <= PLAIN_MAX_DIMENSIONS else "MAIN"
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE {storage}")


def downgrade() -> None:
    for table, column in _VECTOR_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTENDED")
