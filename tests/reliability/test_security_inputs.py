"""Issue 13, points 5-7 and the Low list: a cap on every costly input, sign-in throttling,
and the smaller holes. Each test fails on the code before the fix.

Documents go through the real upload and indexing paths; messages go to the reliability
tests' private Redis (conftest.private_queue).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.access.rbac import Actor
from core.documents import index_document, upload_documents
from core.platform.models import Document
from tests.admin_data import get_row
from tests.doc_factory import make_pdf, make_pdf_bomb, make_xlsx_shared_string_bomb
from tests.reliability.processes import PrivateQueue
from tests.reliability.test_bad_input import Upload

pytest_plugins = ["tests.recording_fixtures"]  # offline(**settings): QUORUM_ settings for one test


# --------------------------------------------------------------------------- 5. extraction caps


@pytest.fixture
def index_upload(
    make_user: Callable[..., Actor], private_queue: PrivateQueue, offline: Callable[..., None]
) -> Callable[[str, bytes], Document]:
    """index(filename, data) -> the document row after upload and one indexing run."""
    member = make_user()

    def index(filename: str, data: bytes) -> Document:
        [outcome] = upload_documents(actor=member, files=[Upload(filename, data)])
        assert outcome.status == "accepted" and outcome.document_id is not None, outcome.message
        index_document(outcome.document_id)
        return get_row(Document, outcome.document_id)

    return index


def test_a_pdf_bomb_stops_at_the_character_limit(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_characters=1_000_000)
    bomb = make_pdf_bomb(50)  # 9 KB that extract to 8.8 M characters
    assert len(bomb) < 16_000
    document = index_upload("bomb.pdf", bomb)
    assert document.status == "FAILED" and document.chunks_total == 0
    assert document.error == (
        "bomb.pdf holds more than 1,000,000 characters of text, the most Quorum indexes from one document "
        "(QUORUM_MAX_DOCUMENT_CHARACTERS). Split it into smaller files."
    )


def test_an_xlsx_shared_string_bomb_stops_at_the_character_limit(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_characters=1_000_000)
    document = index_upload("numbers.xlsx", make_xlsx_shared_string_bomb())  # 200 KB, 6.5 G characters
    assert document.status == "FAILED"
    assert document.error is not None and document.error.startswith(
        "numbers.xlsx holds more than 1,000,000 characters of text"
    )


def test_too_many_pages_are_refused_before_reading_them(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_pages=3)
    document = index_upload("book.pdf", make_pdf([f"Chapter {n} of the handbook." for n in range(4)]))
    assert document.status == "FAILED"
    assert document.error == (
        "book.pdf has 4 pages; Quorum indexes documents of up to 3 pages (QUORUM_MAX_DOCUMENT_PAGES). "
        "Split it into smaller files."
    )
    assert index_upload("leaflet.pdf", make_pdf(["One page", "Two", "Three"])).status == "COMPLETED"


def test_too_many_chunks_are_refused_before_any_embedding(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_chunks=3, chunk_size_tokens=50, chunk_overlap_tokens=5)
    text = " ".join(f"Paragraph {n} talks about the quarterly roadmap and its budget." for n in range(200))
    document = index_upload("long-notes.txt", text.encode())
    assert document.status == "FAILED" and document.chunks_done == 0
    assert document.error is not None
    assert document.error.startswith("long-notes.txt would make ")
    assert document.error.endswith(
        "search chunks, more than the 3 Quorum indexes from one document (QUORUM_MAX_DOCUMENT_CHUNKS). "
        "Split it into smaller files."
    )


def test_reading_is_stopped_at_the_deadline(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    # 2,000 pages of ~176k characters each: about half an hour of parsing on any machine.
    offline(extraction_timeout_seconds=1, max_document_characters=10**10, max_document_pages=10**6)
    document = index_upload("slow.pdf", make_pdf_bomb(2000))
    assert document.status == "FAILED"
    assert document.error == (
        "slow.pdf took longer than 1 s to read and was stopped (QUORUM_EXTRACTION_TIMEOUT_SECONDS). It may be "
        "built to overload document readers; save it again from the program that made it, or split it."
    )


def test_reading_is_held_to_its_memory_cap(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(extraction_memory_mb=48)
    page = b"<html><body>" + b"<div><p>word and more words</p></div>" * 120_000 + b"</body></html>"  # 4.5 MB
    offline(max_document_mb=10)
    document = index_upload("page.html", page)
    assert document.status == "FAILED"
    # Out of memory the reader usually reports it; if even that fails, its exit is reported.
    assert document.error in (
        "page.html needs more than 48 MB of memory to read and was stopped (QUORUM_EXTRACTION_MEMORY_MB). "
        "Split it into smaller files.",
        "page.html could not be read: the document reader stopped on it (out of memory or a crash).",
    )
    # The worker process itself is untouched and reads the next document normally.
    assert index_upload("fine.html", b"<html><body><p>Quarterly plan.</p></body></html>").status == "COMPLETED"
