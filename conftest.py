"""Root of the test session: environment first, then the plugins.

The environment is set before anything imports core, so the one Settings object sees it:
a throw-away data folder (embedded PostgreSQL and Redis live there), a free Redis port, and
no API key or external service URL inherited from the developer's shell.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DATA_DIR = Path(tempfile.mkdtemp(prefix="quorum-test-"))
for _name in ("DATABASE_URL", "REDIS_URL", "STORAGE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(_name, None)
os.environ["QUORUM_DATA_DIR"] = str(DATA_DIR)
os.environ["QUORUM_EMBEDDED_REDIS_PORT"] = str(_free_port())
os.environ["QUORUM_ENVIRONMENT"] = "development"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest_plugins = ["tests.fake_openai"]


def pytest_unconfigure(config: object) -> None:
    """Stop the session's embedded PostgreSQL and Redis and remove their folder.

    pgserver stops the server when the last process that asked for it exits, but a worker
    killed with SIGKILL by a fault test never says goodbye, so stop it explicitly.
    """
    import shutil
    import subprocess

    folder = DATA_DIR / "postgres"
    if (folder / "postmaster.pid").exists():
        import pgserver

        pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        # pgserver runs the server as its own 'pgserver' user when started as root.
        user = "pgserver" if os.geteuid() == 0 else None
        subprocess.run(
            [str(pg_ctl), "-D", str(folder), "-m", "immediate", "-w", "stop"],
            user=user, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    # The folder's embedded Redis too: started by whichever test first needed a broker, it
    # outlived the session (found: one per past test run, still listening).
    port_file = DATA_DIR / "redis" / "port"
    if port_file.exists():
        import contextlib

        import redis

        with contextlib.suppress(redis.exceptions.RedisError, ValueError, OSError):
            redis.Redis(host="127.0.0.1", port=int(port_file.read_text()), socket_timeout=5).shutdown(nosave=True)
    shutil.rmtree(DATA_DIR, ignore_errors=True)
