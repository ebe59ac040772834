"""The whole product in one browser session, as a team member and then an admin:
sign in, upload a document, upload a recording, read its transcript and minutes, ask a
question and get a cited answer, give a thumbs down with a correction, see it in the
admin's feedback review, and export transcripts as CSV."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from core.access.rbac import Actor
from core.platform.db import session_scope
from core.platform.models import Document, TranscriptionJob
from tests import audio_samples
from tests.conftest import unique
from tests.e2e.conftest import LiveApp, open_page, screenshot, settle, sign_in


def _no_exception(page: Any) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def _wait_for_status(model: Any, name_column: Any, name: str, *, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    status = "missing"
    while time.monotonic() < deadline:
        with session_scope() as session:
            status = session.scalar(select(model.status).where(name_column == name)) or "missing"
        if status in ("COMPLETED", "FAILED"):
            return status
        time.sleep(0.5)
    return status


def _upload(page: Any, path: Path) -> None:
    uploader = page.get_by_test_id("stFileUploader").first
    uploader.wait_for()
    page.wait_for_timeout(800)
    uploader.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    uploader.get_by_text("-" + path.name.rsplit("-", 1)[-1]).wait_for()  # names are shown shortened
    settle(page)


def test_member_flow_and_admin_review(
    live_app: LiveApp, browser: Any, page: Any, member: Actor, admin: Actor, tmp_path: Path
) -> None:
    token = unique("falcon")
    document = tmp_path / f"{token}-brief.md"
    document.write_text(
        f"# Project {token}\n\nThe {token} launch review happens in Lisbon on the ninth of March.\n\n"
        f"## Budget\n\nThe {token} budget owner is Priya Raman.\n"
    )
    recording = audio_samples.concat(
        tmp_path / f"{token}-standup.mp3",
        [
            audio_samples.speech(tmp_path / "a.wav", "Good morning. We decided to ship the release on Monday."),
            audio_samples.silence(tmp_path / "b.wav", 1.5),
            audio_samples.speech(tmp_path / "c.wav", "Alice will update the roadmap by Friday."),
        ],
    )

    # 1. Sign in and upload a document.
    sign_in(page, live_app, member)
    open_page(page, "Ingestion Hub", lambda: page.get_by_role("heading", name="Ingestion Hub"))
    _upload(page, document)  # choosing the file is the whole action
    assert _wait_for_status(Document, Document.filename, document.name) == "COMPLETED"
    page.get_by_text(f"{document.name}: indexed (").wait_for()  # the message follows the indexing
    _no_exception(page)

    # 2. Upload a recording; the page follows it to its transcript and minutes.
    # The hub's live message reruns the page as indexing ends: a click then can be superseded.
    open_page(page, "Transcripts & Minutes", lambda: page.get_by_role("heading", name="Transcripts & Minutes"))
    page.get_by_text("Add a recording").click()
    page.locator("input[type='file']").first.set_input_files(str(recording))
    page.get_by_text(re.compile(r"is (queued|being transcribed|transcribed)")).first.wait_for()
    assert _wait_for_status(TranscriptionJob, TranscriptionJob.filename, recording.name) == "COMPLETED"
    page.get_by_role("heading", name=recording.name).wait_for()  # the recording just queued is open
    page.get_by_test_id("stMetricValue").filter(has_text="Completed").wait_for(timeout=60_000)
    settle(page)
    # The run that draws the finished recording replaces the tabs of the one before.
    minutes_tab = page.get_by_role("tab", name="Minutes")
    expect(minutes_tab).to_have_count(1, timeout=30_000)
    minutes_tab.click()
    minutes = page.get_by_role("tabpanel", name="Minutes")  # other tabs (Speakers) quote the same words
    minutes.get_by_text("Monday").first.wait_for()
    minutes.get_by_text("Alice").first.wait_for()
    screenshot(page, "flow-minutes")
    _no_exception(page)

    # 3. Ask a question and get a cited answer.
    open_page(page, "Chat", lambda: page.get_by_placeholder("Ask a question"))
    question = f"Who is the {token} budget owner?"
    box = page.get_by_placeholder("Ask a question")
    box.fill(question)
    box.press("Enter")
    answer = page.get_by_test_id("stChatMessage").nth(1)
    answer.get_by_text("Priya Raman").first.wait_for(timeout=60_000)
    answer.get_by_text(re.compile(r"\[1\]")).first.wait_for()
    answer.get_by_text(document.name).first.wait_for()
    screenshot(page, "flow-answer")

    # 4. Thumbs down with a correction.
    answer.get_by_test_id("stFeedback").locator("button").nth(1).click()
    page.get_by_text("Marked not helpful.").wait_for()
    answer.get_by_text("You marked this answer not helpful.").wait_for()  # stays, in words
    correction = f"The {token} budget owner changed to Tomas Berg in April."
    answer.get_by_role("button", name="Suggest a correction").click()
    page.get_by_role("textbox", name="What should the answer have said?").fill(correction)
    page.get_by_role("button", name="Save correction").click()
    page.get_by_text("Correction saved").wait_for()
    _no_exception(page)

    # 5. The admin sees it in feedback review.
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    context.set_default_timeout(30_000)
    admin_page = context.new_page()
    sign_in(admin_page, live_app, admin)
    admin_page.get_by_role("link", name="Admin").click()
    admin_page.get_by_role("tab", name="Feedback review").wait_for()
    settle(admin_page)
    admin_page.get_by_role("tab", name="Feedback review").click()
    admin_page.get_by_test_id("stSelectbox").filter(has_text="Feedback").last.click()
    admin_page.get_by_role("option", name=re.compile(re.escape(question[:60]))).first.click()
    # The review panel shows the correction whole (the table above shows it cut).
    admin_page.get_by_test_id("stAlertContentInfo").get_by_text(correction).wait_for()
    screenshot(admin_page, "flow-feedback-review")
    _no_exception(admin_page)

    # 6. Export transcripts as CSV (one row per segment).
    open_page(
        admin_page, "Transcripts & Minutes", lambda: admin_page.get_by_role("heading", name="Transcripts & Minutes")
    )
    admin_page.get_by_text("Export several recordings").click()
    admin_page.keyboard.press("Escape")
    with admin_page.expect_download() as download:
        admin_page.get_by_role("button", name="CSV: one row per segment").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    ours = [row for row in rows if row["file"] == recording.name]
    assert ours, f"no rows for {recording.name} in the CSV"
    assert {"job", "file", "start", "end", "speaker", "text"} <= set(rows[0])
    assert "monday" in " ".join(row["text"] for row in ours).lower()
    context.close()
