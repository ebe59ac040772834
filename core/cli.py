"""Quorum's command line for operators: `python -m core.cli --help`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.platform.config import get_settings
from core.platform.statuses import DOCUMENT_TYPES, DocumentStatus, RecordingStatus

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("quorum")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def prepare() -> tuple[str, str]:
    """Start the embedded services when unconfigured, migrate, seed, create the first admin.

    Returns (database URL, Redis URL) for child processes. Idempotent.
    """
    from core.access.accounts import ensure_first_admin
    from core.platform.embedded import database_url, redis_url
    from core.platform.schema import upgrade_database

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db_url = database_url(settings)
    upgrade_database()
    generated = ensure_first_admin()
    if generated and not settings.password_sign_in:
        print(
            "\n  First admin created for single sign-on only: sign in with "
            f"{settings.oidc_provider_label} as {settings.admin_email} to be that admin.\n",
            flush=True,
        )
    elif generated:
        print(
            "\n  First admin created.\n"
            f"    username: {settings.admin_username}\n"
            f"    password: {generated}\n"
            "  It is shown only this once: sign in and change it on the Account page.\n",
            flush=True,
        )
    return db_url, redis_url(settings)


def cmd_migrate(_: argparse.Namespace) -> int:
    from core.platform.stale_job_watch import start_stale_job_watch

    prepare()
    # In production (compose) migrate runs once per deploy: a good moment to start the watch.
    start_stale_job_watch()
    print("Database is at the latest schema; roles and permissions seeded.")
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    import getpass

    from core.access.accounts import insert_user
    from core.platform.db import session_scope
    from core.platform.errors import QuorumError

    prepare()
    password = args.password or getpass.getpass(f"Password for {args.username}: ")
    try:
        with session_scope() as session:
            insert_user(
                session,
                username=args.username,
                email=args.email,
                password=password,
                role_name=args.role,
                display_name=args.name or "",
            )
    except QuorumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Created user {args.username!r} with role {args.role!r}.")
    return 0


def _actor(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from core.access.accounts import actor_for_username

    prepare()
    return actor_for_username(args.as_user or get_settings().admin_username)


def cmd_ingest(args: argparse.Namespace) -> int:
    from core.documents import ingest_paths

    results = ingest_paths(
        actor=_actor(args), paths=args.paths, visibility=args.visibility, wait=not args.no_wait, processes=args.jobs
    )
    failed = 0
    for result in results:
        outcome = result.outcome
        if outcome.status != "accepted":
            failed += outcome.status == "rejected"
            print(f"{outcome.status:9} {result.path}: {outcome.message}")
            continue
        status = result.status or "QUEUED"
        failed += status == DocumentStatus.FAILED
        detail = f"{result.chunks} chunks" if status == DocumentStatus.COMPLETED else (result.error or "")
        print(f"{status:9} {result.path} -> document {outcome.document_id} {detail}".rstrip())
    return 1 if failed else 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from core.meetings import get_recording_summary, submit_recording, transcribe_recording

    actor = _actor(args)
    path = Path(args.path)
    with path.open("rb") as handle:
        job = submit_recording(
            actor=actor, file=handle, filename=path.name, visibility=args.visibility, transcribe_again=args.again
        )
    print(f"job {job.id} queued ({path.name})", flush=True)
    if args.no_wait:
        return 0
    # Work on it here too: the claim is atomic, so a running worker and this process never
    # both transcribe it, and the command finishes even when no worker is running.
    transcribe_recording(job.id)
    while True:
        job = get_recording_summary(actor=actor, job_id=job.id)
        if job.status in (RecordingStatus.COMPLETED, RecordingStatus.FAILED):
            break
        time.sleep(2)
    print(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
    return 0 if job.status == RecordingStatus.COMPLETED else 1


def cmd_ask(args: argparse.Namespace) -> int:
    from core.chat import ask
    from core.chat.retrieval import RetrievalFilters

    answer = ask(actor=_actor(args), question=args.question, filters=RetrievalFilters(document_types=tuple(args.type)))
    print(answer.text)
    if answer.sources:
        print("\nSources:")
        for source in answer.sources:
            print(f"  [{source.number}] {source.label}")
    return 0


def cmd_explain_search(args: argparse.Namespace) -> int:
    from core.chat.retrieval import RetrievalFilters, explain_question

    filters = RetrievalFilters(document_types=tuple(args.type))
    print(explain_question(actor=_actor(args), query=args.question, filters=filters))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.meetings.exports import export_recording

    exported = export_recording(actor=_actor(args), job_id=args.job_id, fmt=args.format)
    if args.output:
        Path(args.output).write_bytes(exported.data)
        print(f"wrote {args.output} ({len(exported.data)} bytes)", file=sys.stderr)
    else:
        sys.stdout.buffer.write(exported.data)
        sys.stdout.buffer.flush()
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    """Rebuild every document's chunks with the configured embedder (after a model change)."""
    from core.ai import get_provider
    from core.ai.embedding_space import reset_embedding_space
    from core.documents import list_documents, reindex_document

    actor = _actor(args)
    if args.all:
        reset_embedding_space(space=get_provider().embedding_space)
    if args.all:
        ids = [
            d.id
            for d in list_documents(actor=actor, limit=10_000)
            if d.status in (DocumentStatus.COMPLETED, DocumentStatus.FAILED)
        ]
    else:
        ids = args.document_ids
    for document_id in ids:
        reindex_document(actor=actor, document_id=document_id)
    print(f"queued {len(ids)} document(s) for re-indexing; the worker swaps in the new chunks as they finish")
    return 0


