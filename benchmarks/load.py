"""Load test: N simulated users drive a running Quorum in headless Chromium for a bounded time.

Starts its own Quorum (`python -m core.cli up`) in a scratch data folder on free ports,
creates N users and a small knowledge base, then every user signs in and loops over asking
a question, listing the documents and uploading a small document, for a bounded time.

`--browsers B` of the users drive the real pages in headless Chromium (latency from the
click until Streamlit finished the run). The other users call the same core services the
pages call, from threads of this process, against the same database, Redis and worker:
twenty Chromium tabs alone saturate a 2-core machine, so browser users measure the UI end
to end and service users put the backend under the full concurrent load. Errors are
timeouts, exceptions and Streamlit exception boxes. Results: benchmarks/results/load.md/json.

    .venv/bin/python benchmarks/load.py --users 20 --browsers 4 --seconds 150
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "load"
RESULTS = ROOT / "benchmarks" / "results"
PASSWORD = "load-test-pass-1"
# Each question with a word its answer must contain: an answer that misses it counts as an error.
QUESTIONS = [
    ("How many days can employees work remotely?", "three"),
    ("When is the billing migration planned?", "2027"),
    ("Who leads the mobile app redesign?", "Maria"),
    ("What is the meal allowance per day?", "45"),
]
CORPUS = {
    "handbook.md": "# Employee Handbook\n\n## Remote work\nEmployees may work remotely up to three days per week.\n\n"
    "## Expenses\nMeals are reimbursed up to 45 euros per day. Submit travel expenses within 30 days.\n",
    "roadmap.txt": "The billing migration is planned for the first quarter of 2027. "
    "The mobile app redesign is led by Maria Chen and starts in the second quarter.\n",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(port: int) -> subprocess.Popen[bytes]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ.update(
        QUORUM_DATA_DIR=str(WORK / "data"),
        QUORUM_EMBEDDED_REDIS_PORT=str(_free_port()),
        QUORUM_ADMIN_PASSWORD=PASSWORD,
        HF_HUB_OFFLINE="1",
    )
    for name in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "STORAGE_URL"):
        os.environ.pop(name, None)
    log = (WORK / "app.log").open("wb")
    app = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "up", "--port", str(port), "--threads", "4"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return app
        except OSError:
            time.sleep(0.5)
    app.terminate()
    raise SystemExit(f"Quorum did not start; see {WORK / 'app.log'}")


def seed(users: int) -> list[str]:
    """Create the simulated users and a small corpus (this process attaches to the same servers)."""
    sys.path.insert(0, str(ROOT))
    from core.access.accounts import actor_for_username, insert_user
    from core.documents import ingest_paths
    from core.platform.db import session_scope

    names = [f"loaduser{i:02d}" for i in range(users)]
    with session_scope() as session:
        for name in names:
            insert_user(session, username=name, email=f"{name}@example.com", password=PASSWORD, role_name="user")
    corpus_dir = WORK / "corpus"
    corpus_dir.mkdir()
    for filename, text in CORPUS.items():
        (corpus_dir / filename).write_text(text)
    ingested = ingest_paths(actor=actor_for_username("admin"), paths=[corpus_dir], wait=True)
    if sorted((Path(result.path).name, result.status) for result in ingested) != [
        (name, "COMPLETED") for name in sorted(CORPUS)
    ]:
        raise SystemExit(f"the knowledge base was not built: {ingested}")
    return names


async def _settle(page: Any) -> None:
    """Wait until Streamlit has finished running the script for the last interaction."""
    await page.wait_for_timeout(300)
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


async def simulate(browser: Any, url: str, username: str, deadline: float, timings: dict[str, list[float]],
                   errors: list[str], index: int) -> None:  # fmt: skip
    await asyncio.sleep(start_delay(index))
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(120_000)
    page = await context.new_page()

    async def timed(name: str, action: Any) -> None:
        started = time.perf_counter()
        try:
            await action()
            await _settle(page)
            if await page.locator('[data-testid="stException"]').count():
                errors.append(f"{username} {name}: exception shown")
            timings.setdefault(name, []).append(time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - a benchmark records every failure
            errors.append(f"{username} {name}: {type(error).__name__}: {str(error)[:120]}")
            shot = WORK / f"failed-{username}-{name.replace(' ', '-')}-{len(errors)}.png"
            await page.screenshot(path=str(shot), full_page=True)

    async def sign_in() -> None:
        await page.goto(url)
        await page.get_by_role("textbox", name="Username").wait_for()
        await _settle(page)  # the cookie component's first rerun would swallow an early submit
        await page.get_by_role("textbox", name="Username").fill(username)
        await page.get_by_role("textbox", name="Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await page.get_by_text("Signed in as").wait_for()

    await timed("sign in", sign_in)
    round_number = 0
    while time.monotonic() < deadline:
        round_number += 1
        question, expected = QUESTIONS[(index + round_number) % len(QUESTIONS)]

        async def ask(question: str = question, expected: str = expected) -> None:
            await page.get_by_role("link", name="Chat").first.click()
            box = page.get_by_placeholder("Ask a question")
            await box.wait_for()
            await _settle(page)
            before = await page.locator('[data-testid="stChatMessage"]').count()
            await box.fill(question)
            await box.press("Enter")
            await page.wait_for_function(
                f"() => document.querySelectorAll('[data-testid=\"stChatMessage\"]').length >= {before + 2}",
                timeout=120_000,
            )
            # The bubble appears as the answer starts streaming; the rating buttons only once it is stored.
            last = page.locator('[data-testid="stChatMessage"]').last
            await last.locator('[data-testid="stFeedback"]').wait_for()
            answer = await last.inner_text()
            if expected not in answer:
                raise AssertionError(f"the answer to {question!r} lacks {expected!r}: {answer[:120]!r}")

        async def list_documents() -> None:
            await page.get_by_role("link", name="Ingestion Hub").first.click()
            await page.get_by_text("Indexed content").wait_for()

        async def upload(round_number: int = round_number) -> None:
            name = f"note-{username}-{round_number}.txt"
            payload = f"Meeting note {round_number} from {username}: the load test covers uploads.".encode()
            await page.locator('input[type="file"]').first.set_input_files(
                files=[{"name": name, "mimeType": "text/plain", "buffer": payload}]
            )
            await page.get_by_text(name[-7:]).first.wait_for()  # the uploader shows the (shortened) name
            await page.get_by_role("button", name="Upload and index").click()
            await page.get_by_text(f"{name}: uploaded").wait_for()

        await timed("chat question", ask)
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(THINK_SECONDS[0])
        await timed("list documents", list_documents)
        await asyncio.sleep(THINK_SECONDS[0])
        await timed("upload document", upload)
        await asyncio.sleep(THINK_SECONDS[0])
    await context.close()


class NamedBytes(io.BytesIO):
    """An in-memory upload with a name and a size, like Streamlit's UploadedFile."""

    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(data)
        self.name = name
        self.size = len(data)


