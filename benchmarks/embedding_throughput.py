"""Embedding throughput through the OpenAI path: is a large ingest bounded by the provider or by Quorum?

The test suite's fake OpenAI server (tests/fake_openai.py) runs in this process and answers
each embeddings request after a realistic delay that grows with its size (default 0.3 s +
2 s per million input tokens: 0.4 s for a 100-chunk document, 0.9 s for a full 300,000-token
request), optionally within per-minute request and token limits it reports in the API's
x-ratelimit-* headers (429 with retry-after-ms beyond them, like the API).

W worker processes (spawned, each its own provider, as `core.cli ingest --jobs W` or W
Dramatiq worker processes have) embed a synthetic corpus of documents of ~500-token chunks
exactly as index_document does: each document's chunks in steps of
core.documents.indexing.chunks_per_step through get_provider().embed, several documents at
once per process in settings.embedding_requests_in_flight threads (what the CLI's ingest and
a worker's threads do). Extraction, chunking and the database writes are left out: their
cost is in benchmarks/results/ingest.md; this measures the embedding path alone. Each
document's first and last vector are checked against the text they belong to.

Reported per run: chunks/s and tokens/min achieved, the server's limit and how much of it was
used, requests in flight at the server (peak and mean), 429s received and retried requests,
CPU seconds per chunk in the workers (Quorum's side) and in this process (the fake server:
on a real API that work is the provider's), and the load average at the start and end.

    .venv/bin/python benchmarks/embedding_throughput.py                 # the runs of the results file
    .venv/bin/python benchmarks/embedding_throughput.py --runs unlimited:1:2000   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # core and tests, when run as a script
sys.path.insert(0, str(BENCHMARKS))  # the corpus of ingest.py, the scratch server of retrieval.py
WORK = BENCHMARKS / ".work"
RESULTS = BENCHMARKS / "results"
DATABASE = "quorum_bench_embedding"
WORDS_PER_CHUNK = 490  # about 500 tokens of the corpus's prose (measured: see tokens per chunk)
EMBEDDINGS = "/v1/embeddings"
DEFAULT_RUNS = "unlimited:1:20000,unlimited:2:20000,limited:1:100000,limited:2:100000"


# Worker process ----------------------------------------------------------------------------


def _chunk_texts(corpus: Any, document: int, chunks: int) -> list[str]:
    """The chunks of document `document`: Zipf-distributed real word pieces, like ingest.py's prose."""
    rng = np.random.default_rng(corpus.seed + document)
    words = rng.choice(corpus.words, size=(chunks, WORDS_PER_CHUNK), p=corpus.weights)
    return [" ".join(row.tolist()) for row in words]


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Embed documents index, index + W, ... of the corpus as index_document does; report CPU and checks."""
    from ingest import Corpus

    from core.ai import get_provider
    from core.ai.base import UsageContext
    from core.ai.hashing import hashing_embed
    from core.documents.indexing import chunks_per_step
    from core.platform.config import get_settings

    corpus = Corpus()
    settings = get_settings()
    provider = get_provider()
    step = chunks_per_step(settings)
    documents = list(range(args.worker_index, args.chunks // args.document_chunks, args.workers))
    texts = {number: _chunk_texts(corpus, number, args.document_chunks) for number in documents}
    results: dict[int, tuple[list[float], list[float]]] = {}
    errors: list[str] = []
    todo = iter(documents)
    lock = threading.Lock()

    def embed_documents() -> None:
        while True:
            with lock:
                number = next(todo, None)
            if number is None:
                return
            chunks = texts[number]
            try:
                vectors: list[list[float]] = []
                for start in range(0, len(chunks), step):
                    vectors += provider.embed(chunks[start : start + step], usage=UsageContext(purpose="embedding"))
                results[number] = (vectors[0], vectors[-1])
            except Exception as error:  # noqa: BLE001  (a failed document is reported, as the job records it)
                errors.append(f"document {number}: {error}")

    ready = WORK / f"embedding-ready-{args.worker_index}"
    ready.touch()
    while not (WORK / "embedding-go").exists():
        time.sleep(0.01)
    began_cpu, began = time.process_time(), time.time()
    threads = [threading.Thread(target=embed_documents) for _ in range(settings.embedding_requests_in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended, ended_cpu = time.time(), time.process_time()
    # Order kept: each document's first and last vectors are those of its first and last texts.
    wrong = 0
    for number, (first, last) in results.items():
        expected = hashing_embed([texts[number][0], texts[number][-1]], settings.embedding_dim)
        wrong += int(not np.allclose(np.asarray([first, last]), expected, atol=1e-5))
    return {
        "documents": len(documents),
        "embedded": len(results),
        "chunks": sum(len(texts[number]) for number in results),
        "order_wrong": wrong,
        "errors": errors[:5],
        "error_count": len(errors),
        "started": began,
        "ended": ended,
        "cpu_seconds": ended_cpu - began_cpu,
        "threads": len(threads),
        "chunks_per_step": step,
    }


# One run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, limited: bool, workers: int, chunks: int, env: dict[str, str]) -> dict[str, Any]:
    from tests.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    fake.embedding_latency = args.latency
    fake.embedding_latency_per_token = args.latency_per_million_tokens / 1e6
    env = env | {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url}
    for stale in [*WORK.glob("embedding-ready-*"), *WORK.glob("embedding-worker-*"), WORK / "embedding-go"]:
        stale.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--phase", "worker", "--workers", str(workers), "--chunks", str(chunks)]
    command += ["--document-chunks", str(args.document_chunks)]
    processes = [subprocess.Popen([*command, "--worker-index", str(index)], env=env) for index in range(workers)]
    while not all((WORK / f"embedding-ready-{index}").exists() for index in range(workers)):
        if any(process.poll() is not None for process in processes):
            raise SystemExit("a worker failed before starting")
        time.sleep(0.05)
    load_before = os.getloadavg()
    if limited:
        # The per-minute limits, applied in windows of args.window seconds (that share of the
        # budget each), so the first window's burst weighs little in a run of a few minutes.
        share = args.window / 60.0
        fake.limit_embeddings(requests=int(args.rpm * share), tokens=int(args.tpm * share), window_seconds=args.window)
    began_cpu = time.process_time()
    (WORK / "embedding-go").touch()
    for process in processes:
        if process.wait() != 0:
            raise SystemExit("a worker failed")
    fake_cpu = time.process_time() - began_cpu
    load_after = os.getloadavg()
    reports = [json.loads((WORK / f"embedding-worker-{index}.json").read_text()) for index in range(workers)]
    calls = fake.calls(EMBEDDINGS)
    fake.stop()
    wall = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    served = [call for call in calls if call.status == 200]
    tokens = sum(call.tokens or 0 for call in served)
    embedded = sum(r["chunks"] for r in reports)
    busy = sum(args.latency + args.latency_per_million_tokens / 1e6 * (call.tokens or 0) for call in served)
    result = {
        "limited": limited,
        "workers": workers,
        "chunks": chunks,
        "embedded_chunks": embedded,
        "documents": sum(r["documents"] for r in reports),
        "order_wrong": sum(r["order_wrong"] for r in reports),
        "errors": sum(r["error_count"] for r in reports),
        "error_samples": [e for r in reports for e in r["errors"]][:5],
        "threads_per_worker": reports[0]["threads"],
        "chunks_per_step": reports[0]["chunks_per_step"],
        "wall_seconds": wall,
        "chunks_per_second": embedded / wall,
        "tokens": tokens,
        "tokens_per_chunk": tokens / max(embedded, 1),
        "tokens_per_minute": tokens / wall * 60,
        "requests": len(served),
        "requests_per_minute": len(served) / wall * 60,
        "inputs_per_request": embedded / max(len(served), 1),
        "refused_429": sum(call.status == 429 for call in calls),
        "retried_requests": sum(int(call.headers.get("x-stainless-retry-count", "0") or 0) > 0 for call in calls),
        "in_flight_peak": fake.embeddings_in_flight_peak,
        "in_flight_mean": busy / wall,
        "worker_cpu_seconds": sum(r["cpu_seconds"] for r in reports),
        "fake_cpu_seconds": fake_cpu,
        "load_before": load_before[0],
        "load_after": load_after[0],
    }
    result["worker_cpu_ms_per_chunk"] = 1000 * result["worker_cpu_seconds"] / max(embedded, 1)
    result["fake_cpu_ms_per_chunk"] = 1000 * fake_cpu / max(embedded, 1)
    if limited:
        result["limit_rpm"], result["limit_tpm"] = args.rpm, args.tpm
        result["tpm_used"] = result["tokens_per_minute"] / args.tpm
        result["rpm_used"] = result["requests_per_minute"] / args.rpm
    print(json.dumps(result, indent=2), flush=True)
    return result


# Report ----------------------------------------------------------------------------------


def render(result: dict[str, Any]) -> str:
    args = result["args"]
    runs = result["runs"]
    lines = [
        "# Embedding throughput through the OpenAI path",
        "",
        f"Run {result['date']} by `benchmarks/embedding_throughput.py --runs {args['runs']}` in "
        f"{result['total_seconds'] / 60:.1f} min on {os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}. The machine is shared with other engineers' work: the load average "
        "(1 min) at the start and end of each run is in the tables.",
        "",
        f"The test suite's fake OpenAI server answers each embeddings request after {args['latency']:g} s + "
        f"{args['latency_per_million_tokens']:g} s per million input tokens (a 100-chunk document's request: "
        f"{args['latency'] + args['latency_per_million_tokens'] * 0.05:.2f} s; a full 300,000-token request: "
        f"{args['latency'] + args['latency_per_million_tokens'] * 0.3:.2f} s). **limited** runs: the server allows "
        f"{args['rpm']:,} requests and {args['tpm']:,} tokens per minute (the order of a mid-tier OpenAI "
        f"account's text-embedding-3-small limits), applied in {args['window']:g} s windows of that share of the "
        "budget and reported in the API's x-ratelimit-* headers, with 429 and retry-after-ms beyond them. "
        "**unlimited** runs: no limit, to show Quorum's own ceiling.",
        "",
        f"Workload: documents of {args['document_chunks']} chunks (~500 tokens each, 1536 dimensions), embedded as "
        "index_document does (each document's chunks in steps of `chunks_per_step` through `get_provider().embed`), "
        f"{runs[0]['threads_per_worker']} documents at once per worker process "
        "(`embedding_requests_in_flight`, as the CLI's ingest and a worker's threads do), W spawned worker "
        "processes each with its own provider. Extraction, chunking and database writes are not included "
        "(benchmarks/results/ingest.md measures them); each document's first and last vectors are checked "
        "against their texts (order kept).",
        "",
        "| run | W | chunks | chunks/s | tokens/min | limit (tokens/min) | limit used | requests/min "
        "| in flight peak / mean | 429s | retried | failed docs | order wrong | load start / end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        limit = f"{r['limit_tpm']:,}" if r["limited"] else "none"
        used = f"{100 * r['tpm_used']:.0f}%" if r["limited"] else "—"
        lines.append(
            f"| {'limited' if r['limited'] else 'unlimited'} | {r['workers']} | {r['embedded_chunks']:,} "
            f"| {r['chunks_per_second']:.0f} | {r['tokens_per_minute'] / 1e6:.2f}M | {limit} | {used} "
            f"| {r['requests_per_minute']:.0f} | {r['in_flight_peak']} / {r['in_flight_mean']:.1f} "
            f"| {r['refused_429']} | {r['retried_requests']} | {r['errors']} | {r['order_wrong']} "
            f"| {r['load_before']:.1f} / {r['load_after']:.1f} |"
        )
    lines += [
        "",
        "## CPU per chunk (independent of the machine's load)",
        "",
        "| run | W | Quorum's workers ms/chunk | fake server ms/chunk | wall s | Quorum's ceiling on 2 idle CPUs "
        "| in-flight ceiling (W x threads x inputs / latency) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        latency = (
            args["latency"] + args["latency_per_million_tokens"] * r["tokens_per_chunk"] * r["inputs_per_request"] / 1e6
        )
        in_flight_ceiling = r["workers"] * r["threads_per_worker"] * r["inputs_per_request"] / latency
        lines.append(
            f"| {'limited' if r['limited'] else 'unlimited'} | {r['workers']} | {r['worker_cpu_ms_per_chunk']:.2f} "
            f"| {r['fake_cpu_ms_per_chunk']:.2f} | {r['wall_seconds']:.0f} "
            f"| {2000 / r['worker_cpu_ms_per_chunk']:,.0f} chunks/s | {in_flight_ceiling:,.0f} chunks/s |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="comma-separated limited|unlimited:WORKERS:CHUNKS")
    parser.add_argument("--document-chunks", type=int, default=100, help="chunks per document")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds every request takes")
    parser.add_argument("--latency-per-million-tokens", type=float, default=2.0, help="added seconds per 1M tokens")
    parser.add_argument("--rpm", type=int, default=5_000, help="limited runs: requests per minute")
    parser.add_argument("--tpm", type=int, default=5_000_000, help="limited runs: tokens per minute")
    parser.add_argument("--window", type=float, default=15.0, help="limited runs: seconds per rate window")
    parser.add_argument("--concurrency", type=int, default=4, help="QUORUM_EMBEDDING_CONCURRENCY")
    parser.add_argument("--notes", default="", help="a file appended to the results")
    parser.add_argument("--render", action="store_true", help="only write the .md again from the .json")
    parser.add_argument("--phase", choices=["worker"], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.render:
        report = render(json.loads((RESULTS / "embedding-throughput.json").read_text()))
        if args.notes:
            report += "\n" + Path(args.notes).read_text()
        (RESULTS / "embedding-throughput.md").write_text(report)
        return
    if args.phase == "worker":
        out = WORK / f"embedding-worker-{args.worker_index}.json"
        out.write_text(json.dumps(worker(args), indent=2))
        return

    from retrieval import _database_urls, _fresh_database  # the scratch server of benchmarks/retrieval.py

    from core.platform.embedded import start_postgres

    began = time.perf_counter()
    start_postgres(WORK / "pg")
    admin, target = _database_urls(DATABASE)
    _fresh_database(admin, DATABASE)
    data_dir = WORK / "embedding-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "STORAGE_URL")}
    env |= {
        "QUORUM_ENVIRONMENT": "development",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": target,
        "QUORUM_DATA_DIR": str(data_dir),
        "QUORUM_EMBEDDING_CONCURRENCY": str(args.concurrency),
        "QUORUM_OPENAI_TIMEOUT_SECONDS": "120",  # the fake's CPU shares a busy machine: no spurious timeouts
    }
    subprocess.run(
        [sys.executable, "-c", "from core.platform.schema import upgrade_database; upgrade_database()"],
        env=env,
        check=True,
        cwd=ROOT,
    )
    runs = []
    for spec in args.runs.split(","):
        kind, workers, chunks = spec.split(":")
        runs.append(run(args, kind == "limited", int(workers), int(chunks), env))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": {k: v for k, v in vars(args).items() if k not in ("phase", "workers", "worker_index", "chunks")},
        "runs": runs,
        "total_seconds": time.perf_counter() - began,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embedding-throughput.json").write_text(json.dumps(result, indent=2))
    report = render(result)
    if args.notes:
        report += "\n" + Path(args.notes).read_text()
    (RESULTS / "embedding-throughput.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