def _worker_command(processes: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "dramatiq", "workers.actors",
        "--processes", str(processes), "--threads", str(threads),
    ]  # fmt: skip


def cmd_worker(args: argparse.Namespace) -> int:
    db_url, redis = prepare()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis}
    return subprocess.call(_worker_command(args.processes, args.threads), cwd=ROOT, env=env)


def _streamlit_command(port: int, address: str) -> list[str]:
    """`streamlit run` for the app through ui/streamlit_server.py (pages/ left to the router),
    with Quorum's single sign-on settings handed to Streamlit."""
    from core.access.oidc import streamlit_secrets_flags

    return [
        sys.executable, "-m", "ui.streamlit_server", "run", "streamlit_app.py",
        "--server.port", str(port), "--server.address", address,
        *streamlit_secrets_flags(get_settings(), ROOT),
    ]  # fmt: skip


def cmd_serve(args: argparse.Namespace) -> int:
    """Only the app (production: services, migrations and workers run elsewhere)."""
    command = _streamlit_command(args.port, args.address)
    os.chdir(ROOT)
    os.execv(command[0], command)  # the app becomes this process: signals reach Streamlit directly
    return 0  # not reached


def cmd_up(args: argparse.Namespace) -> int:
    """Everything `make run` starts: services, migrations, first admin, worker, Streamlit."""
    from core.platform.embedded import stop_embedded_redis
    from core.platform.stale_job_watch import start_stale_job_watch

    settings = get_settings()
    db_url, redis = prepare()
    # Requeue what a previous run left half-done, then keep checking periodically.
    start_stale_job_watch()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis, "PYTHONUNBUFFERED": "1"}
    children = [
        subprocess.Popen(_worker_command(1, args.threads), cwd=ROOT, env=env),
        subprocess.Popen(_streamlit_command(args.port, args.address), cwd=ROOT, env=env),
    ]
    print(f"\n  Quorum is starting on http://{args.address}:{args.port}  (Ctrl-C stops everything)\n", flush=True)

    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    exit_code = 0
    try:
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    log.error("a Quorum process exited with %s; stopping the rest", child.returncode)
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if not settings.redis_url:
            stop_embedded_redis(settings)
        print("Quorum stopped.", flush=True)
    return exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.cli", description="Quorum operator commands")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start services, migrate, create the first admin, run worker and app")
    up.add_argument("--port", type=int, default=8501)
    up.add_argument("--address", default="127.0.0.1")
    up.add_argument("--threads", type=int, default=4, help="worker threads")
    up.set_defaults(handler=cmd_up)

    serve = sub.add_parser("serve", help="run only the app (the production image's command)")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--address", default="127.0.0.1")
    serve.set_defaults(handler=cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database to the latest schema and seed roles")
    migrate.set_defaults(handler=cmd_migrate)

    create_user = sub.add_parser("create-user", help="create a user")
    create_user.add_argument("username")
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--role", default="user")
    create_user.add_argument("--name", help="display name")
    create_user.add_argument("--password", help="omit to be asked without echo")
    create_user.set_defaults(handler=cmd_create_user)

    worker = sub.add_parser("worker", help="run Dramatiq worker processes")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--threads", type=int, default=4)
    worker.set_defaults(handler=cmd_worker)

    def with_user(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("--as", dest="as_user", metavar="USERNAME", help="act as this user (default: the admin)")
        return command

    ingest = with_user(sub.add_parser("ingest", help="upload and index documents (files or folders)"))
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--visibility", choices=("team", "private"), default="team")
    ingest.add_argument("--no-wait", action="store_true", help="only queue them for the workers")
    ingest.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="files indexed at once, in processes (default: CPUs)"
    )
    ingest.set_defaults(handler=cmd_ingest)

    transcribe = with_user(sub.add_parser("transcribe", help="transcribe a recording and write its minutes"))
    transcribe.add_argument("path")
    transcribe.add_argument("--visibility", choices=("team", "private"), default="team")
    transcribe.add_argument("--no-wait", action="store_true", help="only queue it for the workers")
    transcribe.add_argument("--again", action="store_true", help="transcribe it even if you uploaded it before")
    transcribe.set_defaults(handler=cmd_transcribe)

    ask = with_user(sub.add_parser("ask", help="ask the knowledge base a question"))
    ask.add_argument("question")
    ask.add_argument("--type", action="append", default=[], choices=DOCUMENT_TYPES, help="limit to a document type")
    ask.set_defaults(handler=cmd_ask)

    explain = with_user(
        sub.add_parser("explain-search", help="where a search spends its time (PostgreSQL's EXPLAIN ANALYZE)")
    )
    explain.add_argument("question")
    explain.add_argument("--type", action="append", default=[], choices=DOCUMENT_TYPES, help="limit to a document type")
    explain.set_defaults(handler=cmd_explain_search)

    export = with_user(sub.add_parser("export", help="export a transcript or minutes"))
    export.add_argument("job_id", type=int)
    export.add_argument("--format", required=True, help="txt, md, docx, srt, vtt, json, minutes-md, minutes-docx")
    export.add_argument("--output", help="file to write (default: standard output)")
    export.set_defaults(handler=cmd_export)

    reindex = with_user(sub.add_parser("reindex", help="rebuild chunks with the configured embedder"))
    target = reindex.add_mutually_exclusive_group(required=True)
    target.add_argument("--all", action="store_true", help="every document; records the new embedding space")
    target.add_argument("document_ids", nargs="*", type=int, default=[])
    reindex.set_defaults(handler=cmd_reindex)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    from core.platform.errors import QuorumError

    try:
        return int(args.handler(args))
    except QuorumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
