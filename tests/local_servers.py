"""Helpers for tests that start Quorum's own processes on 127.0.0.1."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(url: str, *, seconds: float, still_running: Callable[[], bool] = lambda: True) -> bool:
    """Poll the Streamlit server at `url` until its health check answers 200.

    False when `seconds` pass first, or as soon as `still_running` says the server died.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not still_running():
            return False
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False
