"""A recording through the real app in headless Chromium: upload on the Transcripts &
Minutes page, the worker transcribes it with the offline Whisper, the page follows it live,
and choosing a transcript line moves the player to that moment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.access.rbac import Actor
from tests import audio_samples
from tests.e2e.conftest import LiveApp, screenshot, settle, sign_in

SENTENCES = ["Welcome to the budget meeting.", "The launch moves to Thursday.", "Maria owns the marketing plan."]


def _meeting(folder: Path) -> Path:
    parts: list[Path] = []
    for number, sentence in enumerate(SENTENCES):
        parts.append(audio_samples.speech(folder / f"line{number}.wav", sentence))
        parts.append(audio_samples.silence(folder / f"pause{number}.wav", 2.0))
    return audio_samples.concat(folder / "Budget meeting.mp3", parts)


def test_upload_follow_and_play_from_a_line(live_app: LiveApp, page: Any, member: Actor, tmp_path: Path) -> None:
    recording = _meeting(tmp_path)
    sign_in(page, live_app, member)
    page.get_by_role("link", name="Transcripts & Minutes").click()
    page.get_by_role("heading", name="Transcripts & Minutes").wait_for()
    settle(page)

    page.get_by_text("Add a recording").click()
    page.locator("input[type='file']").first.set_input_files(str(recording))  # choosing it is the action
    page.get_by_text(re.compile(r"Budget meeting\.mp3.* is (queued|being transcribed|transcribed)")).wait_for()
    screenshot(page, "transcripts-queued")
    # The recording just queued is the one opened, whatever other recordings exist.
    page.get_by_role("heading", name="Budget meeting.mp3").wait_for()

    # The page follows the job live and shows the transcript when the worker is done.
    page.get_by_test_id("stMetricValue").filter(has_text="Completed").wait_for(timeout=90_000)
    page.get_by_text("Choose a line to play the recording from that moment.").wait_for()
    screenshot(page, "transcripts-completed")

    grid = page.get_by_test_id("stDataFrame").nth(1)
    grid.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = grid.bounding_box()
    assert box is not None
    # Row 2 of the transcript (header 35 px, rows 35 px): its row-selection cell at the left edge.
    # Row 2, not 3: offline Whisper may join two short spoken lines into one segment.
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 1 * 35 + 17)
    page.get_by_text("Playing from").wait_for()
    started = page.locator("audio").first.evaluate(
        "a => new Promise(r => a.readyState > 0 ? r(a.currentTime)"
        " : a.addEventListener('loadedmetadata', () => r(a.currentTime)))"
    )
    shown = page.get_by_text("Playing from").inner_text()
    minutes, seconds = shown.removeprefix("Playing from ").rstrip(".").split(":")
    assert started >= int(minutes) * 60 + int(seconds) > 0
    screenshot(page, "transcripts-seek")
