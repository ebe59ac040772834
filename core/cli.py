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

from core.config import get_settings

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
    from core.accounts import ensure_first_admin
    from core.embedded import database_url, redis_url
    from core.schema import upgrade_database

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db_url = database_url(settings)
    upgrade_database()
    generated = ensure_first_admin()
    if generated:
        print(
            "\n  First admin created.\n"
            f"    username: {settings.admin_username}\n"
            f"    password: {generated}\n"
            "  It is shown only this once: sign in and change it on the Account page.\n",
            flush=True,
        )
    return db_url, redis_url(settings)


def cmd_migrate(_: argparse.Namespace) -> int:
    prepare()
    print("Database is at the latest schema; roles and permissions seeded.")
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    import getpass

    from core.accounts import insert_user
    from core.db import session_scope
    from core.errors import QuorumError

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


def _worker_command(processes: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "dramatiq", "workers.actors",
        "--processes", str(processes), "--threads", str(threads),
    ]  # fmt: skip


def cmd_worker(args: argparse.Namespace) -> int:
    db_url, redis = prepare()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis}
    return subprocess.call(_worker_command(args.processes, args.threads), cwd=ROOT, env=env)


def cmd_up(args: argparse.Namespace) -> int:
    """Everything `make run` starts: services, migrations, first admin, worker, Streamlit."""
    from core.embedded import stop_embedded_redis

    settings = get_settings()
    db_url, redis = prepare()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis, "PYTHONUNBUFFERED": "1"}
    children = [
        subprocess.Popen(_worker_command(1, args.threads), cwd=ROOT, env=env),
        subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
                "--server.port", str(args.port), "--server.address", args.address,
            ],
            cwd=ROOT,
            env=env,
        ),
    ]  # fmt: skip
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    handler = args.handler
    return int(handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