def service_user(username: str, index: int, deadline: float, timings: dict[str, list[float]],
                 errors: list[str], lock: threading.Lock) -> None:  # fmt: skip
    """One simulated user calling the services the pages call, as fast as they answer."""
    from core.access.accounts import check_sign_in, verify_password
    from core.chat import answer_question, create_chat
    from core.documents import list_documents, upload_documents
    from core.platform.db import session_scope
    from core.platform.models import User

    def timed(name: str, action: Any) -> Any:
        started = time.perf_counter()
        try:
            result = action()
        except Exception as error:  # noqa: BLE001 - a benchmark records every failure
            with lock:
                errors.append(f"{username} {name}: {type(error).__name__}: {str(error)[:120]}")
            return None
        with lock:
            timings.setdefault(f"{name} (service)", []).append(time.perf_counter() - started)
        return result

    def sign_in() -> Any:
        with session_scope() as session:
            stored = session.query(User.password_hash).filter(User.username == username).scalar()
        assert stored and verify_password(PASSWORD, stored)
        verdict = check_sign_in(username)
        assert verdict.actor is not None, verdict.refusal
        return verdict.actor

    time.sleep(start_delay(index))
    actor = timed("sign in", sign_in)
    if actor is None:
        return
    chat = create_chat(actor=actor)
    round_number = 0
    while time.monotonic() < deadline:
        round_number += 1
        question, expected = QUESTIONS[(index + round_number) % len(QUESTIONS)]
        answer = timed(
            "chat question", lambda q=question: "".join(answer_question(actor=actor, chat_id=chat.id, question=q))
        )
        if answer is not None and expected not in answer:
            with lock:
                errors.append(f"{username} chat question: the answer to {question!r} lacks {expected!r}")
        time.sleep(THINK_SECONDS[0])
        timed("list documents", lambda: list_documents(actor=actor, limit=200))
        time.sleep(THINK_SECONDS[0])
        payload = f"Service note {round_number} from {username} about the load test.".encode()
        name = f"svc-{username}-{round_number}.txt"
        upload = NamedBytes(name, payload)
        outcome = timed("upload document", lambda f=upload: upload_documents(actor=actor, files=[f], visibility="team"))
        if outcome is not None and outcome[0].status != "accepted":
            with lock:
                errors.append(f"{username} upload document: {outcome[0].message}")
        time.sleep(THINK_SECONDS[0])


