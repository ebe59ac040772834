"""The Transcripts & Minutes page, driven with Streamlit AppTest against the real database,
storage and services: a finished recording, and one that fails against the fake OpenAI server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from core.access.rbac import Actor
from core.meetings import Minutes, MinutesItem, get_recording_summary, list_recordings, transcribe_recording
from core.platform.db import session_scope
from core.platform.models import TranscriptionJob
from core.platform.storage import get_storage
from tests.conftest import signed_in
from tests.fake_openai import FakeOpenAI
from tests.job_factory import insert_job
from tests.recording_fixtures import submit
from ui import session_keys

pytest_plugins = ["tests.recording_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "transcripts.py")


def _page(actor: Actor, **query: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    signed_in(at, actor)
    for name, value in query.items():
        at.query_params[name] = value
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.error] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts + [c.value for c in at.caption])


def _download_labels(at: AppTest) -> list[str]:
    return [str(getattr(button, "label", "")) for button in at.get("download_button")]


def _audio(at: AppTest):  # type: ignore[no-untyped-def]
    players = at.get("audio")
    assert players, "no audio player on the page"
    return players[0].proto


@pytest.fixture
def finished_job(member: Actor, long_tones: Path, redis_server: str) -> int:
    """A recording as the worker leaves it: audio stored, timestamped transcript, minutes."""
    segments = [
        {"start": 7.0 * i, "end": 7.0 * i + 5.0, "text": f"Point {i} of the design review.", "speaker": None}
        for i in range(12)
    ]
    minutes = Minutes(
        title="Minutes: Design review",
        summary="The team reviewed the new design.",
        decisions=(MinutesItem("Ship the blue theme.", timestamp=14.0),),
    )
    job_id = insert_job(
        member,
        segments=segments,
        filename="Design review.mp3",
        minutes=minutes.to_json(),
        minutes_markdown=minutes.to_markdown(),
    )
    with long_tones.open("rb") as handle:
        stored = get_storage().put(handle, kind="recordings", suffix=".mp3")
    with session_scope() as session:
        session.execute(update(TranscriptionJob).where(TranscriptionJob.id == job_id).values(storage_key=stored.key))
    return job_id


def test_page_lists_opens_plays_from_a_link_and_hides_owner_actions_from_readers(
    finished_job: int, member: Actor, make_user: Callable[..., Actor]
) -> None:
    at = _page(member)
    assert not at.exception, at.exception
    at.toggle(key="transcripts_mine_only").set_value(True).run()
    assert list(at.dataframe[0].value["Recording"]) == ["Design review.mp3"]
    at.session_state[session_keys.SELECTED_JOB_ID] = finished_job
    at.run()
    transcript = at.dataframe[1].value
    assert list(transcript.columns)[:2] == ["Time", "Text"] and transcript["Time"].iloc[0] == "0:00"
    assert _audio(at).start_time == 0
    assert "## Summary" in _texts(at)
    labels = set(_download_labels(at))
    assert {"Text", "SRT subtitles", "WebVTT", "Word", "Minutes (Markdown)"} <= labels
    assert {"Delete permanently", "Edit minutes"} <= {b.label for b in at.button}

    # A link with a time (as chat citations make) opens the player at that moment.
    at = _page(member, job=str(finished_job), t="42.5")
    player = _audio(at)
    assert player.start_time == 42 and player.autoplay
    assert "Playing from 0:42." in _texts(at)

    # A colleague who may only read sees the transcript but no upload, edit, delete or export.
    colleague = make_user()
    reader = Actor(id=colleague.id, username=colleague.username, role="reader",
                   permissions=frozenset({"read_transcripts"}))  # fmt: skip
    at = _page(reader, job=str(finished_job))
    assert not at.exception, at.exception
    assert len(at.dataframe[1].value) == len(transcript)
    labels = {b.label for b in at.button}
    assert not labels & {"Edit minutes", "Delete permanently", "Transcribe", "Retry"}
    assert all(label.startswith("Download the original") for label in _download_labels(at))


def test_minutes_can_be_edited_by_the_owner(finished_job: int, member: Actor) -> None:
    at = _page(member)
    at.session_state[session_keys.SELECTED_JOB_ID] = finished_job
    at.run()
    next(b for b in at.button if b.label == "Edit minutes").click()
    at.run()
    at.text_area[0].input("# Minutes: design review\n\nWe chose the blue theme.")
    next(b for b in at.button if b.label == "Save minutes").click()
    at.run()
    assert not at.exception, at.exception
    assert "Minutes saved and re-indexed for search." in _texts(at)
    assert "We chose the blue theme." in _texts(at)


def test_a_failed_job_shows_its_error_and_can_be_retried_then_deleted(
    fake_api: Callable[..., FakeOpenAI], member: Actor, long_tones: Path
) -> None:
    fake = fake_api(job_max_attempts=1)
    fake.fail_next(50, 400, message="Audio file is too short.", path="/v1/audio/transcriptions")
    job_id = submit(member, long_tones, filename="Broken call.mp3")
    with pytest.raises(Exception, match="too short"):
        transcribe_recording(job_id)

    at = _page(member)
    at.session_state[session_keys.SELECTED_JOB_ID] = job_id
    at.run()
    assert "Audio file is too short." in _texts(at)
    next(b for b in at.button if b.label == "Retry").click()
    at.run()
    assert "Broken call.mp3 is queued again" in _texts(at)
    assert get_recording_summary(actor=member, job_id=job_id).status == "PENDING"

    next(b for b in at.button if b.label == "Delete permanently").click()
    at.run()
    assert not at.exception, at.exception
    assert "Broken call.mp3 was deleted." in _texts(at)
    assert job_id not in {job.id for job in list_recordings(actor=member)}


def test_bulk_export_offers_all_finished_recordings_or_a_choice(finished_job: int, member: Actor) -> None:
    at = _page(member)
    assert not at.exception
    assert "CSV: one row per segment" in _download_labels(at)  # all finished recordings, by default
    (scope,) = [radio for radio in at.radio if radio.key == "transcripts_bulk_scope"]
    scope.set_value("chosen").run()
    assert "CSV: one row per segment" not in _download_labels(at)
    assert "Choose at least one recording." in _texts(at)
    at.multiselect(key="transcripts_bulk_ids").set_value([finished_job]).run()
    assert not at.exception
    assert {"CSV: one row per segment", "ZIP: transcripts and minutes"} <= set(_download_labels(at))
