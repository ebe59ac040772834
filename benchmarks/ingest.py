"""Ingestion benchmark: ~100k chunks through Quorum's real pipeline, beside raw pgvector on the same rows.

For each kind of vectors (hashing: the offline embedder; dense: the OpenAI path against the
test suite's fake server with a per-request delay), on a fresh database of a scratch
PostgreSQL+pgvector (pgserver in benchmarks/.work/pg, sized by core.platform.embedded):

- ingests N synthetic documents (topical prose; every fifth one Markdown with headings)
  through core.documents.ingest_paths(wait=True, processes=W), what `core.cli ingest FOLDER
  --jobs W` runs, while another process searches (hybrid, k=10) every 50 ms: chunks/s until
  every document is COMPLETED (searchable), and the search latency during the load;
- lets the index catch up as a worker does when writing stops (maintain_vector_index), then
  measures hybrid latency on the settled index;
- on the same rows, raw pgvector: binary COPY into a table without an index, the HNSW build
  (m 16, ef_construction 64), COPY into the live index (a sample), and HNSW query latency.

Results go to benchmarks/results/ingest.md and ingest.json, with the load average.

    .venv/bin/python benchmarks/ingest.py                              # full run (1,000 documents)
    .venv/bin/python benchmarks/ingest.py --documents 20 --kinds hashing   # smoke run
    .venv/bin/python benchmarks/ingest.py --compare-chunkers           # also LangChain's splitter
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # core and tests, when run as a script
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"
DOCS = WORK / "ingest-docs"
DATABASE = "quorum_bench_ingest"
SEED = 20261126
WORDS_PER_DOCUMENT = 30_500  # about 100 chunks of 500 tokens with 60 overlap (measured)
VOCABULARY = 20_000
TOPICS = 300
TOPIC_WORDS = 120

log = logging.getLogger("bench.ingest")


# Corpus -----------------------------------------------------------------------------------


class Corpus:
    """Deterministic synthetic prose: Zipf-distributed words, topical paragraphs, sentences."""

    def __init__(self, seed: int = SEED) -> None:
        from core.platform.tokens import encoding_for_model

        rng = random.Random(seed)
        # Real word pieces: the lower-case " word" tokens of cl100k_base, so text tokenizes
        # like English prose (about 1.2 tokens per word) rather than like random letters.
        encoding = encoding_for_model("text-embedding-3-small")
        pieces = sorted(
            {
                piece.decode()[1:]
                for piece in (encoding.decode_single_token_bytes(i) for i in range(encoding.n_vocab - 300))
                if re.fullmatch(rb" [a-z]{3,12}", piece)
            }
        )
        rng.shuffle(pieces)
        words = pieces[: int(VOCABULARY * 0.85)]
        # Some longer words made of two pieces, as real text has.
        words += [rng.choice(pieces) + rng.choice(pieces) for _ in range(VOCABULARY - len(words))]
        self.words = np.array(words)
        ranks = np.arange(1, len(words) + 1, dtype=np.float64)
        self.weights = 1.0 / ranks**1.1
        self.weights /= self.weights.sum()
        self.topics = [self.words[rng.sample(range(len(words)), TOPIC_WORDS)] for _ in range(TOPICS)]
        self.seed = seed

    def document(self, number: int, markdown: bool) -> str:
        """About WORDS_PER_DOCUMENT words in paragraphs of 3-8 sentences, one topic per paragraph."""
        rng = np.random.default_rng(self.seed + number)
        sentence_lengths = rng.integers(8, 26, size=WORDS_PER_DOCUMENT // 8)
        ends = np.cumsum(sentence_lengths)
        sentence_lengths = sentence_lengths[: int(np.searchsorted(ends, WORDS_PER_DOCUMENT)) + 1]
        total = int(sentence_lengths.sum())
        common = rng.choice(self.words, size=total, p=self.weights)
        topical_pick = rng.integers(TOPIC_WORDS, size=total)
        use_topic = rng.random(total) < 0.3
        parts: list[str] = []
        position = 0
        sentence = 0
        written = 0
        section = 0
        while sentence < len(sentence_lengths):
            if markdown and written // 4000 >= section:
                section += 1
                parts.append(f"## Section {section}: {' '.join(rng.choice(self.words, 3))}")
            topic = self.topics[int(rng.integers(TOPICS))]
            sentences = []
            for _ in range(int(rng.integers(3, 9))):
                if sentence >= len(sentence_lengths):
                    break
                length = int(sentence_lengths[sentence])
                span = slice(position, position + length)
                mix = np.where(use_topic[span], topic[topical_pick[span]], common[span])
                text = " ".join(mix.tolist())
                sentences.append(text[0].upper() + text[1:] + ".")
                position += length
                written += length
                sentence += 1
            parts.append(" ".join(sentences))
        return "\n\n".join(parts) + "\n"


def write_documents(count: int) -> list[Path]:
    if DOCS.exists():
        shutil.rmtree(DOCS)
    DOCS.mkdir(parents=True)
    corpus = Corpus()
    paths = []
    for number in range(count):
        markdown = number % 5 == 0
        path = DOCS / f"doc-{number:04d}.{'md' if markdown else 'txt'}"
        path.write_text(corpus.document(number, markdown), encoding="utf-8")
        paths.append(path)
    return paths


# Peer: LangChain's token splitter -------------------------------------------------------------


_WORD_CHAR = re.compile(r"\w")


def cut_inside_words(text: str, chunks: list[str]) -> int:
    """Chunks (of the same text) that start or end in the middle of a word."""
    bad = 0
    position = 0
    for chunk in chunks:
        start = text.find(chunk, max(0, position - len(chunk)))
        if start < 0:
            continue
        end = start + len(chunk)
        starts_inside = start > 0 and _WORD_CHAR.match(text[start - 1]) and _WORD_CHAR.match(text[start])
        ends_inside = end < len(text) and _WORD_CHAR.match(text[end - 1]) and _WORD_CHAR.match(text[end])
        if starts_inside or ends_inside:
            bad += 1
        position = start + 1
    return bad


def compare_chunkers(paths: list[Path], size: int, overlap: int, sample: int) -> dict[str, Any]:
    """Quorum's Chunker and LangChain's TokenTextSplitter on the same texts (extraction done)."""
    from core.documents.chunking import Chunker
    from core.documents.extraction import extract_sections
    from core.documents.filetypes import KINDS

    chunker = Chunker(size=size, overlap=overlap)
    texts = []
    for path in paths:
        kind = KINDS["markdown" if path.suffix == ".md" else "text"]
        with path.open("rb") as stream:
            texts.append([s.text for s in extract_sections(stream, kind)])
    tokens = sum(chunker.count(t) for sections in texts for t in sections)

    result: dict[str, Any] = {"documents": len(paths), "tokens": tokens, "size": size, "overlap": overlap}
    began = time.perf_counter()
    ours = [[c.text for c in chunker.chunk_sections([_section(t)])] for sections in texts for t in sections]
    result["quorum_seconds"] = time.perf_counter() - began
    result["quorum_chunks"] = sum(map(len, ours))
    flat_texts = [t for sections in texts for t in sections]
    result["quorum_cut_words"] = sum(cut_inside_words(t, c) for t, c in zip(flat_texts[:sample], ours, strict=False))
    result["quorum_sample_chunks"] = sum(map(len, ours[:sample]))
    result["sample_texts"] = min(sample, len(flat_texts))
    result["quorum_max_tokens"] = max(chunker.count(c) for group in ours[:sample] for c in group)

    try:
        from langchain_text_splitters import TokenTextSplitter
    except ImportError:
        result["peer"] = "langchain-text-splitters is not installed (pip install -r benchmarks/requirements.txt)"
        return result
    from importlib.metadata import version

    splitter = TokenTextSplitter(encoding_name=chunker.encoding.name, chunk_size=size, chunk_overlap=overlap)
    began = time.perf_counter()
    theirs = [splitter.split_text(t) for t in flat_texts]
    result["peer"] = f"langchain-text-splitters {version('langchain-text-splitters')}"
    result["peer_seconds"] = time.perf_counter() - began
    result["peer_chunks"] = sum(map(len, theirs))
    result["peer_cut_words"] = sum(cut_inside_words(t, c) for t, c in zip(flat_texts[:sample], theirs, strict=False))
    result["peer_sample_chunks"] = sum(map(len, theirs[:sample]))
    result["peer_max_tokens"] = max(chunker.count(c) for group in theirs[:sample] for c in group)
    return result


def _section(text: str) -> Any:
    from core.documents.extraction import Section

    return Section(text=text)


# Phases (each a subprocess with DATABASE_URL pointing at the run's fresh database) ------------


def _bench_actor() -> Any:
    from sqlalchemy import select

    from core.access.accounts import actor_from_user, insert_user
    from core.access.rbac import ADMIN_ROLE
    from core.platform.db import session_scope
    from core.platform.models import User

    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == "bench"))
        if user is None:
            user = insert_user(
                session, username="bench", email="bench@example.com", password="bench-pass-1", role_name=ADMIN_ROLE
            )
            session.flush()
        return actor_from_user(session, user)


def _query_vectors(texts: list[str], dense: bool) -> np.ndarray:
    from core.ai.hashing import hashing_embed
    from core.platform.config import get_settings

    vectors = hashing_embed(texts, get_settings().embedding_dim)
    if dense:
        from tests.fake_openai import dense_projection

        vectors = dense_projection(vectors)
    return np.asarray(vectors, dtype=np.float32)


def _questions(count: int) -> list[str]:
    """Questions made of topical words, as a user who knows the corpus would ask."""
    corpus = Corpus()
    rng = random.Random(SEED + 7)
    questions = []
    for _ in range(count):
        topic = corpus.topics[rng.randrange(TOPICS)]
        questions.append(" ".join(rng.sample(list(topic), 4)))
    return questions


def phase_setup(args: argparse.Namespace) -> dict[str, Any]:
    from core.platform.schema import upgrade_database

    upgrade_database()
    _bench_actor()
    return {}


def _process_tree_cpu(pid: int) -> float:
    """CPU seconds used by process `pid`, its reaped children, and its live descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        return 0.0
    return total


