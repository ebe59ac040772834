"""Where bulk ingest's time goes: each stage of the write path timed alone, per chunk.

On the scratch PostgreSQL of benchmarks/ingest.py (a fresh database migrated to head), for N
synthetic documents of that benchmark's corpus:

- Python, in this process: read the file, extract its text (in process, and in the sandboxed
  child that indexing uses), chunk (500/60 tokens), build the embedding inputs, hashing embed;
- PostgreSQL, set-based on the same chunks staged once in a temporary table:
  raw binary COPY of (text, vector); the text-search parse alone (to_tsvector) and the
  length function alone; INSERT ... SELECT into copies of document_chunks with one piece of
  its write cost added at a time (generated columns, GIN index, btree indexes); then the
  real table the way indexing writes it: write_chunks per document into a new generation, the
  swap to COMPLETED that counts the term statistics, and the commit.

Every stage is measured in CPU time, not wall time: this process's own (plus its children's,
for the sandboxed extraction) and the PostgreSQL backend's, read from /proc/PID/stat (the
server runs on the same machine). So the figures hold on a machine shared with other work,
where wall times stretch with the load average. Reported as chunks per CPU-second; a pipeline
that runs every stage has a ceiling of CPUs / sum(CPU-seconds per chunk). PostgreSQL's
background processes (WAL writer, checkpointer, autovacuum) are not counted.

    .venv/bin/python benchmarks/ingest_stages.py --documents 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = ROOT / "benchmarks" / ".work"
DOCS = WORK / "stage-docs"
RESULTS = ROOT / "benchmarks" / "results"
DATABASE = "quorum_bench_stages"


_TICKS = os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _backend_cpu(pid: int) -> float:
    """CPU seconds PostgreSQL's backend `pid` has used (utime + stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _timed(action: Callable[[], Any], backend: int | None = None) -> tuple[float, Any]:
    """CPU seconds `action` took: this process's (and children's), plus the backend's if given."""
    began = _own_cpu() + (_backend_cpu(backend) if backend else 0.0)
    value = action()
    return _own_cpu() + (_backend_cpu(backend) if backend else 0.0) - began, value


def _python_stages(paths: list[Path]) -> tuple[dict[str, float], list[Any], list[Any]]:
    from core.ai.hashing import hashing_embed
    from core.documents.chunking import Chunker
    from core.documents.extraction import extract_sections
    from core.documents.filetypes import KINDS
    from core.documents.indexing import _embedding_input
    from core.documents.sandbox import read_document
    from core.platform.config import get_settings

    seconds = dict.fromkeys(["read", "extract", "extract_sandboxed", "chunk", "embed_inputs", "hashing_embed"], 0.0)
    chunker = Chunker()
    all_chunks, all_vectors = [], []
    for path in paths:
        kind = KINDS["markdown" if path.suffix == ".md" else "text"]
        took, data = _timed(path.read_bytes)
        seconds["read"] += took
        with path.open("rb") as stream:
            took, sections = _timed(lambda stream=stream, kind=kind: extract_sections(stream, kind))
        seconds["extract"] += took
        took, _ = _timed(lambda path=path, kind=kind: read_document(path, kind, filename=path.name))
        seconds["extract_sandboxed"] += took
        took, chunks = _timed(lambda sections=sections: chunker.chunk_sections(sections))
        seconds["chunk"] += took
        took, inputs = _timed(lambda chunks=chunks: [_embedding_input(c) for c in chunks])
        seconds["embed_inputs"] += took
        took, vectors = _timed(lambda inputs=inputs: hashing_embed(inputs, get_settings().embedding_dim))
        seconds["hashing_embed"] += took
        all_chunks.append(chunks)
        all_vectors.append(vectors)
        del data
    return seconds, all_chunks, all_vectors


