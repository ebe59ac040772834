"""The Action items page, the Speakers tab of Transcripts & Minutes and Home's "your open
action items", driven with Streamlit AppTest against the real database and services."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from core.access.rbac import Actor
from core.meetings import write_minutes_for_recording
from core.meetings.action_items import list_action_items
from core.platform.db import session_scope
from core.platform.models import TranscriptionJob
from core.platform.storage import get_storage
from tests import audio_samples
from tests.conftest import signed_in
from tests.job_factory import insert_job, load_job
from ui import session_keys

ROOT = Path(__file__).resolve().parent.parent

MEETING = [
    {"start": 0.0, "end": 5.0, "text": "Hello, I'm Alice and I chair this review.", "speaker": "A"},
    {"start": 5.0, "end": 11.0, "text": "Thanks, Alice. Bob will book the venue by Friday.", "speaker": "B"},
    {"start": 11.0, "end": 17.0, "text": "Alice will send the final budget report by Monday.", "speaker": "A"},
]


def _open(page: str, actor: Actor) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=60)
    signed_in(at, actor)
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [s.value for s in at.success] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts + [i.value for i in at.info] + [e.value for e in at.error])


@pytest.fixture
def meeting(make_user: Callable[..., Actor], redis_server: str, tmp_path: Path) -> tuple[Actor, int]:
    owner = make_user(display_name="Bob Stone")
    job_id = insert_job(owner, segments=MEETING, filename="venue review.mp3")
    with audio_samples.tone(tmp_path / "venue.wav", 17.0).open("rb") as handle:  # the page plays it
        stored = get_storage().put(handle, kind="recordings", suffix=".wav")
    with session_scope() as session:
        session.execute(update(TranscriptionJob).where(TranscriptionJob.id == job_id).values(storage_key=stored.key))
    write_minutes_for_recording(job_id)
    return owner, job_id


def test_action_items_page_filters_closes_and_exports(meeting: tuple[Actor, int]) -> None:
    owner, job_id = meeting
    at = _open("action_items.py", owner)
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"Bob", "Alice"} <= set(table["Owner"]) and {"Open", "Overdue"} & set(table["Status"])
    assert {"Download CSV", "Download Excel (XLSX)"} <= {str(b.label) for b in at.get("download_button")}

    at.selectbox(key="action_items_owner").set_value("Bob").run()
    assert set(at.dataframe[0].value["Owner"]) == {"Bob"}  # other tests' meetings may have a Bob too
    [bob] = [i for i in list_action_items(actor=owner, job_id=job_id) if i.owner == "Bob"]
    at.selectbox(key="action_items_chosen").set_value(bob.id).run()
    next(b for b in at.button if b.label == "Mark done").click()
    at.run()
    assert not at.exception, at.exception
    assert "Marked done." in _texts(at)
    assert [i.status for i in list_action_items(actor=owner, job_id=job_id) if i.owner == "Bob"] == ["done"]
    at.selectbox(key="action_items_status").set_value("done").run()
    assert "Bob Stone" in set(at.dataframe[0].value["Closed by"])


def test_home_lists_your_open_action_items(meeting: tuple[Actor, int]) -> None:
    owner, _ = meeting
    # Home links to other pages, so it runs under the router, signed in as a person would.
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    inputs = {ti.label: ti for ti in at.text_input}
    inputs["Username"].input(owner.username)
    inputs["Password"].input("correct-horse-9")
    at.button[0].click()
    at.run()
    at.run()  # AppTest runs no cookie component: rerun as its report would
    assert not at.exception, at.exception
    assert any("Welcome" in t.value for t in at.title)
    mine = next(frame.value for frame in at.dataframe if "Task" in frame.value.columns)
    assert "Bob will book the venue by Friday." in list(mine["Task"])
    assert "Alice will send the final budget report by Monday." not in list(mine["Task"])


def test_the_owner_names_a_speaker_and_accepts_a_suggestion(meeting: tuple[Actor, int]) -> None:
    owner, job_id = meeting
    at = AppTest.from_file(str(ROOT / "pages" / "transcripts.py"), default_timeout=60)
    signed_in(at, owner)
    at.session_state[session_keys.SELECTED_JOB_ID] = job_id
    at.run()
    assert not at.exception, at.exception
    next(b for b in at.button if b.label == "Suggest names").click()
    at.run()
    assert "Speaker A → **Alice**" in _texts(at)
    assert load_job(job_id).speaker_names == {}  # suggestions are not applied
    next(b for b in at.button if b.label == "Accept").click()
    at.run()
    at.selectbox(key=f"speaker_name_{job_id}_B").set_value("Bob Stone")
    next(b for b in at.button if b.label == "Save names").click()
    at.run()
    assert not at.exception, at.exception
    assert load_job(job_id).speaker_names == {"A": "Alice", "B": "Bob Stone"}
    assert "Speaker names saved" in _texts(at)
    speakers = set(at.dataframe[1].value["Speaker"])
    assert speakers == {"Alice", "Bob Stone"}
