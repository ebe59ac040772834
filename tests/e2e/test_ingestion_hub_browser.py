"""The Ingestion Hub in headless Chromium: upload a batch, watch it index, view chunks, delete."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from core.access.rbac import ADMIN_ROLE
from core.platform.db import session_scope
from core.platform.models import Document
from tests import audio_samples
from tests.conftest import unique
from tests.doc_factory import PNG_BYTES, make_pdf
from tests.e2e.conftest import LiveApp, open_page, screenshot, settle, sign_in


def _no_exception(page: Any) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def _documents_named(name: str) -> list[Document]:
    with session_scope() as session:
        rows = list(session.query(Document).filter(Document.filename == name))
        for row in rows:
            session.expunge(row)
        return rows


def test_upload_index_view_and_delete_in_browser(live_app: LiveApp, page: Any, make_user: Any, tmp_path: Path) -> None:
    admin = make_user(ADMIN_ROLE)
    token = unique("hub")
    good = tmp_path / f"{token}-plan.pdf"
    good.write_bytes(make_pdf([f"The {token} plan starts in May.", f"Page two of the {token} plan."]))
    fake = tmp_path / f"{token}-photo.pdf"
    fake.write_bytes(PNG_BYTES)

    sign_in(page, live_app, admin)
    page.get_by_role("link", name="Ingestion Hub").click()
    page.get_by_role("heading", name="Ingestion Hub").wait_for()
    uploader = page.get_by_test_id("stFileUploader").first
    uploader.wait_for()
    # One button picks files; there is no second "submit" to find.
    assert uploader.get_by_test_id("stBaseButton-secondary").all_inner_texts() == ["upload\n\nUpload"]
    assert page.get_by_role("button", name=re.compile("and index|^Transcribe$")).count() == 0
    hint = uploader.get_by_test_id("stFileUploaderDropzoneInstructions").inner_text()
    assert "PDF, DOCX, XLSX, TXT, MD, HTML, CSV" in hint and "MARKDOWN" not in hint and "text" not in hint
    page.wait_for_timeout(1000)  # let the page settle before handing it files
    uploader.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(good), str(fake)])
    # Choosing the files was the whole action: each gets a message, the uploader is empty again.
    page.get_by_text(f"{fake.name}: named .pdf but the content is a PNG file").wait_for()
    page.get_by_text(re.compile(re.escape(good.name) + ": (uploaded|indexing|indexed)")).wait_for()
    expect(page.get_by_test_id("stFileUploaderFile")).to_have_count(0)
    screenshot(page, "ingestion-hub-uploaded")
    _no_exception(page)

    deadline = time.monotonic() + 60  # the live worker indexes it
    while time.monotonic() < deadline:
        rows = _documents_named(good.name)
        if rows and rows[0].status == "COMPLETED":
            break
        time.sleep(0.5)
    [document] = _documents_named(good.name)
    assert document.status == "COMPLETED" and document.chunks_total == 2
    assert _documents_named(fake.name) == []
    # The message follows the document to its final state by itself (no reload, no click).
    page.get_by_text(f"{good.name}: indexed (2 chunks); Chat can answer from it now.").wait_for()
    expect(page.get_by_text("waiting for a worker")).to_have_count(0)
    page.wait_for_timeout(2500)  # one live refresh of the table fragment
    screenshot(page, "ingestion-hub-table")

    page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Document", exact=True)).click()
    page.keyboard.type(good.name)
    page.wait_for_timeout(300)
    screenshot(page, "ingestion-hub-choose")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="View chunks").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"The {token} plan starts in May.").wait_for()
    dialog.get_by_text("Chunk 2").wait_for()
    screenshot(page, "ingestion-hub-chunks")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    page.get_by_role("button", name="Delete", exact=True).click()
    dialog.get_by_text("cannot be undone").wait_for()
    screenshot(page, "ingestion-hub-delete")
    dialog.get_by_role("button", name="Delete").click()
    page.get_by_text(f"Deleted {good.name}.").wait_for()
    _no_exception(page)
    assert _documents_named(good.name) == []


def test_a_recording_chosen_in_the_hub_is_queued_followed_and_linked(
    live_app: LiveApp, page: Any, make_user: Any, tmp_path: Path
) -> None:
    member = make_user()
    recording = audio_samples.speech(tmp_path / f"{unique('standup')}.wav", "We decided to ship on Monday.")
    sign_in(page, live_app, member)
    page.get_by_role("link", name="Ingestion Hub").click()
    page.get_by_role("tab", name="Audio").click()
    uploader = page.get_by_test_id("stFileUploader").nth(1)
    uploader.wait_for()
    settle(page)
    assert page.get_by_role("button", name="Transcribe", exact=True).count() == 0  # no second step
    uploader.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(recording))
    # The message follows the job by itself until the transcript is ready.
    page.get_by_text(re.compile(re.escape(recording.name) + r".* is transcribed")).wait_for(timeout=120_000)
    screenshot(page, "ingestion-hub-audio-transcribed")
    _no_exception(page)
    link = f"Open {recording.name} on Transcripts & Minutes"
    open_page(page, link, lambda: page.get_by_role("heading", name=recording.name))  # that recording is open
