"""The peer in benchmarks/retrieval.py: langchain-postgres' PGVectorStore on the same rows.

Runs in its own virtualenv (benchmarks/.work/venv, from benchmarks/requirements-peers.txt)
because langchain-postgres pins the pgvector Python package below Quorum's. Called as

    benchmarks/.work/venv/bin/python benchmarks/peers/langchain_pgvector.py SPEC.json OUT.json

SPEC gives the database URL, dimensions, k, candidate counts, ef_search and the queries
(text + embedding). This script copies Quorum's chunks (same text, same vectors, same
tsvector) into a table made by PGEngine.init_vectorstore_table with a hybrid-search tsv
column, builds the same HNSW (m=16, ef_construction=64, cosine) and GIN indexes, and times
PGVectorStore.similarity_search_with_score_by_vector (vector) and similarity_search with a
HybridSearchConfig using reciprocal_rank_fusion (hybrid). It writes latencies and the
returned chunk ids to OUT.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from langchain_postgres import Column, PGEngine, PGVectorStore
from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig, reciprocal_rank_fusion
from langchain_postgres.v2.indexes import HNSWQueryOptions

TABLE = "langchain_bench"


class LookupEmbeddings(Embeddings):
    """Returns the precomputed embedding of each benchmark query: no model in the loop."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def _hybrid_config(spec: dict[str, Any], query: str = "") -> HybridSearchConfig:
    return HybridSearchConfig(
        tsv_column="content_tsv",
        tsv_lang="pg_catalog.english",
        fts_query=query,
        fusion_function=reciprocal_rank_fusion,
        fusion_function_parameters={"rrf_k": 60},
        primary_top_k=spec["candidates"],
        secondary_top_k=spec["candidates"],
    )


def load(spec: dict[str, Any], engine: PGEngine) -> float:
    """Create the peer table from Quorum's chunks and index it; seconds taken."""
    started = time.perf_counter()
    engine.init_vectorstore_table(
        TABLE,
        spec["dim"],
        metadata_columns=[Column("chunk_id", "BIGINT")],
        overwrite_existing=True,
        hybrid_search_config=_hybrid_config(spec),
    )
    with psycopg.connect(spec["libpq_url"], autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        conn.execute(
            f"INSERT INTO {TABLE} (langchain_id, content, embedding, content_tsv, chunk_id, langchain_metadata) "
            "SELECT gen_random_uuid(), content, embedding, search_vector, id, "
            "json_build_object('document_id', document_id) FROM document_chunks"
        )
        conn.execute(
            f"CREATE INDEX {TABLE}_hnsw ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        conn.execute(f"CREATE INDEX {TABLE}_tsv ON {TABLE} USING gin (content_tsv)")
        conn.execute(f"ANALYZE {TABLE}")
    return time.perf_counter() - started


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    queries = spec["queries"]
    engine = PGEngine.from_connection_string(spec["sqlalchemy_url"])
    load_seconds = load(spec, engine) if spec.get("load", True) else 0.0

    embeddings = LookupEmbeddings({q["text"]: q["embedding"] for q in queries})
    store = PGVectorStore.create_sync(
        engine,
        embeddings,
        TABLE,
        metadata_columns=["chunk_id"],
        index_query_options=HNSWQueryOptions(ef_search=spec["ef_search"]),
        k=spec["k"],
    )
    k = spec["k"]
    warmup = spec["warmup"]

    vector_ms: list[float] = []
    vector_ids: list[list[int]] = []
    hybrid_ms: list[float] = []
    hybrid_ids: list[list[int]] = []
    for index, query in enumerate(queries):
        started = time.perf_counter()
        found = store.similarity_search_with_score_by_vector(query["embedding"], k=k)
        elapsed = (time.perf_counter() - started) * 1000
        if index >= warmup:
            vector_ms.append(elapsed)
            vector_ids.append([int(doc.metadata["chunk_id"]) for doc, _ in found])

        # A fresh config per query: PGVectorStore writes the first query's text into a
        # shared config's fts_query and would reuse it for every later query.
        started = time.perf_counter()
        docs = store.similarity_search(query["text"], k=k, hybrid_search_config=_hybrid_config(spec, query["text"]))
        elapsed = (time.perf_counter() - started) * 1000
        if index >= warmup:
            hybrid_ms.append(elapsed)
            hybrid_ids.append([int(doc.metadata["chunk_id"]) for doc in docs])

    with open(out_path, "w") as handle:
        json.dump(
            {
                "load_seconds": load_seconds,
                "vector_ms": vector_ms,
                "vector_ids": vector_ids,
                "hybrid_ms": hybrid_ms,
                "hybrid_ids": hybrid_ids,
            },
            handle,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
