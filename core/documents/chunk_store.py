"""Bulk writes of chunks with their embeddings (binary COPY, then one upsert)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session

from core.documents.chunking import Chunk
from core.platform.db import vector_driver_connection

_STAGE_TABLE = "quorum_chunk_stage"
_STAGE_COLUMNS = (
    "document_id",
    "generation",
    "chunk_index",
    "content",
    "token_count",
    "page_number",
    "heading",
    "start_seconds",
    "end_seconds",
    "embedding",
)
_STAGE_TYPES = ["int4", "int4", "int4", "text", "int4", "int4", "text", "float8", "float8", "vector"]
_COLUMN_LIST = ", ".join(_STAGE_COLUMNS)
_UPDATES = ", ".join(f"{name} = EXCLUDED.{name}" for name in _STAGE_COLUMNS[3:])


def write_chunks(
    session: Session, document_id: int, generation: int, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
) -> None:
    """Upsert `chunks` with their embeddings on (document_id, generation, chunk_index). Does not commit.

    Binary COPY into a per-connection temporary table, then one INSERT ... SELECT ... ON
    CONFLICT DO UPDATE: far faster than row inserts with vectors formatted as text.
    """
    if len(chunks) != len(vectors):
        raise ValueError("one embedding per chunk is needed")
    if not chunks:
        return
    matrix = np.asarray(vectors, dtype=np.float32)
    connection = vector_driver_connection(session)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_TABLE} ("
            "document_id int4, generation int4, chunk_index int4, content text, token_count int4, "
            "page_number int4, heading text, start_seconds float8, end_seconds float8, embedding vector"
            ") ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"DELETE FROM {_STAGE_TABLE}")  # empty unless called twice in one transaction
        with cursor.copy(f"COPY {_STAGE_TABLE} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_STAGE_TYPES)
            for chunk, vector in zip(chunks, matrix, strict=True):
                copy.write_row(
                    (
                        document_id,
                        generation,
                        chunk.index,
                        chunk.text,
                        chunk.token_count,
                        chunk.page_number,
                        chunk.heading,
                        chunk.start_seconds,
                        chunk.end_seconds,
                        vector,
                    )
                )
        cursor.execute(
            f"INSERT INTO document_chunks ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGE_TABLE} "
            f"ON CONFLICT (document_id, generation, chunk_index) DO UPDATE SET {_UPDATES}"
        )
