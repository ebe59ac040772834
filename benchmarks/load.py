"""Load test: N simulated users drive a running Quorum in headless Chromium for a bounded time.

Starts its own Quorum (`python -m core.cli up`) in a scratch data folder on free ports,
creates N users and a small knowledge base, then each user signs in and loops over
asking a question in Chat, listing the Ingestion Hub and uploading a small document,
recording how long each action takes until the page settles. Errors are timeouts and
Streamlit exception boxes. Results: benchmarks/results/load.md and load.json.

    .venv/bin/python benchmarks/load.py --users 20 --seconds 180
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "load"
RESULTS = ROOT / "benchmarks" / "results"
PASSWORD = "load-test-pass-1"
QUESTIONS = [
    "How many days can employees work remotely?",
    "When is the billing migration planned?",
    "Who leads the mobile app redesign?",
    "What is the meal allowance per day?",
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
    from core.accounts import actor_for_username, insert_user
    from core.db import session_scope
    from core.documents import ingest_paths

    names = [f"loaduser{i:02d}" for i in range(users)]
    with session_scope() as session:
        for name in names:
            insert_user(session, username=name, email=f"{name}@example.com", password=PASSWORD, role_name="user")
    corpus_dir = WORK / "corpus"
    corpus_dir.mkdir()
    for filename, text in CORPUS.items():
        (corpus_dir / filename).write_text(text)
    ingest_paths(actor=actor_for_username("admin"), paths=[corpus_dir], wait=True)
    return names


async def _settle(page: Any) -> None:
    """Wait until Streamlit has finished running the script for the last interaction."""
    await page.wait_for_timeout(300)
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


async def simulate(browser: Any, url: str, username: str, deadline: float, timings: dict[str, list[float]],
                   errors: list[str], index: int) -> None:  # fmt: skip
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

    async def sign_in() -> None:
        await page.goto(url)
        await page.get_by_role("textbox", name="Username").fill(username)
        await page.get_by_role("textbox", name="Password").fill(PASSWORD)
        await page.get_by_role("button", name="Login").click()
        await page.get_by_text("Signed in as").wait_for()

    await timed("sign in", sign_in)
    round_number = 0
    while time.monotonic() < deadline:
        round_number += 1
        question = QUESTIONS[(index + round_number) % len(QUESTIONS)]

        async def ask(question: str = question) -> None:
            await page.get_by_role("link", name="Chat").first.click()
            box = page.get_by_placeholder("Ask a question")
            await box.wait_for()
            before = await page.locator('[data-testid="stChatMessage"]').count()
            await box.fill(question)
            await box.press("Enter")
            await page.wait_for_function(
                f"() => document.querySelectorAll('[data-testid=\"stChatMessage\"]').length >= {before + 2}",
                timeout=120_000,
            )

        async def list_documents() -> None:
            await page.get_by_role("link", name="Ingestion Hub").first.click()
            await page.get_by_text("Indexed content").wait_for()

        async def upload(round_number: int = round_number) -> None:
            name = f"note-{username}-{round_number}.txt"
            payload = f"Meeting note {round_number} from {username}: the load test covers uploads.".encode()
            await page.locator('input[type="file"]').first.set_input_files(
                files=[{"name": name, "mimeType": "text/plain", "buffer": payload}]
            )
            await page.get_by_text(name).first.wait_for()  # the uploader has sent the file
            await page.get_by_role("button", name="Upload and index").click()
            await page.get_by_text(f"{name}: uploaded").wait_for()

        await timed("chat question", ask)
        if time.monotonic() >= deadline:
            break
        await timed("list documents", list_documents)
        await timed("upload document", upload)
    await context.close()


async def run(url: str, users: list[str], seconds: float) -> tuple[dict[str, list[float]], list[str]]:
    from playwright.async_api import async_playwright

    timings: dict[str, list[float]] = {}
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(simulate(browser, url, name, deadline, timings, errors, i) for i, name in enumerate(users))
        )
        await browser.close()
    return timings, errors


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=180)
    args = parser.parse_args()
    port = _free_port()
    app = start_app(port)
    try:
        users = seed(args.users)
        started = time.perf_counter()
        timings, errors = asyncio.run(run(f"http://127.0.0.1:{port}", users, args.seconds))
        wall = time.perf_counter() - started
    finally:
        app.terminate()
        app.wait(timeout=60)
    summary = {
        "users": args.users,
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
        f"# Load: {args.users} simulated users for {args.seconds:.0f} s",
        "",
        f"Headless Chromium sessions against `python -m core.cli up` on 127.0.0.1, {os.cpu_count()} CPUs "
        "shared by the browser, Streamlit, the worker and PostgreSQL. Latency is from the click until "
        "Streamlit finished the run (answer fully streamed, upload stored).",
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
