"""Meetings as team memory in headless Chromium: name a speaker on a finished recording, see
the name in the WebVTT export, and close the meeting's action item on the Action items page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import update

from core.access.rbac import Actor
from core.meetings import write_minutes_for_recording
from core.meetings.action_items import list_action_items
from core.platform.db import session_scope
from core.platform.models import TranscriptionJob
from core.platform.storage import get_storage
from tests import audio_samples
from tests.e2e.conftest import ARTIFACTS, LiveApp, choose_option, screenshot, settle, sign_in
from tests.job_factory import insert_job

MEETING = [
    {"start": 0.0, "end": 4.0, "text": "Hello everyone, I'm Priya and I run the launch.", "speaker": "A"},
    {"start": 4.0, "end": 9.0, "text": "Thanks, Priya. The venue is booked for March.", "speaker": "B"},
    {"start": 9.0, "end": 14.0, "text": "I will send the final budget report by Friday.", "speaker": "A"},
    {"start": 14.0, "end": 18.0, "text": "Great, see you all next week.", "speaker": "B"},
]


def _finished_recording(owner: Actor, folder: Path) -> int:
    """A diarized recording as the worker leaves it (audio stored, transcript, minutes, items)."""
    audio = audio_samples.tone(folder / "launch sync.wav", 18.0)
    job_id = insert_job(owner, segments=MEETING, filename="Launch sync.wav")
    with audio.open("rb") as handle:
        stored = get_storage().put(handle, kind="recordings", suffix=".wav")
    with session_scope() as session:
        session.execute(
            update(TranscriptionJob)
            .where(TranscriptionJob.id == job_id)
            .values(storage_key=stored.key, content_type="audio/wav")
        )
    write_minutes_for_recording(job_id)
    return job_id


def test_name_a_speaker_export_it_and_close_an_action_item(
    live_app: LiveApp, page: Any, member: Actor, tmp_path: Path
) -> None:
    job_id = _finished_recording(member, tmp_path)
    sign_in(page, live_app, member)
    page.get_by_role("link", name="Transcripts & Minutes").click()
    page.get_by_role("heading", name="Transcripts & Minutes").wait_for()
    settle(page)
    # Opened by name: other tests' recordings in the same database may be newer.
    choose_option(page, "Open a recording", f"Launch sync.wav · #{job_id}")
    page.get_by_role("heading", name="Launch sync.wav").wait_for()

    # 1. Name speaker A from the Speakers tab.
    page.get_by_role("tab", name="Speakers").click()
    settle(page)
    page.get_by_text("Hello everyone, I'm Priya").first.wait_for()
    choose_option(page, "Name of Speaker A", "Priya Natarajan")
    page.get_by_role("button", name="Save names").click()
    page.get_by_text("Speaker names saved").wait_for()
    settle(page)
    page.get_by_role("tab", name="Speakers").click()
    settle(page)
    screenshot(page, "speakers-named")

    # 2. The WebVTT export carries the name as a voice tag.
    page.get_by_role("tab", name="Export").click()
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="WebVTT").click()
    vtt = Path(download.value.path()).read_text(encoding="utf-8")
    assert "<v Priya Natarajan>Hello everyone, I'm Priya and I run the launch." in vtt
    (ARTIFACTS / "named-export.vtt").write_text(vtt, encoding="utf-8")

    # 3. The meeting's action item, closed on the Action items page.
    page.get_by_role("link", name="Action items").first.click()
    page.get_by_role("heading", name="Action items").first.wait_for()
    settle(page)
    choose_option(page, "Change an item", "I will send the final budget report")
    page.get_by_role("button", name="Mark done").click()
    page.get_by_text("Marked done.").wait_for()
    settle(page)
    screenshot(page, "action-items-closed")
    [item] = [i for i in list_action_items(actor=member, job_id=job_id) if "budget report" in i.task]
    assert item.status == "done" and item.owner == "Priya Natarajan" and item.closed_at is not None


def test_the_same_recording_again_points_to_the_first(
    live_app: LiveApp, page: Any, member: Actor, tmp_path: Path
) -> None:
    from core.meetings import list_recordings

    recording = audio_samples.tone(tmp_path / "Standup.wav", 6.0)
    sign_in(page, live_app, member)
    page.get_by_role("link", name="Transcripts & Minutes").click()
    page.get_by_role("heading", name="Transcripts & Minutes").wait_for()
    settle(page)
    page.get_by_text("Add a recording").click()
    page.locator("input[type='file']").first.set_input_files(str(recording))
    page.get_by_text(re.compile(r"Standup\.wav.* is (queued|being transcribed|transcribed)")).wait_for()
    settle(page)

    page.locator("input[type='file']").first.set_input_files(str(recording))  # the same file again
    page.get_by_text(re.compile(r"was already (being )?transcribed as “Standup\.wav”")).wait_for()
    settle(page)
    screenshot(page, "duplicate-recording")
    page.get_by_role("button", name="Open it").click()
    page.get_by_role("heading", name="Standup.wav").wait_for()
    assert [job.filename for job in list_recordings(actor=member, mine_only=True)] == ["Standup.wav"]
