"""The Ingestion Hub page under Streamlit's AppTest: table, filters and row actions reach core."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from core.access.rbac import Actor
from core.documents import index_document, upload_documents
from core.platform.db import session_scope
from core.platform.models import Document
from tests.conftest import signed_in, unique
from ui import session_keys

PAGE = Path(__file__).resolve().parent.parent / "pages" / "ingestion_hub.py"

pytestmark = pytest.mark.usefixtures("redis_server")


def _page(actor: Actor) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    signed_in(at, actor)
    return at.run()


def _upload(actor: Actor, name: str, text: str, *, index: bool = True) -> int:
    stream = io.BytesIO(text.encode())
    stream.name = name  # type: ignore[attr-defined]
    [outcome] = upload_documents(actor=actor, files=[stream])
    assert outcome.document_id is not None, outcome.message
    if index:
        index_document(outcome.document_id)
    return outcome.document_id


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def _status(document_id: int) -> str | None:
    with session_scope() as session:
        document = session.get(Document, document_id)
        return None if document is None else document.status


def test_the_table_lists_what_the_user_may_see_and_filters_by_name(make_user: Any) -> None:
    member = make_user()
    token = unique("hub")
    first = _upload(member, f"{token}-plan.txt", f"The plan for {token}. It has two sentences.")
    _upload(member, f"{token}-notes.md", f"# Notes\n\nNotes about {token}.", index=False)
    at = _page(member)
    assert not at.exception, at.exception
    assert [tab.label for tab in at.tabs][:2] == [":material/description: Documents", ":material/graphic_eq: Audio"]

    table = at.dataframe[0].value
    names = list(table["Name"])
    assert f"{token}-plan.txt" in names and f"{token}-notes.md" in names
    plan = table[table["Name"] == f"{token}-plan.txt"].iloc[0]
    assert plan["Status"] == "Completed" and plan["Progress"] == 1.0 and plan["ID"] == first

    next(t for t in at.text_input if t.label == "File name contains").input(f"{token}-plan").run()
    assert list(at.dataframe[0].value["Name"]) == [f"{token}-plan.txt"]
    next(s for s in at.selectbox if s.label == "Status").select("PENDING").run()
    assert not at.dataframe and "Nothing matches" in at.info[-1].value


def test_row_actions_reindex_and_delete_asks_for_confirmation(make_user: Any, admin: Actor) -> None:
    member = make_user()
    token = unique("act")
    document_id = _upload(member, f"{token}.txt", f"Action items for {token}. Ship it on Friday.")

    at = _page(member)
    at.selectbox(key=session_keys.SELECTED_DOCUMENT_ID).select(document_id).run()
    assert not at.exception, at.exception
    assert _button(at, "Delete").disabled  # members lack delete_documents
    assert not _button(at, "Re-index").disabled
    assert at.get("download_button")  # the original is offered for download
    _button(at, "Re-index").click().run()
    assert _status(document_id) == "PENDING"
    # The filename is shown as plain text: Markdown punctuation escaped, so "." reads "\\.".
    assert f"Re-indexing {token}\\.txt." in [s.value for s in at.success]

    index_document(document_id)
    at = _page(admin)
    next(t for t in at.text_input if t.label == "File name contains").input(token).run()
    at.selectbox(key=session_keys.SELECTED_DOCUMENT_ID).select(document_id).run()
    _button(at, "Delete").click().run()
    assert _status(document_id) == "COMPLETED"  # nothing deleted before the confirmation
    assert any("cannot be undone" in m.value for m in at.markdown)
    # Confirming inside the dialog reruns the dialog as a fragment, which AppTest does not do:
    # tests/e2e/test_ingestion_hub_browser.py clicks it in a real browser.
    assert at.button(key="hub_confirm_delete").label == "Delete"


def test_a_reader_without_ingest_permission_sees_no_upload_form(member: Actor) -> None:
    reader = Actor(id=member.id, username=member.username, role="reader", permissions=frozenset({"read_documents"}))
    at = _page(reader)
    assert not at.exception, at.exception
    assert any("cannot add documents" in info.value for info in at.info)
    assert any("cannot transcribe recordings" in info.value for info in at.info)