def _sql_stages(connection: Any, total: int) -> dict[str, float]:
    """Set-based costs on bench_stage (every chunk once), each timed alone (backend CPU)."""
    seconds: dict[str, float] = {}
    backend = int(connection.execute("SELECT pg_backend_pid()").fetchone()[0])

    def run(name: str, *statements: str) -> None:
        seconds[name], _ = _timed(lambda: [connection.execute(statement) for statement in statements], backend)

    run("to_tsvector", "SELECT count(to_tsvector('quorum_english'::regconfig, content)) FROM bench_stage")
    run("search_length", "SELECT sum(quorum_search_length(content)) FROM bench_stage")
    run(
        "length_from_tsvector",
        "SELECT sum(length(v)) FROM (SELECT to_tsvector('quorum_english'::regconfig, content) AS v FROM bench_stage) s",
    )
    variants = {
        "insert_plain": "content text, embedding vector",
        "insert_tsvector": "content text, embedding vector, "
        "search_vector tsvector GENERATED ALWAYS AS (to_tsvector('quorum_english'::regconfig, content)) STORED",
        "insert_tsvector_length": "content text, embedding vector, "
        "search_vector tsvector GENERATED ALWAYS AS (to_tsvector('quorum_english'::regconfig, content)) STORED, "
        "search_length int GENERATED ALWAYS AS (quorum_search_length(content)) STORED",
    }
    for name, columns in variants.items():
        connection.execute("DROP TABLE IF EXISTS bench_target")
        connection.execute(f"CREATE TABLE bench_target (id bigserial PRIMARY KEY, {columns})")
        run(name, "INSERT INTO bench_target (content, embedding) SELECT content, embedding FROM bench_stage")
    connection.execute("TRUNCATE bench_target")
    connection.execute("CREATE INDEX ON bench_target USING gin (search_vector)")
    run(
        "insert_tsvector_length_gin",
        "INSERT INTO bench_target (content, embedding) SELECT content, embedding FROM bench_stage",
    )
    connection.execute("DROP TABLE bench_target")
    return {name: total / value for name, value in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS / "ingest-stages.json"))
    args = parser.parse_args()

    from ingest import Corpus
    from retrieval import _database_urls, _fresh_database

    from core.platform.embedded import start_postgres

    start_postgres(WORK / "pg")
    admin, target = _database_urls(DATABASE)
    _fresh_database(admin, DATABASE)
    os.environ["DATABASE_URL"] = target
    os.environ["QUORUM_DATA_DIR"] = str(WORK / "stage-data")
    os.environ.pop("OPENAI_API_KEY", None)
    from core.platform.config import get_settings

    get_settings.cache_clear()

    DOCS.mkdir(parents=True, exist_ok=True)
    corpus = Corpus()
    paths = []
    for number in range(args.documents):
        path = DOCS / f"doc-{number:04d}.{'md' if number % 5 == 0 else 'txt'}"
        if not path.exists():
            path.write_text(corpus.document(number, number % 5 == 0), encoding="utf-8")
        paths.append(path)

    load = [os.getloadavg()[0]]
    python_seconds, chunk_lists, vector_lists = _python_stages(paths)
    total = sum(len(chunks) for chunks in chunk_lists)
    load.append(os.getloadavg()[0])

    import psycopg
    from pgvector.psycopg import register_vector
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from core.documents.chunk_store import write_chunks
    from core.platform.db import get_engine, session_scope
    from core.platform.schema import upgrade_database

    upgrade_database()
    database_seconds = dict.fromkeys(["write_chunks", "swap_and_count", "commit"], 0.0)
    for number, (chunks, vectors) in enumerate(zip(chunk_lists, vector_lists, strict=True)):
        with session_scope() as session:
            document_id = session.execute(
                text(
                    "INSERT INTO documents (filename, sha256, status, storage_key) "
                    "VALUES (:name, :sha, 'INDEXING', 'bench') RETURNING id"
                ),
                {"name": f"doc-{number}", "sha": f"{number:064d}"},
            ).scalar_one()
        with Session(get_engine()) as session:
            backend = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            took, _ = _timed(lambda s=session, d=document_id, c=chunks, v=vectors: write_chunks(s, d, 1, c, v), backend)
            database_seconds["write_chunks"] += took
            took, _ = _timed(
                lambda s=session, d=document_id: s.execute(
                    text("UPDATE documents SET active_generation = 1, status = 'COMPLETED' WHERE id = :id"), {"id": d}
                ),
                backend,
            )
            database_seconds["swap_and_count"] += took
            took, _ = _timed(session.commit, backend)
            database_seconds["commit"] += took
    load.append(os.getloadavg()[0])

    with psycopg.connect(target.replace("+psycopg", ""), autocommit=True) as connection:
        register_vector(connection)
        connection.execute("CREATE TABLE bench_stage (content text, embedding vector)")
        backend = int(connection.execute("SELECT pg_backend_pid()").fetchone()[0])

        def copy_rows() -> None:
            with connection.cursor() as cursor, cursor.copy("COPY bench_stage FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "vector"])
                for chunks, vectors in zip(chunk_lists, vector_lists, strict=True):
                    for chunk, vector in zip(chunks, vectors, strict=True):
                        copy.write_row((chunk.text, vector))

        took, _ = _timed(copy_rows, backend)
        copy_rate = total / took
        sql_rates = _sql_stages(connection, total)
        connection.execute("DROP TABLE bench_stage")
    load.append(os.getloadavg()[0])

    rates = {f"python.{name}": total / value for name, value in python_seconds.items() if value}
    rates |= {f"write.{name}": total / value for name, value in database_seconds.items() if value}
    rates["sql.copy_text_and_vector"] = copy_rate
    rates |= {f"sql.{name}": value for name, value in sql_rates.items()}
    result = {"documents": len(paths), "chunks": total, "load": load, "chunks_per_second": rates}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
