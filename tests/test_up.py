"""`python -m core.cli up` (what `make run` runs) from an empty data folder: embedded
services, migrations, first admin with a password printed once, worker and app; Ctrl-C
stops all of it and a second start finds the data again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.local_servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent


def _start(data_dir: Path, port: int, redis_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(QUORUM_DATA_DIR=str(data_dir), QUORUM_EMBEDDED_REDIS_PORT=str(redis_port))
    env.pop("QUORUM_ADMIN_PASSWORD", None)
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", "up", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    url = f"http://127.0.0.1:{port}"
    if not wait_until_healthy(url, seconds=120, still_running=lambda: process.poll() is None):
        assert process.poll() is None, log.read_text()
        raise AssertionError(f"the app did not answer:\n{log.read_text()[-3000:]}")


def _interrupt(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    return children


def test_up_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    data_dir, port, redis_port = tmp_path / "data", free_port(), free_port()
    first_log = tmp_path / "first.log"
    app = _start(data_dir, port, redis_port, first_log)
    try:
        _wait_healthy(port, app, first_log)
        time.sleep(2)  # let the worker boot
        children = _interrupt(app)
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGKILL)
    output = first_log.read_text()
    assert "First admin created." in output and "password:" in output
    assert "Quorum stopped." in output
    time.sleep(1)
    assert children, "up started no worker or app"
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]

    second_log = tmp_path / "second.log"
    again = _start(data_dir, port, redis_port, second_log)
    try:
        _wait_healthy(port, again, second_log)
        _interrupt(again)
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)
    # The admin exists already: no second password is printed.
    assert "First admin created." not in second_log.read_text()