def _postmaster_pid() -> int:
    return int((WORK / "pg" / "postmaster.pid").read_text().split()[0])


def phase_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Quorum end to end through the CLI's path: ingest_paths(wait=True, processes=N).

    Besides wall time, the CPU seconds it cost: this process and its ingest processes, and
    the PostgreSQL server (every backend, plus WAL writer, checkpointer and autovacuum;
    nothing else uses the scratch server meanwhile but the searching process). CPU per chunk
    does not stretch with the machine's load as wall time does.
    """
    from core.documents import ingest_paths

    actor = _bench_actor()
    postmaster = _postmaster_pid()
    began_cpu = _process_tree_cpu(os.getpid()), _process_tree_cpu(postmaster)
    began = time.perf_counter()
    results = ingest_paths(actor=actor, paths=[DOCS], visibility="team", wait=True, processes=args.workers)
    wall = time.perf_counter() - began
    ended_cpu = _process_tree_cpu(os.getpid()), _process_tree_cpu(postmaster)
    return {
        "python_cpu_seconds": ended_cpu[0] - began_cpu[0],
        "postgres_cpu_seconds": ended_cpu[1] - began_cpu[1],
        "wall_seconds": wall,
        "completed": sum(r.status == "COMPLETED" for r in results),
        "chunks": sum(r.chunks for r in results if r.status == "COMPLETED"),
        "failed": [r.path for r in results if r.status != "COMPLETED"][:10],
    }


def phase_explain(args: argparse.Namespace) -> dict[str, Any]:
    """EXPLAIN ANALYZE of one search, as searches run it (their generic plan): as the load ends
    (before the final merge) and once the indexes are merged (--moment after)."""
    from core.chat.retrieval import explain_search
    from core.documents.vector_segments import search_layout
    from core.platform.db import session_scope

    actor = _bench_actor()
    question = _questions(1)[0]
    vector = _query_vectors([question], args.dense)[0]
    with session_scope() as session:
        layout = search_layout(session)
        text = explain_search(session, actor=actor, query=question, query_embedding=vector, k=10, analyze=True)
    (WORK / f"ingest-{'dense' if args.dense else 'hashing'}-plan-{args.moment}.txt").write_text(text)
    return {"indexes": len(layout.indexed), "execution_ms": float(text.rsplit("Execution Time: ", 1)[-1].split()[0])}


def phase_settle(args: argparse.Namespace) -> dict[str, Any]:
    """What a worker does once writing stops: index the tail and merge into one index."""
    from core.documents.vector_segments import maintain_vector_index, tail_rows

    before = tail_rows()
    report = maintain_vector_index(idle=True)
    return {"tail_rows": before, "seconds": report.seconds, "built": report.built}


def phase_query(args: argparse.Namespace) -> dict[str, Any]:
    """Hybrid searches one after another (until STOP exists, or args.queries of them)."""
    from core.chat.retrieval import explain_search
    from core.documents.vector_segments import search_layout, tail_rows
    from core.platform.db import session_scope

    actor = _bench_actor()
    questions = _questions(max(args.queries, 50))
    vectors = _query_vectors(questions, args.dense)
    stop = WORK / "query-stop"
    samples: list[tuple[float, float]] = []  # (seconds since start, latency)
    cpu: list[float] = []  # seconds on a CPU per search: this thread and its PostgreSQL backend
    tails: list[int] = []
    indexes: list[int] = []  # partial HNSW indexes a search visits
    loads: list[float] = []
    began = time.perf_counter()
    number = 0
    while True:
        if args.until_stopped and stop.exists():
            break
        if not args.until_stopped and number >= args.queries + 20:
            break
        question, vector = questions[number % len(questions)], vectors[number % len(vectors)]
        start = time.perf_counter()
        cpu_used = _hybrid_search_cpu(actor, question, vector)
        latency = time.perf_counter() - start
        if number >= 20 or args.until_stopped:  # warm-up when measuring a settled index
            samples.append((start - began, latency))
            cpu.append(cpu_used)
        if number % 25 == 0:
            tails.append(tail_rows())
            loads.append(os.getloadavg()[0])
            with session_scope() as session:
                indexes.append(len(search_layout(session).indexed))
                if args.until_stopped:  # where the time goes as the load grows (generic plan, analyzed)
                    plan = explain_search(
                        session, actor=actor, query=question, query_embedding=vector, k=10, analyze=True
                    )
                    (WORK / f"ingest-{args.kind}-plan-search-{number:05d}.txt").write_text(plan)
        number += 1
        if args.until_stopped:
            time.sleep(0.05)  # a user every 50 ms, not a benchmark hammering the CPUs
    return {
        "latencies": [latency for _, latency in samples],
        "cpu": cpu,
        "tail_rows": tails,
        "indexes": indexes,
        "loads": loads,
    }


def _hybrid_search_cpu(actor: Any, question: str, vector: np.ndarray) -> float:
    """One hybrid search in its own transaction, as the app runs it: the CPU seconds it cost this
    thread and its PostgreSQL backend."""
    from retrieval import on_cpu_seconds  # benchmarks/retrieval.py

    from core.chat.retrieval import search_chunks
    from core.platform.db import session_scope

    with session_scope() as session:
        driver = session.connection().connection.driver_connection
        assert driver is not None
        began = on_cpu_seconds(driver.info.backend_pid)
        search_chunks(session, actor=actor, query=question, query_embedding=vector.tolist(), k=10)
        return on_cpu_seconds(driver.info.backend_pid) - began


# The raw pgvector baseline: the vector search alone, over a table of the same vectors.
RAW_SEARCH = "SELECT id FROM raw_vectors ORDER BY embedding <=> %s LIMIT 10"


def phase_raw(args: argparse.Namespace) -> dict[str, Any]:
    """Raw pgvector on the same rows: binary COPY without an index, HNSW build, COPY into the live
    index, and HNSW query latency (the baseline the hybrid p95 is held to)."""
    import psycopg
    from pgvector.psycopg import register_vector
    from retrieval import on_cpu_seconds  # benchmarks/retrieval.py

    from core.platform.config import get_settings

    dim = get_settings().embedding_dim
    url = os.environ["DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        with conn.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS raw_vectors")
            cursor.execute(f"CREATE TABLE raw_vectors (id bigserial PRIMARY KEY, embedding vector({dim}))")
            rows = [row[0] for row in cursor.execute("SELECT embedding FROM document_chunks ORDER BY id")]
        began = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("COPY raw_vectors (embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["vector"])
            for vector in rows:
                copy.write_row((vector,))
        copy_seconds = time.perf_counter() - began
        conn.execute("VACUUM ANALYZE raw_vectors")
        began = time.perf_counter()
        conn.execute(
            "CREATE INDEX raw_vectors_hnsw ON raw_vectors USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        build_seconds = time.perf_counter() - began
        sample = rows[: args.live_sample]
        began = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("COPY raw_vectors (embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["vector"])
            for vector in sample:
                copy.write_row((vector,))
        live_seconds = time.perf_counter() - began
        conn.execute("SET hnsw.ef_search = 100")
        conn.execute("SET enable_seqscan = off")  # the HNSW baseline even where a scan would win (small runs)
        vectors = _query_vectors(_questions(max(args.queries, 50)), args.dense)
        latencies, cpu = [], []
        backend = conn.info.backend_pid
        for number in range(args.queries + 20):
            start = time.perf_counter()
            cpu_began = on_cpu_seconds(backend)
            conn.execute(RAW_SEARCH, (vectors[number % len(vectors)],)).fetchall()
            if number >= 20:
                cpu.append(on_cpu_seconds(backend) - cpu_began)
                latencies.append(time.perf_counter() - start)
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {RAW_SEARCH}", (vectors[0],)).fetchall())
        interleaved = _interleaved(conn, args)
        conn.execute("DROP TABLE raw_vectors")
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("shared_buffers", "maintenance_work_mem", "max_parallel_maintenance_workers")
        }
        versions = {
            "postgres": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
            "pgvector": conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0],  # type: ignore[index]
        }
    return {
        "rows": len(rows),
        "copy_rows_per_second": len(rows) / copy_seconds,
        "build_rows_per_second": len(rows) / build_seconds,
        "build_seconds": build_seconds,
        "live_rows": len(sample),
        "live_rows_per_second": len(sample) / live_seconds,
        "latencies": latencies,
        "cpu": cpu,
        "uses_index": "raw_vectors_hnsw" in plan,
        "interleaved": interleaved,
        "server": settings,
        **versions,
    }


def _interleaved(conn: Any, args: argparse.Namespace) -> dict[str, list[float]]:
    """CPU seconds of the same questions asked alternately of raw HNSW and of Quorum's hybrid search,
    after the load: the two compared at the same moment, whatever the machine or the caches do
    between phases (autovacuum's pass over a load once doubled the separate after-phase figure)."""
    from retrieval import on_cpu_seconds  # benchmarks/retrieval.py

    actor = _bench_actor()
    questions = _questions(max(args.queries, 50))
    vectors = _query_vectors(questions, args.dense)
    raw_cpu: list[float] = []
    hybrid_cpu: list[float] = []
    for number in range(args.queries + 20):
        question, vector = questions[number % len(questions)], vectors[number % len(vectors)]
        began = on_cpu_seconds(conn.info.backend_pid)
        conn.execute(RAW_SEARCH, (vector,)).fetchall()
        raw_used = on_cpu_seconds(conn.info.backend_pid) - began
        hybrid_used = _hybrid_search_cpu(actor, question, vector)
        if number >= 20:
            raw_cpu.append(raw_used)
            hybrid_cpu.append(hybrid_used)
    return {"raw_cpu": raw_cpu, "hybrid_cpu": hybrid_cpu}


# Orchestrator -------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def run_kind(args: argparse.Namespace, dense: bool, base_env: dict[str, str]) -> dict[str, Any]:
    """One full run (fresh database): ingest with searches running, settle, search, raw baselines."""
    from retrieval import _database_urls, _fresh_database  # the scratch server of benchmarks/retrieval.py

    from core.platform.embedded import start_postgres

    start_postgres(WORK / "pg")  # sized like Quorum's embedded server, before retrieval.py attaches to it
    kind = "dense" if dense else "hashing"
    name = f"{DATABASE}_{kind}"
    admin, target = _database_urls(name)
    _fresh_database(admin, name)
    data_dir = WORK / f"ingest-data-{kind}"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    env = base_env | {"DATABASE_URL": target, "QUORUM_DATA_DIR": str(data_dir)}
    fake = None
    if dense:
        from tests.fake_openai import FakeOpenAI

        fake = FakeOpenAI().start()
        fake.dense_embeddings = True
        fake.embedding_latency = args.api_latency
        if args.api_tpm:
            fake.limit_embeddings(requests=args.api_rpm, tokens=args.api_tpm, window_seconds=60.0)
        env |= {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url}
    command = [sys.executable, __file__, *sys.argv[1:], "--kind", kind]

    def phase(name: str, *extra: str) -> dict[str, Any]:
        subprocess.run([*command, "--phase", name, *extra], env=env, check=True)
        return dict(json.loads((WORK / f"ingest-{kind}-{name}.json").read_text()))

    try:
        phase("setup")
        stop = WORK / "query-stop"
        stop.unlink(missing_ok=True)
        during_out = WORK / f"ingest-{kind}-query.json"
        searcher = subprocess.Popen([*command, "--phase", "query", "--until-stopped"], env=env)
        load_before = os.getloadavg()[0]
        ingest = phase("ingest")
        stop.touch()
        if searcher.wait() != 0:
            raise SystemExit("the search process failed")
        during = json.loads(during_out.read_text())
        explain = phase("explain")
        settle = phase("settle")
        explain_after = phase("explain", "--moment", "after")
        after = phase("query")
        raw = phase("raw")
    finally:
        if fake is not None:
            fake.stop()
        # The phases' embedded Redis belongs to the run's data folder: it would outlive the run.
        from core.platform.config import get_settings
        from core.platform.embedded import stop_embedded_redis

        stop_embedded_redis(get_settings().model_copy(update={"data_dir": data_dir, "redis_url": None}))
    return {
        "kind": kind,
        "ingest": ingest,
        "settle": settle,
        "explain": explain,
        "explain_after": explain_after,
        "during": during,
        "after": after,
        "raw": raw,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "api_requests": len(fake.calls("/v1/embeddings")) if fake else 0,
        "api_peak_in_flight": fake.embeddings_in_flight_peak if fake else 0,
    }


def render(result: dict[str, Any], args: argparse.Namespace, total_s: float) -> str:
    runs = result["runs"]
    first_raw = runs[0]["raw"]
    lines = [
        "# Ingestion benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/ingest.py --documents "
        f"{args.documents} --workers {args.workers}` in {total_s / 60:.1f} min on {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}, {_memory_gb()} GB RAM), PostgreSQL {first_raw['postgres']} "
        f"with pgvector {first_raw['pgvector']} (pgserver on the same machine, sized by Quorum: "
        f"shared_buffers {first_raw['server']['shared_buffers']}, maintenance_work_mem "
        f"{first_raw['server']['maintenance_work_mem']}, {first_raw['server']['max_parallel_maintenance_workers']} "
        f"parallel maintenance worker), Python {platform.python_version()}. The machine is shared with other "
        "engineers' work: load average (1 min) at the start / end of each run is in the table; every figure is "
        "slower under that load than on an idle machine.",
        "",
        f"{result['documents']:,} synthetic documents ({result['bytes'] / 1e6:.0f} MB of text; every fifth Markdown "
        "with headings), ingested through `core.documents.ingest_paths(wait=True, processes=N)` — what "
        f"`python -m core.cli ingest FOLDER --jobs {args.workers}` runs: per file detect the type, store it with "
        "its sha256, commit a PENDING row, index it (extract, chunk 500/60 tokens, embed, binary COPY, swap to "
        "COMPLETED) in one of the N processes, while the parent process builds the vector indexes "
        "(`core.documents.vector_segments`: chunks are searched exactly until "
        f"{result['tail_rows']:,} wait, then sealed into a partial HNSW index built in bulk; indexes of similar "
        "size are merged). Meanwhile one process searches (hybrid, k=10) every 50 ms. "
        "**hashing**: the offline embedder. **dense**: the OpenAI path (`OPENAI_BASE_URL`) against the test "
        f"suite's fake server answering after {args.api_latency:g} s per request with dense vectors "
        "(a fixed random projection of the hashing vectors: every coordinate non-zero, like a model's).",
        "",
        "## End to end, beside raw pgvector on the same rows",
        "",
        "| vectors | load | chunks | Quorum end to end (all COMPLETED, searchable) | then index catch-up | "
        "raw binary COPY, no index | raw HNSW build | raw COPY into the live HNSW index |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        ingest, raw, settle = run["ingest"], run["raw"], run["settle"]
        lines.append(
            f"| {run['kind']} | {run['load_before']:.1f} / {run['load_after']:.1f} | {ingest['chunks']:,} | "
            f"**{ingest['chunks'] / ingest['wall_seconds']:,.0f} chunks/s** ({ingest['wall_seconds']:.0f} s) | "
            f"{settle['seconds']:.0f} s ({settle['tail_rows']:,} rows) | {raw['copy_rows_per_second']:,.0f} rows/s | "
            f"{raw['build_rows_per_second']:,.0f} rows/s ({raw['build_seconds']:.0f} s) | "
            f"{raw['live_rows_per_second']:,.0f} rows/s ({raw['live_rows']:,} rows) |"
        )
    lines += [
        "",
        "## CPU cost per chunk (independent of the machine's load)",
        "",
        "CPU seconds the ingest used, read from the kernel's process accounting: the ingest processes "
        "(read, extract in the sandboxed child, chunk, embed, COPY) and the whole PostgreSQL server (the writes, "
        "their text-search parse and GIN entries, term statistics, the HNSW builds of sealed segments, and the "
        "searching process's queries). On an otherwise idle machine the end-to-end rate cannot exceed "
        "CPUs / (CPU seconds per chunk).",
        "",
        f"| vectors | Python ms/chunk | PostgreSQL ms/chunk | total ms/chunk | ceiling on {os.cpu_count()} idle CPUs |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        ingest = run["ingest"]
        if "python_cpu_seconds" not in ingest or not ingest["chunks"]:
            continue
        python_ms = ingest["python_cpu_seconds"] * 1000 / ingest["chunks"]
        postgres_ms = ingest["postgres_cpu_seconds"] * 1000 / ingest["chunks"]
        lines.append(
            f"| {run['kind']} | {python_ms:.2f} | {postgres_ms:.2f} | {python_ms + postgres_ms:.2f} | "
            f"{(os.cpu_count() or 1) * 1000 / (python_ms + postgres_ms):,.0f} chunks/s |"
        )
    lines += [
        "",
        "## Query latency while ingesting and after (hybrid: vector + full text, k=10)",
        "",
        "| vectors | Quorum hybrid during the ingest p50 / p95 ms | exact-scanned tail during (max rows) | "
        "Quorum hybrid after p50 / p95 ms | raw pgvector HNSW p50 / p95 ms | hybrid p95 / raw p95 during, after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        during, after, raw = run["during"]["latencies"], run["after"]["latencies"], run["raw"]["latencies"]
        raw95, during95, after95 = _percentile(raw, 95), _percentile(during, 95), _percentile(after, 95)
        tail = max(run["during"]["tail_rows"] or [0])
        lines.append(
            f"| {run['kind']} | {_percentile(during, 50):.1f} / {during95:.1f} ({len(during)} queries) | {tail:,} | "
            f"{_percentile(after, 50):.1f} / {after95:.1f} | {_percentile(raw, 50):.1f} / {raw95:.1f} | "
            f"{during95 / raw95:.1f}x, {after95 / raw95:.1f}x |"
        )
    lines += [
        "",
        "The same searches in CPU time (the searching thread and its PostgreSQL backend, from the kernel's "
        "scheduler statistics): what a search costs whatever else runs, so during and after compare fairly "
        "with the raw baseline, which was measured after the load.",
        "",
        "| vectors | hybrid during p50 / p95 CPU ms | hybrid after p50 / p95 CPU ms | raw HNSW p50 / p95 CPU ms | "
        "hybrid p95 / raw p95 (CPU) during, after | load (1 min) while searching during, min-max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        during, after, raw = (run[name].get("cpu") or [] for name in ("during", "after", "raw"))
        if not (during and after and raw):
            continue
        raw95 = _percentile(raw, 95)
        loads = run["during"].get("loads") or [float("nan")]
        lines.append(
            f"| {run['kind']} | {_percentile(during, 50):.1f} / {_percentile(during, 95):.1f} | "
            f"{_percentile(after, 50):.1f} / {_percentile(after, 95):.1f} | "
            f"{_percentile(raw, 50):.1f} / {raw95:.1f} | {_percentile(during, 95) / raw95:.1f}x, "
            f"{_percentile(after, 95) / raw95:.1f}x | {min(loads):.1f}-{max(loads):.1f} |"
        )
    lines += [
        "",
        "After the load, the same questions asked alternately of raw HNSW and of the hybrid search (CPU ms, "
        "measured together in the raw phase, so both see the same machine and caches):",
        "",
        "| vectors | hybrid p50 / p95 | raw HNSW p50 / p95 | hybrid p95 / raw p95 |",
        "|---|---:|---:|---:|",
    ]
    for run in runs:
        pair = run["raw"].get("interleaved") or {}
        hybrid, raw = pair.get("hybrid_cpu") or [], pair.get("raw_cpu") or []
        if hybrid and raw:
            lines.append(
                f"| {run['kind']} | {_percentile(hybrid, 50):.1f} / {_percentile(hybrid, 95):.1f} | "
                f"{_percentile(raw, 50):.1f} / {_percentile(raw, 95):.1f} | "
                f"{_percentile(hybrid, 95) / _percentile(raw, 95):.1f}x |"
            )
    lines += [
        "",
        "Search CPU during the load, by tenth of it (p50 / p95 ms), with the most partial HNSW indexes a search "
        "visited in that tenth; then one search's EXPLAIN ANALYZE execution time (its generic plan, as "
        "searches run it) as the load ended and once merged (plans in benchmarks/.work/ingest-KIND-plan-*.txt):",
        "",
        "| vectors | " + " | ".join(f"{n}/10" for n in range(1, 11)) + " | end of load | merged |",
        "|---|" + "---:|" * 12,
    ]

    def explained(explain: dict[str, Any] | None) -> str:
        return f"{explain['execution_ms']:.0f} ms ({explain['indexes']})" if explain else "-"

    for run in runs:
        cpu, indexes = run["during"].get("cpu") or [], run["during"].get("indexes") or []
        if len(cpu) < 10 or not indexes:
            continue
        cells = []
        for tenth in range(10):
            part = cpu[tenth * len(cpu) // 10 : (tenth + 1) * len(cpu) // 10]
            visited = indexes[tenth * len(indexes) // 10 : (tenth + 1) * len(indexes) // 10] or [0]
            cells.append(f"{_percentile(part, 50):.0f} / {_percentile(part, 95):.0f} ({max(visited)})")
        ends = f"{explained(run.get('explain'))} | {explained(run.get('explain_after'))}"
        lines.append(f"| {run['kind']} | " + " | ".join(cells) + f" | {ends} |")
    dense = [run for run in runs if run["kind"] == "dense"]
    if dense:
        run = dense[0]
        lines += [
            "",
            f"Dense run through the API path: {run['api_requests']:,} embedding requests, at most "
            f"{run['api_peak_in_flight']} in flight at once at the fake server ({args.workers} processes x "
            "QUORUM_EMBEDDING_CONCURRENCY requests each, within the rate budgets it reports).",
        ]
    failed = [path for run in runs for path in run["ingest"]["failed"]]
    if failed:
        lines += ["", f"Not completed: {', '.join(failed[:10])}"]
    return "\n".join(lines) + "\n"


def _memory_gb() -> str:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return "?"
    return f"{pages / 2**30:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="ingesting processes")
    parser.add_argument("--kinds", default="hashing,dense", help="vector kinds to run: hashing, dense")
    parser.add_argument("--queries", type=int, default=200, help="searches measured after the ingest")
    parser.add_argument("--live-sample", type=int, default=1000, help="rows COPYed into the live raw index")
    parser.add_argument("--api-latency", type=float, default=0.5, help="seconds the fake API takes per request")
    parser.add_argument("--api-rpm", type=int, default=10_000, help="fake API requests per minute (with --api-tpm)")
    parser.add_argument("--api-tpm", type=int, default=0, help="fake API tokens per minute; 0 = unlimited")
    parser.add_argument("--compare-chunkers", action="store_true", help="also compare with LangChain's splitter")
    parser.add_argument("--quality-sample", type=int, default=200, help="texts checked for cut words")
    phase_names = ["setup", "ingest", "explain", "settle", "query", "raw"]
    parser.add_argument("--phase", choices=phase_names, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="hashing", help=argparse.SUPPRESS)
    parser.add_argument("--until-stopped", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--moment", default="during", help=argparse.SUPPRESS)
    parser.add_argument("--notes", default="", help="a file appended to the results")
    args = parser.parse_args()
    args.dense = args.kind == "dense"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("core.documents").setLevel(logging.WARNING)
    WORK.mkdir(parents=True, exist_ok=True)

    if args.phase:
        phases = {
            "setup": phase_setup,
            "ingest": phase_ingest,
            "settle": phase_settle,
            "explain": phase_explain,
            "query": phase_query,
            "raw": phase_raw,
        }
        out = WORK / f"ingest-{args.kind}-{args.phase}.json"
        out.write_text(json.dumps(phases[args.phase](args), indent=2))
        return

    began = time.perf_counter()
    paths = write_documents(args.documents)
    base_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "STORAGE_URL")}
    base_env |= {"QUORUM_ENVIRONMENT": "development", "PYTHONPATH": str(ROOT)}
    from core.platform.config import get_settings

    result: dict[str, Any] = {
        "documents": len(paths),
        "bytes": sum(p.stat().st_size for p in paths),
        "tail_rows": get_settings().vector_tail_rows,
        "runs": [run_kind(args, kind == "dense", base_env) for kind in args.kinds.split(",")],
    }
    if args.compare_chunkers:
        settings = get_settings()
        result["comparison"] = compare_chunkers(
            paths, settings.chunk_size_tokens, settings.chunk_overlap_tokens, sample=args.quality_sample
        )
    total = time.perf_counter() - began
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2))
    report = render(result, args, total)
    if args.notes:
        report += "\n" + Path(args.notes).read_text()
    (RESULTS / "ingest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
