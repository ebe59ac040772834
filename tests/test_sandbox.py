"""The sandboxed reader: one forked child reads many documents, and is replaced when it must be.

No database: core.documents.sandbox only forks, caps and reads. The deadline and memory-cap
messages seen through indexing are in tests/reliability/test_security_inputs.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.documents import sandbox
from core.documents.filetypes import KINDS
from core.platform.config import get_settings
from core.platform.errors import InvalidInput
from tests.doc_factory import make_pdf_bomb


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No idle reader from another test; none left behind."""
    sandbox.close_readers()
    yield
    sandbox.close_readers()
    monkeypatch.undo()
    get_settings.cache_clear()


def _settings(monkeypatch: pytest.MonkeyPatch, **values: object) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"QUORUM_{name.upper()}", str(value))
    get_settings.cache_clear()


def _text_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _idle_pids() -> list[int]:
    return [reader.process.pid for reader in sandbox._idle_readers if reader.process.pid is not None]


def test_one_child_reads_document_after_document(readers: None, tmp_path: Path) -> None:
    first = sandbox.read_document(_text_file(tmp_path, "a.txt", "Budget review."), KINDS["text"], filename="a.txt")
    pids = _idle_pids()
    second = sandbox.read_document(_text_file(tmp_path, "b.txt", "Hiring plan."), KINDS["text"], filename="b.txt")
    assert [s.text for s in first] == ["Budget review."] and [s.text for s in second] == ["Hiring plan."]
    assert len(pids) == 1 and _idle_pids() == pids  # the same child, not a fork per document


def test_a_child_stopped_at_the_deadline_is_replaced(
    readers: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings(monkeypatch, extraction_timeout_seconds=1, max_document_characters=10**10, max_document_pages=10**6)
    sandbox.read_document(_text_file(tmp_path, "warm.txt", "Warm up."), KINDS["text"], filename="warm.txt")
    [slow_reader] = _idle_pids()
    bomb = tmp_path / "slow.pdf"
    bomb.write_bytes(make_pdf_bomb(2000))
    with pytest.raises(InvalidInput, match="took longer than 1 s to read"):
        sandbox.read_document(bomb, KINDS["pdf"], filename="slow.pdf")
    assert _idle_pids() == []  # killed, not kept
    with pytest.raises(ProcessLookupError):
        os.kill(slow_reader, 0)
    after = sandbox.read_document(_text_file(tmp_path, "next.txt", "Next one."), KINDS["text"], filename="next.txt")
    assert [s.text for s in after] == ["Next one."]
    assert _idle_pids() and _idle_pids() != [slow_reader]


def test_a_child_that_ran_out_of_memory_is_replaced(
    readers: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At the cap the child usually raises MemoryError, but now and then spins until the
    # deadline (the same before readers were reused): either way it is not kept.
    _settings(monkeypatch, extraction_memory_mb=16, extraction_timeout_seconds=15)
    page = tmp_path / "page.html"
    page.write_bytes(b"<html><body>" + b"<div><p>word and more words</p></div>" * 40_000 + b"</body></html>")
    with pytest.raises(InvalidInput):
        sandbox.read_document(page, KINDS["html"], filename="page.html")
    assert _idle_pids() == []
    fine = tmp_path / "fine.html"
    fine.write_bytes(b"<html><body><p>Quarterly plan.</p></body></html>")
    assert "Quarterly plan." in sandbox.read_document(fine, KINDS["html"], filename="fine.html")[0].text


def test_idle_children_end_when_their_process_is_killed(tmp_path: Path) -> None:
    """SIGKILL of a worker leaves no reading child behind (the pipe's end closes with it)."""
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from core.documents import sandbox
        from core.documents.extraction import ExtractionLimits
        path = Path({str(tmp_path / "a.txt")!r})
        path.write_text("Budget review.")
        # Two children: the second also holds the first one's pipe from the fork.
        readers = [sandbox._Reader(512 * 1024 * 1024) for _ in range(2)]
        for reader in readers:
            assert reader.read((str(path), "text", "a.txt", ExtractionLimits.from_settings()), 30)[0] == "ok"
        print(" ".join(str(r.process.pid) for r in readers), flush=True)
        time.sleep(60)
        """
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert worker.stdout is not None
    children = [int(pid) for pid in worker.stdout.readline().split()]
    assert len(children) == 2
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 30
    alive = set(children)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as stat:
                    if stat.read().rsplit(")", 1)[1].split()[0] == "Z":  # exited, not yet reaped by init
                        alive.discard(pid)
            except (ProcessLookupError, FileNotFoundError):
                alive.discard(pid)
        time.sleep(0.1)
    assert not alive
