"""Ingestion benchmark: 1,000 documents to ~100k chunks through Quorum's real pipeline.

On a fresh database of a scratch PostgreSQL+pgvector (pgserver in benchmarks/.work/pg), with
the offline hashing embedder (1536 dimensions) and the schema's HNSW and GIN indexes in place:

- writes N synthetic documents (topical prose in paragraphs; every fifth one Markdown with
  headings) to benchmarks/.work/ingest-docs;
- runs core.documents.indexing.ingest_paths(wait=True), the CLI's path: per file, type detection,
  storage (local folder) with sha256, a PENDING row, then index_document in this process:
  extraction, chunking (500/60 tokens, cl100k_base), embedding in batches of 256, binary
  COPY + upsert of the chunks, progress and the generation swap;
- times each stage by wrapping Chunker.chunk_sections, the provider's embed and
  core.documents.indexing.write_chunks, and reports chunking tokens/s, insert rows/s and wall time;
- chunks the same texts with langchain-text-splitters' TokenTextSplitter (same encoding,
  size and overlap) side by side, and counts chunks that begin or end inside a word.

Results go to benchmarks/results/ingest.md and ingest.json.

    .venv/bin/pip install -r benchmarks/requirements.txt    # the peer, benchmark only
    .venv/bin/python benchmarks/ingest.py                   # full run (1,000 documents)
    .venv/bin/python benchmarks/ingest.py --documents 20    # smoke run
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


# Timing hooks -------------------------------------------------------------------------------


class Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, seconds: float, count: int) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + count


def install_hooks(watch: Stopwatch) -> None:
    """Time chunking, embedding and chunk writes inside the real pipeline."""
    from core.ai import get_provider
    from core.documents import indexing as documents
    from core.documents.chunking import Chunker

    class TimedChunker(Chunker):
        def chunk_sections(self, sections: Any) -> Any:
            sections = list(sections)
            began = time.perf_counter()
            chunks = super().chunk_sections(sections)
            elapsed = time.perf_counter() - began
            watch.add("chunk", elapsed, sum(self.count(s.text) for s in sections))
            watch.add("chunks", 0.0, len(chunks))
            return chunks

    documents.Chunker = TimedChunker  # type: ignore[misc]

    original_write = documents.write_chunks

    def timed_write(session: Any, document_id: int, generation: int, chunks: Any, vectors: Any) -> None:
        began = time.perf_counter()
        original_write(session, document_id, generation, chunks, vectors)
        watch.add("insert", time.perf_counter() - began, len(chunks))

    documents.write_chunks = timed_write  # type: ignore[assignment]

    provider = get_provider()
    original_embed = provider.embed

    def timed_embed(texts: Any, *, usage: Any) -> Any:
        began = time.perf_counter()
        vectors = original_embed(texts, usage=usage)
        watch.add("embed", time.perf_counter() - began, len(texts))
        return vectors

    provider.embed = timed_embed  # type: ignore[method-assign]


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


# Phases (each a subprocess with DATABASE_URL pointing at the fresh database) -----------------


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


def phase_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Migrate, create the benchmark user, write the documents."""
    from core.platform.schema import upgrade_database

    upgrade_database()
    _bench_actor()
    began = time.perf_counter()
    paths = write_documents(args.documents)
    seconds = time.perf_counter() - began
    size = sum(p.stat().st_size for p in paths)
    log.info("wrote %s documents (%.0f MB) in %.1fs", len(paths), size / 1e6, seconds)
    return {"documents": len(paths), "bytes": size, "generate_seconds": seconds}


def phase_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest this process's share of the documents (every workers-th file) and time the stages."""
    from core.documents import ingest_paths

    paths = sorted(DOCS.iterdir())[args.slice :: args.workers]
    actor = _bench_actor()
    watch = Stopwatch()
    install_hooks(watch)
    began = time.perf_counter()
    results = []
    for start in range(0, len(paths), 25):
        results += ingest_paths(actor=actor, paths=paths[start : start + 25], visibility="team", wait=True)
        log.info("worker %s: %s/%s documents, %.0fs", args.slice, len(results), len(paths), time.perf_counter() - began)
    return {
        "wall_seconds": time.perf_counter() - began,
        "stage_seconds": watch.seconds,
        "stage_counts": watch.counts,
        "failed": [r.path for r in results if r.status != "COMPLETED"],
    }


