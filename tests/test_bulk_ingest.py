"""Bulk ingest through the CLI's path: several processes, overlapping API requests, vector indexes built."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from core.access.rbac import Actor
from core.documents import ingest_paths
from core.documents.vector_segments import tail_rows
from core.platform.config import get_settings
from tests.conftest import unique
from tests.fake_openai import FakeOpenAI
from tests.recording_fixtures import own_embedding_space  # noqa: F401  (fixture)


def _folder(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "drive"
    folder.mkdir()
    for number in range(count):
        word = unique("topic")
        (folder / f"note-{number:02d}.md").write_text(
            f"# Note {number}\n\n" + " ".join(f"The {word} plan step {i} is reviewed on day {i}." for i in range(60))
        )
    return folder


def test_ingest_in_several_processes_completes_everything_in_order_and_indexes_vectors(
    admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUORUM_VECTOR_TAIL_ROWS", "5")  # the parent seals and indexes what the children write
    # Spawned children re-run the parent's __main__; after an AppTest in this process that is
    # streamlit_app.py. The CLI's __main__ is core.cli, so run the children as the CLI would.
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    monkeypatch.delattr(main, "__file__", raising=False)
    get_settings.cache_clear()
    try:
        folder = _folder(tmp_path, 5)
        results = ingest_paths(actor=admin, paths=[folder], processes=2)
        assert [Path(r.path).name for r in results] == [f"note-{n:02d}.md" for n in range(5)]
        assert [r.status for r in results] == ["COMPLETED"] * 5
        assert all(r.chunks >= 1 for r in results)
        assert tail_rows() < get_settings().vector_tail_rows
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.mark.usefixtures("own_embedding_space")  # the API's vectors, not the offline ones stored before
def test_with_an_api_several_embedding_requests_are_in_flight_per_process(
    admin: Actor, tmp_path: Path, openai_provider: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.embedding_latency = 0.3  # files overlap on the network, not on the CPU
    folder = _folder(tmp_path, 6)
    results = ingest_paths(actor=admin, paths=[folder], processes=1)
    assert [r.status for r in results] == ["COMPLETED"] * 6
    assert fake_openai.embeddings_in_flight_peak >= 2
    assert fake_openai.embeddings_in_flight_peak <= get_settings().embedding_concurrency
