"""The operator command line, run as a real subprocess against the test services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.access.rbac import Actor

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def cli_env(database: str, redis_server: str) -> dict[str, str]:
    from core.platform.db import get_engine

    return {
        **os.environ,
        "DATABASE_URL": get_engine().url.render_as_string(hide_password=False),
        "REDIS_URL": redis_server,
    }


def test_ingest_then_ask(cli_env: dict[str, str], admin: Actor, tmp_path: Path) -> None:
    note = tmp_path / "falcon-launch.md"
    note.write_text(
        "# Project Falcon\n\nThe Falcon launch review is scheduled for the ninth of March in Lisbon.\n"
        "The budget owner for Falcon is Priya Raman.\n"
    )
    ingested = _cli("ingest", str(note), "--as", admin.username, env=cli_env)
    assert ingested.returncode == 0, ingested.stderr
    assert "COMPLETED" in ingested.stdout and "falcon-launch.md" in ingested.stdout

    answered = _cli("ask", "Who is the budget owner for Falcon?", "--as", admin.username, env=cli_env)
    assert answered.returncode == 0, answered.stderr
    assert "Priya Raman" in answered.stdout
    assert "Sources:" in answered.stdout and "falcon-launch.md" in answered.stdout


def test_explain_search_shows_where_a_search_spends_its_time(  # type: ignore[no-untyped-def]
    cli_env: dict[str, str], admin: Actor, make_user, tmp_path: Path
) -> None:
    note = tmp_path / "heron-plan.md"
    note.write_text("# Project Heron\n\nThe Heron pilot starts in the Oslo office in May.\n")
    assert _cli("ingest", str(note), "--as", admin.username, env=cli_env).returncode == 0
    explained = _cli("explain-search", "When does the Heron pilot start?", "--as", admin.username, env=cli_env)
    assert explained.returncode == 0, explained.stderr
    assert "Execution Time" in explained.stdout
    assert "Bitmap Index Scan on ix_document_chunks_search_vector" in explained.stdout  # the full-text arm
    # The plan tells how many rows each step read: for people who watch the system.
    user: Actor = make_user()
    refused = _cli("explain-search", "Heron pilot", "--as", user.username, env=cli_env)
    assert refused.returncode == 2 and "view_jobs" in refused.stderr


def test_ingest_reports_rejections(cli_env: dict[str, str], admin: Actor, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = _cli("ingest", str(empty), "--as", admin.username, env=cli_env)
    assert result.returncode == 1
    assert "rejected" in result.stdout and "empty" in result.stdout.lower()


def test_unknown_user_is_a_clear_error(cli_env: dict[str, str]) -> None:
    result = _cli("ask", "anything", "--as", "nobody-here", env=cli_env)
    assert result.returncode == 2
    assert "no active user named 'nobody-here'" in result.stderr


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_transcribe_waits_then_export(cli_env: dict[str, str], admin: Actor, tmp_path: Path) -> None:
    wav = tmp_path / "standup.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav), "Good morning team. We decided to ship the billing release on Monday."],
        check=True,
    )
    result = _cli("transcribe", str(wav), "--as", admin.username, env=cli_env)
    assert result.returncode == 0, result.stderr
    first, last = result.stdout.strip().splitlines()[0], result.stdout.strip().splitlines()[-1]
    job_id = first.split()[1]
    assert last == f"job {job_id} COMPLETED"

    exported = _cli("export", job_id, "--format", "srt", "--as", admin.username, env=cli_env)
    assert exported.returncode == 0, exported.stderr
    assert "00:00:0" in exported.stdout and "-->" in exported.stdout
    assert "release" in exported.stdout.lower()

    output = tmp_path / "minutes.md"
    written = _cli("export", job_id, "--format", "minutes-md", "--output", str(output), "--as", admin.username,
                   env=cli_env)  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert "Monday" in output.read_text()
