"""Retrieval quality: Quorum's hybrid, its two arms alone and a bm25s baseline, on real questions.

For each question set and each embedder, on its own fresh database of a scratch
PostgreSQL+pgvector (pgserver in benchmarks/.work/pg):

- ingests a BEIR-style folder (corpus.jsonl ``{"doc_id", "text"}`` or ``{"_id", "title", "text"}``,
  queries.jsonl ``{"id"|"_id", "text"}``, qrels.tsv ``query-id<TAB>doc-id<TAB>score``) through
  the real ingest path: one .txt file per document, ``core.documents.ingest_paths``
  (upload, extraction, chunking, embedding, chunk writes, generation swap, term statistics);
- asks every question through ``core.chat.retrieval.search_chunks`` and ranks documents by
  their best chunk: the Quorum hybrid as configured (k chunks, default candidates), then its
  full-text arm alone and its vector arm alone (each arm's own ranking, read from one wider
  call with no distance cut that returns every candidate of both arms: k = candidates = the
  set's chunk count, at least 100; a smaller k cut the fused list, and with it the weaker
  vector arm's list);
- ranks the same documents with bm25s (PyStemmer English stemmer, English stopwords,
  k1 0.9, b 0.4), the reference BM25 of the issue;
- reports nDCG@10, recall@10 and MRR@10 per system (binary relevance, as BEIR scores it).

Question sets: ``scifact`` (../shared/eval/scifact-dev: 94 claims over 2,101 abstracts; tune
only on it) and ``project`` (the company and meeting questions of tests/test_retrieval.py
over the chunks of tests/retrieval_corpus.py, one document per chunk). Embedders: ``offline``
(lexical hashing vectors, no API key) and ``minilm`` (all-MiniLM-L6-v2 on the CPU, the
requirements-semantic.txt extra). Results go to benchmarks/results/quality.md and quality.json;
per-question arm lists to benchmarks/.work/quality/ for fusion studies.

    .venv/bin/pip install -r benchmarks/requirements.txt            # bm25s, PyStemmer
    .venv/bin/pip install -r requirements-semantic.txt             # for --embedders minilm
    .venv/bin/python benchmarks/quality.py                          # both sets, both embedders
    .venv/bin/python benchmarks/quality.py --sets project --embedders offline   # a quick run
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"
CUTOFF = 10
HYBRID_CHUNKS = 30  # enough chunks to rank 10 documents by their best chunk
ARM_CANDIDATES = 100
INGEST_THREADS = 4
EMBEDDERS = ("offline", "minilm")
SETS = ("scifact", "project")
HYBRID = "Quorum hybrid"
ARM_TEXT = "Quorum full-text arm (BM25 in PostgreSQL)"
ARM_VECTOR = "Quorum vector arm"

log = logging.getLogger("benchmarks.quality")


# Question sets ------------------------------------------------------------------------------


@dataclass
class QuestionSet:
    name: str
    documents: dict[str, str]  # doc id -> text
    questions: dict[str, str]  # question id -> text
    relevant: dict[str, set[str]]  # question id -> relevant doc ids


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_beir(folder: Path, name: str) -> QuestionSet:
    documents = {}
    for row in _jsonl(folder / "corpus.jsonl"):
        doc_id = str(row.get("doc_id", row.get("_id")))
        documents[doc_id] = "\n\n".join(part for part in (row.get("title"), row.get("text")) if part)
    questions = {str(row.get("id", row.get("_id"))): row["text"] for row in _jsonl(folder / "queries.jsonl")}
    relevant: dict[str, set[str]] = {}
    for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[2].strip().lstrip("-").isdigit():
            continue  # header
        if int(parts[2]) > 0 and parts[0] in questions:
            relevant.setdefault(parts[0], set()).add(parts[1])
    return QuestionSet(name, documents, {q: t for q, t in questions.items() if q in relevant}, relevant)


def load_project() -> QuestionSet:
    sys.path.insert(0, str(ROOT))
    from tests.retrieval_corpus import TEAM_CORPUS
    from tests.test_retrieval import KEYWORD_QUESTIONS, PARAPHRASED_QUESTIONS

    documents = {chunk.key: chunk.text for spec in TEAM_CORPUS for chunk in spec.chunks}
    questions, relevant = {}, {}
    for number, (question, key) in enumerate(KEYWORD_QUESTIONS + PARAPHRASED_QUESTIONS):
        questions[str(number)] = question
        relevant[str(number)] = {key}
    return QuestionSet("project", documents, questions, relevant)


def scifact_folder() -> Path:
    for base in (ROOT.parent, ROOT.parent.parent):
        folder = base / "shared" / "eval" / "scifact-dev"
        if folder.is_dir():
            return folder
    raise SystemExit("../shared/eval/scifact-dev not found beside the repository")


def load_set(name: str) -> QuestionSet:
    return load_beir(scifact_folder(), "scifact") if name == "scifact" else load_project()


# Metrics ------------------------------------------------------------------------------------


def scores(ranking: Sequence[str], relevant: set[str]) -> dict[str, float]:
    top = list(ranking[:CUTOFF])
    dcg = sum(1 / math.log2(rank + 2) for rank, doc in enumerate(top) if doc in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), CUTOFF)))
    first = next((rank for rank, doc in enumerate(top) if doc in relevant), None)
    return {
        "ndcg@10": dcg / ideal if ideal else 0.0,
        "recall@10": len(set(top) & relevant) / len(relevant) if relevant else 0.0,
        "mrr@10": 1 / (first + 1) if first is not None else 0.0,
    }


def mean_scores(rankings: dict[str, list[str]], qset: QuestionSet) -> dict[str, float]:
    per_question = [scores(rankings.get(q, []), qset.relevant[q]) for q in qset.questions]
    return {metric: sum(s[metric] for s in per_question) / len(per_question) for metric in per_question[0]}


def documents_by_best_chunk(doc_ids: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for doc in doc_ids:
        seen.setdefault(doc, None)
    return list(seen)


def bm25s_rankings(qset: QuestionSet) -> dict[str, list[str]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = list(qset.documents)
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(
        bm25s.tokenize([qset.documents[d] for d in ids], stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    rankings = {}
    for qid, question in qset.questions.items():
        tokens = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, show_progress=False)
        if not tokens.vocab:
            rankings[qid] = []
            continue
        found, _ = retriever.retrieve(tokens, k=min(CUTOFF, len(ids)), show_progress=False)
        rankings[qid] = [ids[i] for i in found[0]]
    return rankings


# Worker: one fresh database, one embedder ---------------------------------------------------


def run_worker(set_name: str, embedder: str, out: Path, *, reuse: bool) -> None:
    """Ingest and ask. The environment already points core at the database (fresh unless `reuse`)."""
    from sqlalchemy import func, select, update

    from core.access.accounts import actor_from_user, insert_user
    from core.ai import get_provider
    from core.ai.embedding_space import fusion_vector_weight
    from core.platform.db import session_scope
    from core.platform.models import Document, DocumentChunk, EmbeddingSpace, User
    from core.platform.schema import upgrade_database

    qset = load_set(set_name)
    upgrade_database()
    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == "quality"))
        reused = reuse and user is not None and session.scalar(select(func.count()).select_from(Document)) > 0
        if user is None:
            user = insert_user(
                session, username="quality", email="quality@example.com", password="quality-pass-1", role_name="admin"
            )
            session.flush()
        actor = actor_from_user(session, user)

    started = time.perf_counter()
    if reused:
        # Ingested by an earlier run through the same path: ask with the current code. The
        # fusion weight is the one the current code records for this embedder.
        space = get_provider().embedding_space
        with session_scope() as session:
            session.execute(update(EmbeddingSpace).values(vector_weight=fusion_vector_weight(space)))
    else:
        _ingest(qset, actor)
    ingest_s = time.perf_counter() - started
    with session_scope() as session:
        doc_of = {row.id: Path(row.filename).stem for row in session.execute(select(Document.id, Document.filename))}
        chunk_count = session.scalar(select(func.count()).select_from(DocumentChunk)) or 0
    _ask(qset, set_name, embedder, actor, out, doc_of=doc_of, ingest_s=ingest_s, chunks=chunk_count, reused=reused)


def _ingest(qset: QuestionSet, actor: Any) -> list[Any]:
    from core.documents import ingest_paths

    with tempfile.TemporaryDirectory(prefix="quorum-quality-") as folder:
        parts = [Path(folder) / str(part) for part in range(INGEST_THREADS)]
        for part in parts:
            part.mkdir()
        for number, (doc_id, body) in enumerate(qset.documents.items()):
            (parts[number % INGEST_THREADS] / f"{doc_id}.txt").write_text(body, encoding="utf-8")
        # Several ingesting threads, as several workers would: the statistics see concurrent swaps.
        with ThreadPoolExecutor(INGEST_THREADS) as pool:
            ingested = [
                item for batch in pool.map(lambda p: ingest_paths(actor=actor, paths=[p]), parts) for item in batch
            ]
    failed = [item for item in ingested if item.status != "COMPLETED"]
    if failed:
        log.warning("%d documents not indexed, e.g. %s", len(failed), failed[0])
    return ingested


def _ask(
    qset: QuestionSet,
    set_name: str,
    embedder: str,
    actor: Any,
    out: Path,
    *,
    doc_of: dict[int, str],
    ingest_s: float,
    chunks: int,
    reused: bool,
) -> None:
    from core.ai import get_provider
    from core.ai.embedding_space import recorded_vector_weight
    from core.chat.retrieval import embed_question, search_chunks
    from core.platform.config import get_settings
    from core.platform.db import session_scope

    provider = get_provider()
    settings = get_settings()
    hybrid: dict[str, list[str]] = {}
    text_arm: dict[str, list[str]] = {}
    vector_arm: dict[str, list[str]] = {}
    lists: dict[str, list[dict[str, Any]]] = {}
    latencies = []
    for qid, question in qset.questions.items():
        embedding = embed_question(provider, question=question, user_id=actor.id)
        began = time.perf_counter()
        with session_scope() as session:
            hits = search_chunks(session, actor=actor, query=question, query_embedding=embedding, k=HYBRID_CHUNKS)
        latencies.append(time.perf_counter() - began)
        hybrid[qid] = documents_by_best_chunk(doc_of[hit.document_id] for hit in hits)
        cut = settings.retrieval_max_distance
        settings.retrieval_max_distance = 2.0  # the vector arm alone, uncut
        try:
            with session_scope() as session:
                wide = search_chunks(
                    session,
                    actor=actor,
                    query=question,
                    query_embedding=embedding,
                    k=max(ARM_CANDIDATES, chunks),
                    candidates=max(ARM_CANDIDATES, chunks),
                )
        finally:
            settings.retrieval_max_distance = cut
        by_text = sorted((h for h in wide if h.text_rank is not None), key=lambda h: h.text_rank or 0)
        by_vector = sorted((h for h in wide if h.vector_rank is not None), key=lambda h: h.vector_rank or 0)
        text_arm[qid] = documents_by_best_chunk(doc_of[h.document_id] for h in by_text)
        vector_arm[qid] = documents_by_best_chunk(doc_of[h.document_id] for h in by_vector)
        lists[qid] = [
            {
                "doc": doc_of[h.document_id],
                "text_rank": h.text_rank,
                "text_score": h.text_score,
                "vector_rank": h.vector_rank,
                "vector_distance": h.vector_distance,
            }
            for h in wide
        ]
    result = {
        "set": set_name,
        "embedder": embedder,
        "embedding_model": provider.embedding_space.describe(),
        "documents": len(qset.documents),
        "questions": len(qset.questions),
        "chunks": chunks,
        "ingest_s": ingest_s,
        "reused": reused,
        "hybrid_p50_ms": 1000 * sorted(latencies)[len(latencies) // 2],
        "vector_weight": recorded_vector_weight(),
        "systems": {
            HYBRID: mean_scores(hybrid, qset),
            ARM_TEXT: mean_scores(text_arm, qset),
            ARM_VECTOR: mean_scores(vector_arm, qset),
        },
        "settings": {
            "bm25_k1": settings.retrieval_bm25_k1,
            "bm25_b": settings.retrieval_bm25_b,
            "text_scan_chunks": settings.retrieval_text_scan_chunks,
            "candidates": settings.retrieval_candidates,
        },
    }
    out.write_text(json.dumps(result, indent=2))
    (WORK / "quality" / f"lists-{set_name}-{embedder}.json").write_text(
        json.dumps({"lists": lists, "relevant": {q: sorted(r) for q, r in qset.relevant.items()}})
    )


# Orchestrator -------------------------------------------------------------------------------


def _database_url(name: str, *, reuse: bool) -> str:
    import pgserver
    import psycopg

    server = pgserver.get_server(str(WORK / "pg"), cleanup_mode="stop")
    uri: str = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if reuse and exists:
            base, query = uri.split("?", 1)
            return base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}?{query}"
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
        # Scratch data: commits need not wait for the disk (no effect on what is measured).
        conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    base, query = uri.split("?", 1)
    return base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}?{query}"


def _load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def render(results: list[dict[str, Any]], total_s: float, *, command: str, load_before: str) -> str:
    lines = [
        "# Retrieval quality",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}` in "
        f"{total_s / 60:.1f} min on {os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}; "
        f"machine load average (1/5/15 min) {load_before} at the start, {_load_average()} at the end "
        "(other sessions share the machine: this affects the timings, not the scores).",
        "",
        "Document-level scores (documents ranked by their best chunk), binary relevance, cut-off 10. "
        "Every system answers the same questions over the same documents in the same run; the "
        "documents went through Quorum's real ingest path (`ingest_paths`).",
        "",
    ]
    for result in results:
        settings = result["settings"]
        lines += [
            f"## {result['set']}, {result['embedder']} ({result['embedding_model']})",
            "",
            f"{result['documents']:,} documents -> {result['chunks']:,} chunks ("
            + (
                "ingested by an earlier run, asked again"
                if result.get("reused")
                else f"ingested in {result['ingest_s']:.0f} s"
            )
            + f"), {result['questions']} questions; BM25 k1 {settings['bm25_k1']}, "
            f"b {settings['bm25_b']}; hybrid p50 {result['hybrid_p50_ms']:.1f} ms.",
            "",
            "| system | nDCG@10 | recall@10 | MRR@10 |",
            "|---|---:|---:|---:|",
        ]
        for name, metrics in result["systems"].items():
            lines.append(
                f"| {name} | {metrics['ndcg@10']:.3f} | {metrics['recall@10']:.3f} | {metrics['mrr@10']:.3f} |"
            )
        systems = result["systems"]
        best_arm = max(systems[ARM_TEXT]["ndcg@10"], systems[ARM_VECTOR]["ndcg@10"])
        lead = systems[HYBRID]["ndcg@10"] - best_arm
        lines += [
            "",
            f"Hybrid minus its best arm: {lead:+.3f} nDCG@10 (fusion vector weight {result['vector_weight']}).",
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--embedders", default=",".join(EMBEDDERS))
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--notes", default="", help="a file appended to the results")
    parser.add_argument("--no-write", action="store_true", help="print the report, keep the recorded results")
    parser.add_argument(
        "--reuse", action="store_true", help="ask again over a database an earlier run ingested (no re-ingest)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    (WORK / "quality").mkdir(parents=True, exist_ok=True)
    if args.worker:
        set_name, embedder = args.worker
        run_worker(set_name, embedder, WORK / "quality" / f"result-{set_name}-{embedder}.json", reuse=args.reuse)
        return

    began = time.perf_counter()
    load_before = _load_average()
    command_line = " ".join([".venv/bin/python benchmarks/quality.py", *sys.argv[1:]])
    results = []
    for set_name in args.sets.split(","):
        baseline = bm25s_rankings(load_set(set_name))
        for embedder in args.embedders.split(","):
            name = f"quorum_quality_{set_name}_{embedder}"
            env = os.environ | {
                "DATABASE_URL": _database_url(name, reuse=args.reuse),
                "QUORUM_DATA_DIR": str(WORK / "quality" / f"data-{set_name}-{embedder}"),
                "QUORUM_ENVIRONMENT": "development",
                "QUORUM_OFFLINE_EMBEDDER": "minilm" if embedder == "minilm" else "hashing",
                "HF_HUB_OFFLINE": "1",
                "OMP_NUM_THREADS": "1",  # one torch thread per ingesting thread: no oversubscription
                "PYTHONPATH": str(ROOT),
            }
            for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REDIS_URL", "STORAGE_URL"):
                env.pop(variable, None)
            log.info("%s with %s embeddings", set_name, embedder)
            command = [sys.executable, __file__, "--worker", set_name, embedder] + (["--reuse"] if args.reuse else [])
            subprocess.run(command, env=env, check=True)
            result = json.loads((WORK / "quality" / f"result-{set_name}-{embedder}.json").read_text())
            result["systems"]["bm25s (PyStemmer English, stopwords, k1 0.9, b 0.4)"] = mean_scores(
                baseline, load_set(set_name)
            )
            results.append(result)
    report = render(results, time.perf_counter() - began, command=command_line, load_before=load_before)
    if args.notes:
        report += "\n" + Path(args.notes).read_text()
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "quality.json").write_text(json.dumps(results, indent=2))
        (RESULTS / "quality.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