def phase_finish(args: argparse.Namespace) -> dict[str, Any]:
    """Count what was stored and compare the chunkers on the same texts."""
    from sqlalchemy import func, select, text

    from core.platform.config import get_settings
    from core.platform.db import session_scope
    from core.platform.models import Document, DocumentChunk

    settings = get_settings()
    with session_scope() as session:
        chunks = session.scalar(select(func.count()).select_from(DocumentChunk))
        completed = session.scalar(select(func.count()).where(Document.status == "COMPLETED"))
        postgres = session.scalar(text("SHOW server_version"))
        pgvector = session.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    log.info("comparing chunkers on the same texts")
    comparison = compare_chunkers(
        sorted(DOCS.iterdir()), settings.chunk_size_tokens, settings.chunk_overlap_tokens, sample=args.quality_sample
    )
    return {
        "completed": completed,
        "chunks": chunks,
        "chunk_size": settings.chunk_size_tokens,
        "chunk_overlap": settings.chunk_overlap_tokens,
        "embedding_batch": settings.embedding_batch_size,
        "embedding_dim": settings.embedding_dim,
        "postgres": postgres,
        "pgvector": pgvector,
        "comparison": comparison,
    }


# Orchestrator -------------------------------------------------------------------------------


def render(result: dict[str, Any], args: argparse.Namespace, total_s: float) -> str:
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for worker in result["workers"]:
        for key, value in worker["stage_seconds"].items():
            seconds[key] = seconds.get(key, 0.0) + value
        for key, value in worker["stage_counts"].items():
            counts[key] = counts.get(key, 0) + value
    wall = result["ingest_wall_seconds"]
    busy = sum(w["wall_seconds"] for w in result["workers"])
    other = busy - sum(seconds.get(k, 0.0) for k in ("chunk", "embed", "insert"))
    tokens, rows = counts.get("chunk", 0), counts.get("insert", 0)
    workers = len(result["workers"])
    failed = [path for w in result["workers"] for path in w["failed"]]
    c = result["comparison"]

    def rate(count: float, spent: float) -> str:
        return f"{count / spent:,.0f}" if spent else "—"

    lines = [
        "# Ingestion benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/ingest.py --documents "
        f"{args.documents} --workers {workers}` in {total_s / 60:.1f} min on {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}, {_memory_gb()} GB RAM), PostgreSQL {result['postgres']} "
        f"with pgvector {result['pgvector']} (pgserver defaults, same machine), Python {platform.python_version()}. "
        f"Load average before / after: {result.get('load_before', '?')} / {result.get('load_after', '?')} "
        "(the machine is shared; other work running at the same time slows every figure).",
        "",
        f"{result['documents']:,} synthetic documents ({result['bytes'] / 1e6:.0f} MB of text; every fifth "
        f"Markdown with headings) ingested by {workers} worker process{'es' if workers != 1 else ''} in parallel, "
        "each through `core.documents.indexing.ingest_paths(wait=True)`, the CLI path: detect the type, store with "
        "sha256, commit a PENDING row, then index_document (extract, chunk, embed, write, swap). Chunks of "
        f"{result['chunk_size']} tokens with {result['chunk_overlap']} overlap (cl100k_base), offline hashing "
        f"embeddings ({result['embedding_dim']} dimensions) in batches of {result['embedding_batch']}, binary COPY "
        "into a staging table then one upsert per batch, with the migrations' HNSW (m=16, ef_construction=64) "
        "and GIN indexes maintained on every insert.",
        "",
        "## Pipeline",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| documents completed | {result['completed']:,} of {result['documents']:,} |",
        f"| chunks stored | {result['chunks']:,} |",
        f"| total wall time of the ingestion | {wall:.0f} s ({wall / 60:.1f} min) |",
        f"| documents/s, chunks/s end to end | {result['documents'] / wall:.2f}, {result['chunks'] / wall:.0f} |",
        f"| chunking, per process | {rate(tokens, seconds.get('chunk', 0))} tokens/s ({tokens:,} tokens, "
        f"{seconds.get('chunk', 0):.0f} s) |",
        f"| embedding (offline hashing), per process | {rate(counts.get('embed', 0), seconds.get('embed', 0))} "
        f"chunks/s ({seconds.get('embed', 0):.0f} s) |",
        f"| insert (COPY + upsert, HNSW + GIN maintained), per process | {rate(rows, seconds.get('insert', 0))} "
        f"rows/s ({seconds.get('insert', 0):.0f} s) |",
        f"| insert, all processes together | {rate(rows, wall)} rows/s |",
        f"| everything else (read, detect, store, extract, commits, swap) | {other:.0f} s |",
        "",
        "Stage seconds are summed over the worker processes. Inserting into the HNSW index dominates: "
        "each 1536-dimension row costs the PostgreSQL backend milliseconds of graph search and neighbour "
        "updates, while the Python side (chunking, embedding, COPY) waits. More worker processes (and a "
        "PostgreSQL with more cores and shared_buffers than pgserver's 128 MB default) raise the total.",
        "",
        "## Chunking side by side (same extracted texts, same tokenizer, size and overlap)",
        "",
        "| chunker | seconds | tokens/s | chunks | chunks starting or ending inside a word (sample) "
        "| largest chunk (tokens) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| Quorum `core.documents.chunking.Chunker` | {c['quorum_seconds']:.1f} | "
        f"{rate(c['tokens'], c['quorum_seconds'])} | "
        f"{c['quorum_chunks']:,} | {c['quorum_cut_words']:,} of {c.get('quorum_sample_chunks', '?'):,} | "
        f"{c['quorum_max_tokens']} |",
    ]
    if "peer_seconds" in c:
        lines.append(
            f"| {c['peer']} `TokenTextSplitter` | {c['peer_seconds']:.1f} | {rate(c['tokens'], c['peer_seconds'])} | "
            f"{c['peer_chunks']:,} | {c['peer_cut_words']:,} of {c['peer_sample_chunks']:,} | "
            f"{c['peer_max_tokens']} |"
        )
    else:
        lines.append(f"| peer | not run: {c['peer']} | | | | |")
    lines += [
        "",
        f"{c['tokens']:,} tokens in {c['documents']:,} documents, one process. Quorum's chunker ends chunks at "
        "sentence or paragraph ends, never inside a word, and counts each chunk's tokens exactly; the token "
        "splitter slices the token stream every 440 tokens wherever that falls, so a chunk starts or ends "
        "inside a word whenever the cut lands inside a word of several tokens, and chunks are fuller (fewer "
        f"chunks). The sample is the chunks of the first {c.get('sample_texts', '?')} texts.",
    ]
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
    parser.add_argument("--quality-sample", type=int, default=200, help="texts checked for cut words")
    parser.add_argument("--phase", choices=["setup", "ingest", "finish"], help=argparse.SUPPRESS)
    parser.add_argument("--slice", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--notes", default="", help="a file appended to the results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("core.documents.indexing").setLevel(logging.WARNING)
    WORK.mkdir(parents=True, exist_ok=True)

    if args.phase:
        phases = {"setup": phase_setup, "ingest": phase_ingest, "finish": phase_finish}
        out = WORK / f"ingest-{args.phase}-{args.slice}.json"
        out.write_text(json.dumps(phases[args.phase](args), indent=2))
        return

    began = time.perf_counter()
    load_before = f"{os.getloadavg()[0]:.1f}"
    from retrieval import _database_urls, _fresh_database  # the scratch server of benchmarks/retrieval.py

    admin, target = _database_urls(DATABASE)
    _fresh_database(admin, DATABASE)
    data_dir = WORK / "ingest-data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "STORAGE_URL")}
    env |= {
        "DATABASE_URL": target,
        "QUORUM_DATA_DIR": str(data_dir),
        "QUORUM_ENVIRONMENT": "development",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, __file__, *sys.argv[1:]]

    def read(phase: str, part: int = 0) -> dict[str, Any]:
        return dict(json.loads((WORK / f"ingest-{phase}-{part}.json").read_text()))

    subprocess.run([*command, "--phase", "setup"], env=env, check=True)
    ingest_began = time.perf_counter()
    workers = [
        subprocess.Popen([*command, "--phase", "ingest", "--slice", str(part)], env=env) for part in range(args.workers)
    ]
    if any(worker.wait() != 0 for worker in workers):
        raise SystemExit("an ingest worker failed")
    ingest_wall = time.perf_counter() - ingest_began
    subprocess.run([*command, "--phase", "finish"], env=env, check=True)

    result = {
        **read("setup"),
        **read("finish"),
        "ingest_wall_seconds": ingest_wall,
        "load_before": load_before,
        "load_after": f"{os.getloadavg()[0]:.1f}",
        "workers": [read("ingest", part) for part in range(args.workers)],
    }
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
