"""A running Quorum (Streamlit + one Dramatiq worker) and headless Chromium to drive it.

Skipped when Debian's chromium is not installed (.ci/run installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from core.access.rbac import Actor
from tests.local_servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts" / "e2e"
BROWSER_SHUTDOWN_SECONDS = 30

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class LiveApp:
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def live_app(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """Streamlit and a worker against the test database, on a free port.

    They get a Redis of their own: a worker on the session's Redis would race other tests
    for the jobs those tests enqueue and run themselves. One app per test module keeps the
    modules independent of each other's server-side state.
    """
    from core.platform.db import get_engine
    from tests.reliability.processes import RedisServer

    redis_server = RedisServer(tmp_path_factory.mktemp("live-app-redis"))
    redis_server.start()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": get_engine().url.render_as_string(hide_password=False),
        "REDIS_URL": redis_server.url,
        "PYTHONUNBUFFERED": "1",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    logs = [open(ARTIFACTS / name, "w") for name in ("streamlit.log", "worker.log")]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ui.streamlit_server", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1", "--threads", "2"],
            cwd=ROOT, env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True,
        ),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    if not wait_until_healthy(url, seconds=60):
        pytest.fail(f"Streamlit did not start; see {ARTIFACTS / 'streamlit.log'}")
    yield LiveApp(url=url, env=env)
    # Each in its own process group: Dramatiq's forked worker outlived a terminated main
    # process (found still running against a stopped Redis), so the whole group goes.
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):  # then no more waiting
            process.wait(timeout=15)
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=15)
    for log in logs:
        log.close()
    redis_server.stop()


def _signal_group(process: subprocess.Popen[bytes], number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group already exited
        os.killpg(process.pid, number)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    children_before = {child.pid for child in psutil.Process().children(recursive=True)}
    playwright = sync_playwright().start()
    instance = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"],
    )  # fmt: skip
    driver_and_browser = [
        child for child in psutil.Process().children(recursive=True) if child.pid not in children_before
    ]
    yield instance
    # Shutting the driver down has hung for minutes on a loaded machine, after every test
    # had passed. Past the deadline the driver and Chromium are killed: their pipe closes
    # and the shutdown below returns.
    watchdog = threading.Timer(BROWSER_SHUTDOWN_SECONDS, _kill, args=(driver_and_browser,))
    watchdog.daemon = True
    watchdog.start()
    try:
        with contextlib.suppress(Exception):
            instance.close()
        with contextlib.suppress(Exception):
            playwright.stop()
    finally:
        watchdog.cancel()


def _kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, app: LiveApp, actor: Actor, password: str = "correct-horse-9") -> None:
    page.goto(app.url)
    page.get_by_role("textbox", name="Username").wait_for()
    settle(page)
    page.get_by_role("textbox", name="Username").fill(actor.username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text(f"Signed in as {actor.display_name}").wait_for()
    settle(page)


def settle(page: Any) -> None:
    """Wait until Streamlit has finished the run the last click started.

    Widgets typed into while a run is still drawing the page can be replaced under the
    pointer, so tests wait for the "running" indicator to go before they type.
    """
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def open_page(page: Any, link: str, ready: Callable[[], Any], *, attempts: int = 3) -> None:
    """Click the link `link` and wait until `ready()` (a locator) shows the page arrived.

    A click that lands while a live fragment's own rerun of the page is starting can be
    superseded by that rerun (Streamlit keeps the newest rerun request), so the browser
    stays where it was; a person clicks again, and so does this, up to `attempts` times.
    """
    for attempt in range(1, attempts + 1):
        settle(page)
        page.get_by_role("link", name=link).first.click()
        try:
            ready().wait_for(timeout=15_000)
        except PlaywrightTimeoutError:
            if attempt == attempts:
                raise
            continue
        settle(page)
        return


def screenshot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A failed browser test leaves a full-page screenshot of every tab it had open."""
    outcome = yield
    report = outcome.get_result()
    browser = getattr(item, "funcargs", {}).get("browser")
    if report.when != "call" or not report.failed or browser is None:
        return
    stamp = time.strftime("%H%M%S")
    tabs = [tab for context in browser.contexts for tab in context.pages]
    for number, tab in enumerate(tabs):
        with contextlib.suppress(Exception):  # a tab may be gone; the failure itself is what matters
            screenshot(tab, f"failed-{item.name}-{stamp}-{number}")


def choose_option(page: Any, label: str, text: str) -> None:
    """Type into the Streamlit selectbox labelled `label` and take the first option matching `text`."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(text)
    page.keyboard.press("Enter")
    settle(page)