async def run(url: str, users: list[str], seconds: float) -> tuple[dict[str, list[float]], list[str]]:
    from playwright.async_api import async_playwright

    timings: dict[str, list[float]] = {}
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            # Every simulated user is a tab of one browser: without these, Chromium throttles the
            # timers of tabs it thinks are in the background and their sessions stall.
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                  "--disable-backgrounding-occluded-windows"],
        )  # fmt: skip
        deadline = deadline_at(seconds)
        await asyncio.gather(
            *(simulate(browser, url, name, deadline, timings, errors, i) for i, name in enumerate(users))
        )
        await browser.close()
    return timings, errors


_DEADLINE: list[float] = []
THINK_SECONDS: list[float] = [2.0]  # set from --think before the users start
RAMP: list[float] = [10.0, 20.0]  # --ramp seconds and --users, set before the users start


def start_delay(position: int) -> float:
    """Users arrive spread over the ramp, as people do, rather than in one instant."""
    return RAMP[0] * position / RAMP[1]


def deadline_at(seconds: float) -> float:
    """One shared end time for browser and service users."""
    if not _DEADLINE:
        _DEADLINE.append(time.monotonic() + seconds)
    return _DEADLINE[0]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--browsers", type=int, default=4, help="users driving real pages in Chromium")
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--think", type=float, default=2.0, help="seconds a user pauses between actions")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which the users arrive")
    args = parser.parse_args()
    THINK_SECONDS[0] = args.think
    RAMP[:] = [args.ramp, float(args.users)]
    port = _free_port()
    app = start_app(port)
    try:
        users = seed(args.users)
        started = time.perf_counter()
        deadline = deadline_at(args.seconds)
        service_timings: dict[str, list[float]] = {}
        service_errors: list[str] = []
        lock = threading.Lock()
        threads = [
            threading.Thread(target=service_user, args=(name, i, deadline, service_timings, service_errors, lock))
            for i, name in enumerate(users[args.browsers :], start=args.browsers)
        ]
        for thread in threads:
            thread.start()
        timings, errors = asyncio.run(run(f"http://127.0.0.1:{port}", users[: args.browsers], args.seconds))
        for thread in threads:
            thread.join()
        timings.update(service_timings)
        errors += service_errors
        wall = time.perf_counter() - started
    finally:
        app.terminate()
        app.wait(timeout=60)
    summary = {
        "users": args.users,
        "browser_users": args.browsers,
        "seconds": args.seconds,
        "wall_seconds": round(wall, 1),
        "cpus": os.cpu_count(),
        "errors": errors,
        "actions": {
            name: {
                "count": len(values),
                "p50_s": round(statistics.median(values), 2),
                "p95_s": round(percentile(values, 0.95), 2),
                "max_s": round(max(values), 2),
            }
            for name, values in sorted(timings.items())
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"# Load: {args.users} concurrent simulated users for {args.seconds:.0f} s",
        "",
        f"Against `python -m core.cli up` on 127.0.0.1 (Streamlit, one worker process with 4 threads, embedded "
        f"PostgreSQL and Redis), {os.cpu_count()} CPUs shared with the load generator. {args.browsers} users "
        "drive the real pages in headless Chromium: latency from the click until Streamlit finished the run "
        f"(answer fully streamed, upload stored). The other {args.users - args.browsers} users call the same core "
        "services from threads (marked *service*): answer streamed to the end, listing, upload stored and queued. "
        f"Users arrive over the first {args.ramp:g} s and pause {args.think:g} s between actions; the test "
        "then runs until the time is up, with every user active.",
        "",
        "| action | count | p50 s | p95 s | max s |",
        "|---|---|---|---|---|",
    ]
    for name, stats in summary["actions"].items():  # type: ignore[union-attr]
        lines.append(f"| {name} | {stats['count']} | {stats['p50_s']} | {stats['p95_s']} | {stats['max_s']} |")
    lines += ["", f"Errors: {len(errors)}"] + [f"- {error}" for error in errors[:20]]
    (RESULTS / "load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
