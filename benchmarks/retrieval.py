"""Retrieval benchmark: Quorum's hybrid retrieval on 100k chunks, against exact search and a peer.

For each embedding size (1536 and 384 dimensions) on its own database of a scratch
PostgreSQL+pgvector (pgserver in benchmarks/.work/pg):

- loads 100,000 chunks of synthetic topical text in 1,000 documents (70% general documents,
  25% transcripts, 5% minutes; 4% private to another user) with hashing embeddings, by
  binary COPY, then builds the same HNSW and GIN indexes as the migrations;
- times, per query, Quorum's hybrid retrieval (core.chat.retrieval.search_chunks: its planning
  query, SET LOCAL hnsw.ef_search and the one fused statement) and the vector-only query
  (the vector half alone: HNSW ORDER BY with the same visibility join, LIMIT 10);
- measures recall@10 against exact search: vector results against a brute-force cosine
  top-10 over the chunks the user may see (numpy; ties at the 10th distance count as
  hits), hybrid results against the same statement with an exact vector scan;
- repeats with filters: minutes only (5% of chunks: the planner scans exactly) and
  transcripts only (25%: HNSW with ef_search raised), and minutes only forced through
  HNSW at the default ef_search to show what the plan avoids;
- runs the same queries on the same rows through langchain-postgres' PGVectorStore
  (benchmarks/peers/langchain_pgvector.py, in its own virtualenv) and reports ratios.

Results go to benchmarks/results/retrieval.md and retrieval.json (offline hashing vectors) or
retrieval-dense.md and retrieval-dense.json (--vectors dense).

    .venv/bin/python benchmarks/retrieval.py                          # full run
    .venv/bin/python benchmarks/retrieval.py --chunks 5000 --queries 30 --dims 384   # smoke run

The peer virtualenv: python3 -m venv benchmarks/.work/venv &&
benchmarks/.work/venv/bin/pip install -r benchmarks/requirements-peers.txt
(without it the peer columns say "not run").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"
PEER_PYTHON = WORK / "venv" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "langchain_pgvector.py"

CHUNKS_PER_DOCUMENT = 100
WORDS_PER_CHUNK = 70
TOPICS = 400
TOPIC_WORDS = 150
VOCABULARY = 30_000
K = 10
SEED = 20261126

VECTOR_KINDS = {
    "dense": "dense clustered unit vectors shaped like sentence-model embeddings",
    "hashing": "offline hashing embeddings",
}

log = logging.getLogger("benchmarks.retrieval")


# Synthetic corpus -------------------------------------------------------------------------


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kl", "st", "tr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    codas = ["", "", "n", "r", "l", "s", "k", "m"]
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice((2, 2, 3, 3, 4))
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables)))
    return sorted(words)


def _zipf(n: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


class Corpus:
    """Deterministic topical text: each document mixes 1-3 topics; chunks draw mostly from one."""

    def __init__(self, chunks: int, seed: int = SEED) -> None:
        rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.words = np.array(_vocabulary(rng, VOCABULARY))
        self.background_p = _zipf(VOCABULARY, 1.05)
        self.topic_words = [self.np_rng.choice(VOCABULARY, size=TOPIC_WORDS, replace=False) for _ in range(TOPICS)]
        self.topic_p = _zipf(TOPIC_WORDS, 0.8)
        self.documents = max(1, chunks // CHUNKS_PER_DOCUMENT)
        self.chunk_document = np.repeat(np.arange(self.documents), CHUNKS_PER_DOCUMENT)[:chunks]
        document_topics = [
            self.np_rng.choice(TOPICS, size=rng.choice((1, 2, 3)), replace=False) for _ in range(self.documents)
        ]
        self.chunk_topic = np.array([rng.choice(list(document_topics[d])) for d in self.chunk_document])
        self.texts = [self._chunk_text(int(t)) for t in self.chunk_topic]

    def _chunk_text(self, topic: int) -> str:
        topical = int(WORDS_PER_CHUNK * 0.65)
        ids = np.concatenate(
            [
                self.np_rng.choice(self.topic_words[topic], size=topical, p=self.topic_p),
                self.np_rng.choice(VOCABULARY, size=WORDS_PER_CHUNK - topical, p=self.background_p),
            ]
        )
        self.np_rng.shuffle(ids)
        words = self.words[ids].tolist()
        sentences = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
        return ". ".join(s.capitalize() for s in sentences) + "."

    def queries(self, count: int) -> list[str]:
        """Short questions about a random chunk: three of its topical words, one more of its topic, one common word."""
        out = []
        self.query_chunks: list[int] = []
        for _ in range(count):
            chunk = int(self.np_rng.integers(len(self.texts)))
            self.query_chunks.append(chunk)
            topic = int(self.chunk_topic[chunk])
            own = [
                w for w in self.texts[chunk].lower().rstrip(".").replace(".", "").split() if w in self._topic_set(topic)
            ]
            picked = list(self.np_rng.choice(own, size=min(3, len(own)), replace=False)) if own else []
            picked.append(str(self.words[self.np_rng.choice(self.topic_words[topic])]))
            picked.append(str(self.words[self.np_rng.choice(VOCABULARY, p=self.background_p)]))
            out.append("what about " + " ".join(picked))
        return out

    def _topic_set(self, topic: int) -> set[str]:
        return set(self.words[self.topic_words[topic]].tolist())


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    matrix = rng.standard_normal((rows, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def dense_vectors(corpus: Corpus, dim: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors shaped like sentence-model embeddings, for the chunks and the queries.

    Every vector shares one common direction (model embeddings are anisotropic: unrelated
    texts still have cosine ~0.2), leans to its topic's centre and its document's, plus its
    own noise: cosine ~0.6 within a document, ~0.5 within a topic, ~0.2 otherwise. A query
    is its target chunk's vector plus noise (cosine ~0.75 to it), as a question is near the
    passage that answers it.
    """
    rng = np.random.default_rng(seed + dim)
    common = _unit_rows(rng, 1, dim)[0]
    topics = _unit_rows(rng, TOPICS, dim)
    documents = _unit_rows(rng, corpus.documents, dim)
    chunks = np.empty((len(corpus.texts), dim), dtype=np.float32)
    for start in range(0, len(chunks), 10_000):
        rows = slice(start, min(start + 10_000, len(chunks)))
        block = (
            0.5 * common
            + topics[corpus.chunk_topic[rows]]
            + 0.5 * documents[corpus.chunk_document[rows]]
            + 0.8 * _unit_rows(rng, rows.stop - rows.start, dim)
        )
        chunks[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    queries = chunks[corpus.query_chunks] + 0.9 * _unit_rows(rng, len(corpus.query_chunks), dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return chunks, queries


def document_type(index: int) -> str:
    if index % 20 == 0:
        return "meeting_minutes"  # 5%
    if index % 20 in (1, 2, 3, 4, 5):
        return "full_transcript"  # 25%
    return "general_document"


def is_private(index: int) -> bool:
    return index % 25 == 12  # 4%, owned by another user


def on_cpu_seconds(backend_pid: int) -> float:
    """CPU time so far of this thread plus one PostgreSQL backend on this machine, from the
    kernel's scheduler statistics (nanoseconds). Unlike wall time it leaves out the time spent
    waiting for a CPU, so the difference around a query is what it costs on a loaded machine."""
    backend_ns = int(Path(f"/proc/{backend_pid}/schedstat").read_text().split()[0])
    return backend_ns / 1e9 + time.thread_time()


# Worker: one dimension, one database ------------------------------------------------------


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "mean": float("nan"), "n": 0}
    array = np.array(values)
    return {
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "mean": float(array.mean()),
        "n": len(values),
    }


def _exact_top(matrix: np.ndarray, mask: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Ids (row numbers) of the exact cosine top-k among `mask` rows, and the k-th distance."""
    distances = 1.0 - matrix @ query
    distances[~mask] = np.inf
    top = np.argpartition(distances, k)[:k]
    top = top[np.argsort(distances[top])]
    return top, float(distances[top[-1]])


def _recall(found_rows: list[int], matrix: np.ndarray, query: np.ndarray, kth: float, k: int) -> float:
    """Share of the exact top-k found; a result as close as the k-th exact distance counts (ties)."""
    if not found_rows:
        return 0.0
    distances = 1.0 - matrix[found_rows] @ query
    return min(k, int(np.sum(distances <= kth + 1e-5))) / k


def run_worker(dim: int, args: argparse.Namespace) -> dict[str, Any]:
    """Load, index and query one database. The environment already points core at it."""
    from pgvector.psycopg import register_vector
    from sqlalchemy import bindparam, event, func, literal_column, or_, select, union_all

    from core.access.accounts import actor_from_user, insert_user
    from core.ai.hashing import hashing_embed
    from core.chat.retrieval import RetrievalFilters, plan_search, search_chunks
    from core.documents import searchable_documents_clause
    from core.documents.vector_segments import maintain_vector_index, search_layout
    from core.platform.db import get_engine, session_scope
    from core.platform.models import Document, DocumentChunk
    from core.platform.schema import upgrade_database

    result: dict[str, Any] = {"dim": dim, "chunks": args.chunks, "timings_s": {}}
    timings = result["timings_s"]

    started = time.perf_counter()
    upgrade_database()
    with session_scope() as session:
        owner = actor_from_user(
            session,
            insert_user(
                session, username="bench", email="bench@example.com", password="bench-pass-1", role_name="user"
            ),
        )
        other = insert_user(
            session, username="other", email="other@example.com", password="bench-pass-1", role_name="user"
        )
        other_id = other.id

    corpus = Corpus(args.chunks)
    query_texts = corpus.queries(args.queries + args.warmup)
    timings["generate_text"] = time.perf_counter() - started
    started = time.perf_counter()
    if args.vectors == "dense":
        matrix, query_vectors = dense_vectors(corpus, dim)
    else:
        matrix = np.vstack([hashing_embed(corpus.texts[i : i + 5000], dim) for i in range(0, len(corpus.texts), 5000)])
        query_vectors = hashing_embed(query_texts, dim)
    timings["embed"] = time.perf_counter() - started

    raw = get_engine().raw_connection()
    conn: Any = raw.driver_connection
    register_vector(conn)
    started = time.perf_counter()
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO documents (id, filename, sha256, uploaded_by, visibility, status, document_type, "
            "chunks_total, chunks_done, active_generation) VALUES (%s, %s, %s, %s, %s, 'COMPLETED', %s, %s, %s, 1)",
            [
                (
                    d + 1,
                    f"doc-{d}.txt",
                    f"{d:064d}",
                    other_id if is_private(d) else owner.id,
                    "private" if is_private(d) else "team",
                    document_type(d),
                    int(np.sum(corpus.chunk_document == d)),
                    int(np.sum(corpus.chunk_document == d)),
                )
                for d in range(corpus.documents)
            ],
        )
        cursor.execute("SELECT setval('documents_id_seq', %s)", (corpus.documents,))
        cursor.execute("DROP INDEX IF EXISTS ix_document_chunks_embedding_hnsw")  # before migration 0005
        cursor.execute("DROP INDEX ix_document_chunks_search_vector")
        with cursor.copy(
            "COPY document_chunks (id, document_id, generation, chunk_index, content, token_count, embedding) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int4", "int4", "int4", "text", "int4", "vector"])
            for row, text_ in enumerate(corpus.texts):
                document = int(corpus.chunk_document[row])
                copy.write_row(
                    (row + 1, document + 1, 1, row % CHUNKS_PER_DOCUMENT, text_, WORDS_PER_CHUNK, matrix[row])
                )
        cursor.execute("SELECT setval('document_chunks_id_seq', %s)", (len(corpus.texts),))
    conn.commit()
    timings["copy"] = time.perf_counter() - started

    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '4GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        started = time.perf_counter()
        # The rows are sealed into one registered partial HNSW index, as a worker does when
        # writing stops (core.documents.vector_segments); retrieval then searches through it.
        maintain_vector_index(idle=True)
        timings["hnsw_index"] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("CREATE INDEX ix_document_chunks_search_vector ON document_chunks USING gin (search_vector)")
        timings["gin_index"] = time.perf_counter() - started
        cursor.execute("VACUUM ANALYZE documents")
        cursor.execute("VACUUM ANALYZE document_chunks")
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        result["pgvector"] = cursor.fetchone()[0]
        cursor.execute("SHOW server_version")
        result["postgres"] = cursor.fetchone()[0]
        cursor.execute("RESET ALL")
    # Back to transactions before the pool hands this connection to a session: in autocommit
    # mode SET LOCAL / set_config(..., true) would last one statement and ef_search stay 40.
    conn.autocommit = False
    raw.close()

    chunk_row = {row + 1: row for row in range(len(corpus.texts))}  # chunk id -> matrix row
    document_of_row = corpus.chunk_document
    private_documents = np.array([is_private(d) for d in range(corpus.documents)])
    visible = ~private_documents[document_of_row]
    types = np.array([document_type(d) for d in range(corpus.documents)])[document_of_row]

    warmup = args.warmup

    cpu_ms: dict[str, list[float]] = {"hybrid": [], "vector": [], "raw_hnsw": []}

    def on_cpu(session: Any) -> float:
        return on_cpu_seconds(session.connection().connection.driver_connection.info.backend_pid) * 1000

    def hybrid(
        question: str,
        vector: np.ndarray,
        filters: RetrievalFilters | None = None,
        strategy: Any = None,
        ef_search: int | None = None,
        cpu: list[float] | None = None,
    ) -> tuple[float, list[int]]:
        began = time.perf_counter()
        with session_scope() as session:
            cpu_began = on_cpu(session)
            hits = search_chunks(
                session,
                actor=owner,
                query=question,
                query_embedding=vector.tolist(),
                filters=filters,
                k=K,
                strategy=strategy,
                ef_search=ef_search,
            )
            if cpu is not None:
                cpu.append(on_cpu(session) - cpu_began)
        ended = time.perf_counter()
        return (ended - began) * 1000, [h.chunk_id for h in hits]

    distance = DocumentChunk.embedding.cosine_distance

    set_ef = select(func.set_config("hnsw.ef_search", str(args.ef_search), True))

    def vector_only(vector: np.ndarray, cpu: list[float] | None = None) -> tuple[float, list[int]]:
        began = time.perf_counter()
        with session_scope() as session:
            cpu_began = on_cpu(session)
            session.execute(set_ef)
            ids = session.scalars(vector_statement, {"query_embedding": vector.tolist()}).all()
            if cpu is not None:
                cpu.append(on_cpu(session) - cpu_began)
        ended = time.perf_counter()
        return (ended - began) * 1000, list(ids)

    # One HNSW scan per registered partial index (its segment range as constants, so the
    # planner uses it), merged by distance, as Quorum's statement reads them.
    with session_scope() as session:
        ranges = search_layout(session).indexed
    log.info("dim %d: HNSW index ranges %s", dim, ranges)

    def in_range(first: int, last: int) -> Any:
        return DocumentChunk.segment.between(literal_column(str(first)), literal_column(str(last)))

    in_index = or_(*(in_range(first, last) for first, last in ranges))

    def nearest_per_index(*where: Any, join: bool) -> Any:
        parts = []
        for first, last in ranges:
            part = select(
                DocumentChunk.id.label("chunk_id"), distance(bindparam("query_embedding")).label("distance")
            ).where(in_range(first, last), *where)
            if join:
                part = part.join(
                    Document,
                    (Document.id == DocumentChunk.document_id)
                    & (DocumentChunk.generation == Document.active_generation),
                )
            parts.append(part.order_by(distance(bindparam("query_embedding"))).limit(K))
        merged = union_all(*parts).subquery("per_index") if len(parts) > 1 else parts[0].subquery("per_index")
        return select(merged.c.chunk_id).order_by(merged.c.distance).limit(K)

    # The vector half alone (with the visibility join), and raw pgvector: the HNSW scans
    # alone, no join, no visibility, no full text.
    vector_statement = nearest_per_index(searchable_documents_clause(owner), join=True)
    raw_statement = nearest_per_index(join=False)

    def raw_hnsw(vector: np.ndarray, cpu: list[float] | None = None) -> tuple[float, list[int]]:
        began = time.perf_counter()
        with session_scope() as session:
            cpu_began = on_cpu(session)
            session.execute(set_ef)
            ids = session.scalars(raw_statement, {"query_embedding": vector.tolist()}).all()
            if cpu is not None:
                cpu.append(on_cpu(session) - cpu_began)
        ended = time.perf_counter()
        return (ended - began) * 1000, list(ids)

    # The plan actually used for the unfiltered hybrid statement, captured as it is sent.
    captured: dict[str, Any] = {}

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "fused" in statement:
            captured["sql"], captured["params"] = statement, parameters

    event.listen(get_engine(), "before_cursor_execute", capture)
    hybrid(query_texts[0], query_vectors[0])
    event.remove(get_engine(), "before_cursor_execute", capture)
    with session_scope() as session:
        session.execute(select(func.set_config("hnsw.ef_search", str(args.ef_search), True)))
        explained = session.connection().exec_driver_sql("EXPLAIN " + captured["sql"], captured["params"])
        plan = "\n".join(row[0] for row in explained)
    result["hybrid_plan_uses_hnsw"] = "ix_chunk_vectors_" in plan
    result["hybrid_plan_uses_gin"] = "ix_document_chunks_search_vector" in plan
    (WORK / f"plan-{dim}.txt").write_text(plan)

    series: dict[str, list[float]] = {name: [] for name in ("hybrid_ms", "vector_ms", "raw_hnsw_ms", "exact_hybrid_ms")}
    recalls: dict[str, list[float]] = {name: [] for name in ("vector", "raw_hnsw", "hybrid_vs_exact_hybrid")}
    everyone = np.ones(len(matrix), dtype=bool)
    log.info("dim %d: %d queries", dim, len(query_texts))
    for index, (question, vector) in enumerate(zip(query_texts, query_vectors, strict=True)):
        measured = index >= warmup
        ms, hybrid_ids = hybrid(question, vector, cpu=cpu_ms["hybrid"] if measured else None)
        vms, vector_ids = vector_only(vector, cpu=cpu_ms["vector"] if measured else None)
        rms, raw_ids = raw_hnsw(vector, cpu=cpu_ms["raw_hnsw"] if measured else None)
        if not measured:
            continue
        series["hybrid_ms"].append(ms)
        series["vector_ms"].append(vms)
        series["raw_hnsw_ms"].append(rms)
        _, kth = _exact_top(matrix, visible, vector, K)
        recalls["vector"].append(_recall([chunk_row[i] for i in vector_ids], matrix, vector, kth, K))
        _, raw_kth = _exact_top(matrix, everyone, vector, K)
        recalls["raw_hnsw"].append(_recall([chunk_row[i] for i in raw_ids], matrix, vector, raw_kth, K))
        if index - warmup < args.exact_queries:
            ems, exact_ids = hybrid(question, vector, strategy="exact")
            series["exact_hybrid_ms"].append(ems)
            recalls["hybrid_vs_exact_hybrid"].append(len(set(hybrid_ids) & set(exact_ids)) / max(1, len(exact_ids)))

    # Filtered queries.
    filtered: dict[str, Any] = {}
    scenarios = [
        (
            "minutes (5%), planned",
            RetrievalFilters(document_types=("meeting_minutes",)),
            None,
            types == "meeting_minutes",
        ),
        (
            "minutes (5%), forced exact",
            RetrievalFilters(document_types=("meeting_minutes",)),
            "exact",
            types == "meeting_minutes",
        ),
        (
            "minutes (5%), forced HNSW at default ef_search",
            RetrievalFilters(document_types=("meeting_minutes",)),
            "naive",
            types == "meeting_minutes",
        ),
        (
            "transcripts (25%), planned",
            RetrievalFilters(document_types=("full_transcript",)),
            None,
            types == "full_transcript",
        ),
    ]
    for name, filters, strategy, mask in scenarios:
        latencies: list[float] = []
        scenario_recall: list[float] = []
        for question, vector in list(zip(query_texts, query_vectors, strict=True))[: args.filtered_queries]:
            with session_scope() as session:
                chosen = plan_search(session, actor=owner, filters=filters, candidates=40)
            ef = args.ef_search if strategy == "naive" else chosen.ef_search
            use_exact = (strategy or chosen.strategy) == "exact"
            if strategy == "naive":  # HNSW with the filter and ef_search left at its default
                ms, _ = hybrid(question, vector, filters=filters, strategy="hnsw", ef_search=args.ef_search)
            else:
                ms, _ = hybrid(question, vector, filters=filters, strategy=strategy)
            latencies.append(ms)
            # Vector recall of the same plan: the vector half alone with the filter.
            with session_scope() as session:
                session.execute(select(func.set_config("hnsw.ef_search", str(ef), True)))
                order = distance(vector.tolist())
                ids = session.scalars(
                    select(DocumentChunk.id)
                    .join(
                        Document,
                        (Document.id == DocumentChunk.document_id)
                        & (DocumentChunk.generation == Document.active_generation),
                    )
                    .where(
                        Document.active_generation > 0,
                        (Document.uploaded_by == owner.id) | (Document.visibility == "team"),
                        Document.document_type.in_(filters.document_types),
                        in_index,
                    )
                    .order_by(order + 0.0 if use_exact else order)
                    .limit(K)
                ).all()
            _, kth = _exact_top(matrix, visible & mask, vector, K)
            scenario_recall.append(_recall([chunk_row[i] for i in ids], matrix, vector, kth, K))
        filtered[name] = {
            "latency_ms": _stats(latencies),
            "vector_recall_at_10": statistics.mean(scenario_recall) if scenario_recall else float("nan"),
            "strategy": "hnsw" if strategy == "naive" else (strategy or chosen.strategy),
            "ef_search": ef,
        }
    result["filtered"] = filtered

    result["latency_ms"] = {name: _stats(values) for name, values in series.items()}
    result["cpu_ms"] = {name: _stats(values) for name, values in cpu_ms.items()}
    result["recall_at_10"] = {
        name: statistics.mean(values) if values else float("nan") for name, values in recalls.items()
    }

    # The peer, on the same rows.
    result["langchain"] = run_peer(dim, args, query_texts, query_vectors, matrix)
    return result


def run_peer(
    dim: int, args: argparse.Namespace, texts: list[str], vectors: np.ndarray, matrix: np.ndarray
) -> dict[str, Any]:
    from core.platform.config import get_settings

    if args.skip_peer or not PEER_PYTHON.exists():
        return {"status": "not run: no peer virtualenv (see benchmarks/requirements-peers.txt)"}
    url = get_settings().database_url or ""
    spec = {
        "sqlalchemy_url": url,
        "libpq_url": url.replace("postgresql+psycopg://", "postgresql://"),
        "dim": dim,
        "k": K,
        "candidates": 40,
        "ef_search": args.ef_search,
        "warmup": args.warmup,
        "queries": [{"text": t, "embedding": v.tolist()} for t, v in zip(texts, vectors, strict=True)],
    }
    spec_path = WORK / f"peer-spec-{dim}.json"
    out_path = WORK / f"peer-out-{dim}.json"
    spec_path.write_text(json.dumps(spec))
    completed = subprocess.run(
        [str(PEER_PYTHON), str(PEER_SCRIPT), str(spec_path), str(out_path)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        return {"status": "failed", "error": completed.stderr[-3000:]}
    out = json.loads(out_path.read_text())
    all_rows = np.ones(len(matrix), dtype=bool)
    recall = []
    for ids, vector in zip(out["vector_ids"], vectors[args.warmup :], strict=True):
        _, kth = _exact_top(matrix, all_rows, vector, K)
        recall.append(_recall([i - 1 for i in ids], matrix, vector, kth, K))
    return {
        "status": "ok",
        "load_and_index_s": out["load_seconds"],
        "vector_ms": _stats(out["vector_ms"]),
        "hybrid_ms": _stats(out["hybrid_ms"]),
        "vector_recall_at_10": statistics.mean(recall) if recall else float("nan"),
        "hybrid_empty_fts": None,
    }


# Orchestrator -----------------------------------------------------------------------------


def _database_urls(name: str) -> tuple[str, str]:
    import pgserver

    server = pgserver.get_server(str(WORK / "pg"), cleanup_mode="stop")
    uri: str = server.get_uri()  # postgresql://postgres:@/postgres?host=...
    base, query = uri.split("?", 1)
    admin = uri
    target = base.rsplit("/", 1)[0] + f"/{name}?{query}"
    return admin, target


def _fresh_database(admin_uri: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and b == b and a == a else "—"


def render(results: list[dict[str, Any]], args: argparse.Namespace, total_s: float) -> str:
    lines = [
        "# Retrieval benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/retrieval.py "
        f"--chunks {args.chunks} --queries {args.queries}` in {total_s / 60:.1f} min on {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), PostgreSQL {results[0].get('postgres', '?')} with "
        f"pgvector {results[0].get('pgvector', '?')} (pgserver), Python {platform.python_version()}.",
        "",
        f"{args.chunks:,} chunks of synthetic topical text (70 words each, {args.chunks // CHUNKS_PER_DOCUMENT:,} "
        f"documents, 4% private to another user), {VECTOR_KINDS[args.vectors]}, HNSW m=16 ef_construction=64, "
        f"hnsw.ef_search={args.ef_search}, k={K}, 40 candidates per list, BM25 full-text arm, "
        "score fusion weighted by the embedding space. "
        "Latency is wall time per query "
        f"from Python (session, planning query, statement, rows), {args.queries} queries after {args.warmup} warm-up.",
        "",
        "## Latency and recall",
        "",
        "| dims | query | p50 ms | p95 ms | recall@10 |",
        "|---:|---|---:|---:|---:|",
    ]
    cpu_lines = [
        "",
        "## On-CPU time per query",
        "",
        "What each query costs in CPU, whatever the machine's load: this process's thread (building the statement, "
        "reading rows) plus its PostgreSQL backend's, from the kernel's scheduler statistics (/proc/PID/schedstat, "
        "nanoseconds). Wall time above adds the time spent waiting for a CPU on a shared machine; on an idle one "
        "a query takes about its CPU time plus a few round trips.",
        "",
        "| dims | query | p50 ms | p95 ms | hybrid / raw HNSW at p95 |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results:
        cpu = r.get("cpu_ms")
        if not cpu:
            continue
        for name, label in (
            ("hybrid", "Quorum hybrid"),
            ("vector", "Quorum vector only"),
            ("raw_hnsw", "raw pgvector HNSW"),
        ):
            ratio = _ratio(cpu["hybrid"]["p95"], cpu["raw_hnsw"]["p95"]) if name == "hybrid" else ""
            cpu_lines.append(f"| {r['dim']} | {label} | {cpu[name]['p50']:.1f} | {cpu[name]['p95']:.1f} | {ratio} |")
    for r in results:
        lat = r["latency_ms"]
        rec = r["recall_at_10"]
        lines.append(
            f"| {r['dim']} | Quorum hybrid (HNSW + full text, one statement) | {lat['hybrid_ms']['p50']:.1f} | "
            f"{lat['hybrid_ms']['p95']:.1f} | {rec['hybrid_vs_exact_hybrid']:.3f} vs exact hybrid |"
        )
        lines.append(
            f"| {r['dim']} | Quorum vector only (HNSW) | {lat['vector_ms']['p50']:.1f} | "
            f"{lat['vector_ms']['p95']:.1f} | {rec['vector']:.3f} vs exact cosine |"
        )
        lines.append(
            f"| {r['dim']} | raw pgvector HNSW (no join, no visibility, no full text) | "
            f"{lat['raw_hnsw_ms']['p50']:.1f} | {lat['raw_hnsw_ms']['p95']:.1f} | "
            f"{rec['raw_hnsw']:.3f} vs exact cosine |"
        )
        lines.append(
            f"| {r['dim']} | Quorum hybrid, exact vector scan | {lat['exact_hybrid_ms']['p50']:.1f} | "
            f"{lat['exact_hybrid_ms']['p95']:.1f} | 1 (reference) |"
        )
        peer = r["langchain"]
        if peer.get("status") == "ok":
            lines.append(
                f"| {r['dim']} | langchain-postgres vector | {peer['vector_ms']['p50']:.1f} | "
                f"{peer['vector_ms']['p95']:.1f} | {peer['vector_recall_at_10']:.3f} vs exact cosine |"
            )
            lines.append(
                f"| {r['dim']} | langchain-postgres hybrid | {peer['hybrid_ms']['p50']:.1f} | "
                f"{peer['hybrid_ms']['p95']:.1f} | — |"
            )
    lines += cpu_lines
    lines += [
        "",
        "## Quorum / langchain-postgres (same rows, same indexes, same queries)",
        "",
        "| dims | vector p50 | vector p95 | hybrid p50 | hybrid p95 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        peer = r["langchain"]
        if peer.get("status") != "ok":
            lines.append(f"| {r['dim']} | {peer.get('status')} | | | |")
            continue
        lat = r["latency_ms"]
        lines.append(
            f"| {r['dim']} | {_ratio(lat['vector_ms']['p50'], peer['vector_ms']['p50'])} | "
            f"{_ratio(lat['vector_ms']['p95'], peer['vector_ms']['p95'])} | "
            f"{_ratio(lat['hybrid_ms']['p50'], peer['hybrid_ms']['p50'])} | "
            f"{_ratio(lat['hybrid_ms']['p95'], peer['hybrid_ms']['p95'])} |"
        )
    lines += [
        "",
        "Below 1 means Quorum is faster.",
        "",
        "## Filtered queries (hybrid latency, vector-half recall)",
        "",
        "| dims | filter | plan | ef_search | p50 ms | p95 ms | vector recall@10 |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for name, f in r["filtered"].items():
            lines.append(
                f"| {r['dim']} | {name} | {f['strategy']} | {f['ef_search']} | {f['latency_ms']['p50']:.1f} | "
                f"{f['latency_ms']['p95']:.1f} | {f['vector_recall_at_10']:.3f} |"
            )
    lines += [
        "",
        "## Load",
        "",
        "| dims | text s | embed s | COPY s | HNSW build s | GIN build s | peer copy+index s | plan uses HNSW / GIN |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        t = r["timings_s"]
        peer = r["langchain"]
        lines.append(
            f"| {r['dim']} | {t['generate_text']:.0f} | {t['embed']:.0f} | {t['copy']:.0f} | {t['hnsw_index']:.0f} | "
            f"{t['gin_index']:.0f} | {peer.get('load_and_index_s', float('nan')):.0f} | "
            f"{'yes' if r['hybrid_plan_uses_hnsw'] else 'NO'} / {'yes' if r['hybrid_plan_uses_gin'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--exact-queries", type=int, default=60, help="queries also run with an exact scan")
    parser.add_argument("--filtered-queries", type=int, default=60)
    parser.add_argument("--ef-search", type=int, default=100)
    parser.add_argument("--dims", default="1536,384")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--vectors", choices=sorted(VECTOR_KINDS), default="dense")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--notes", default="", help="appended to the results file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    WORK.mkdir(parents=True, exist_ok=True)

    if args.worker:
        result = run_worker(args.worker, args)
        (WORK / f"result-{args.worker}.json").write_text(json.dumps(result, indent=2))
        return

    began = time.perf_counter()
    results = []
    for dim in (int(d) for d in args.dims.split(",")):
        name = f"quorum_bench_{dim}"
        admin, target = _database_urls(name)
        _fresh_database(admin, name)
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
        env |= {
            "DATABASE_URL": target,
            "QUORUM_EMBEDDING_DIM": str(dim),
            "QUORUM_DATA_DIR": str(WORK / "data"),
            # One sealed segment, so one partial HNSW index holds every row (raw HNSW compares on it).
            "QUORUM_VECTOR_TAIL_ROWS": str(args.chunks + 1),
            "QUORUM_ENVIRONMENT": "development",
            "PYTHONPATH": str(ROOT),
        }
        log.info("dimension %d -> %s", dim, name)
        subprocess.run([sys.executable, __file__, "--worker", str(dim), *sys.argv[1:]], env=env, check=True)
        results.append(json.loads((WORK / f"result-{dim}.json").read_text()))
    total = time.perf_counter() - began
    RESULTS.mkdir(parents=True, exist_ok=True)
    # One file per kind of vectors, so a dense run never replaces the hashing results.
    stem = "retrieval" if args.vectors == "hashing" else f"retrieval-{args.vectors}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2))
    report = render(results, args, total)
    if args.notes:
        report += "\n" + Path(args.notes).read_text()
    (RESULTS / f"{stem}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
