"""The Admin page under Streamlit's AppTest: tabs by permission, and actions reaching core."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.access.rbac import Actor
from core.platform.db import session_scope
from core.platform.models import MessageFeedback, Role, User
from tests.admin_data import get_row, make_chat, make_document, make_feedback
from tests.conftest import signed_in, unique
from ui import session_keys

PAGE = Path(__file__).resolve().parent.parent / "pages" / "admin.py"
ALL_TABS = ["Users", "Roles & permissions", "Feedback review", "Jobs", "Usage", "Audit log"]

pytestmark = pytest.mark.usefixtures("redis_server")


def _page(actor: Actor) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    signed_in(at, actor)
    return at.run()


def _button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def _tab_names(at: AppTest) -> list[str]:
    """Tab labels without what waits there ("Jobs · 2 failed" -> "Jobs")."""
    return [tab.label.split(" · ")[0] for tab in at.tabs]


def _text(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(t for t in at.text_input if t.label == label)


def test_an_admin_sees_every_tab(admin: Actor) -> None:
    at = _page(admin)
    assert not at.exception, at.exception
    assert _tab_names(at) == ALL_TABS
    assert not at.error


def test_tabs_follow_permissions(admin: Actor) -> None:
    reviewer = Actor(id=admin.id, username=admin.username, role="x", permissions=frozenset({"review_feedback"}))
    at = _page(reviewer)
    assert not at.exception
    assert _tab_names(at) == ["Feedback review"]
    ops = Actor(id=admin.id, username=admin.username, role="x", permissions=frozenset({"view_jobs", "view_audit_log"}))
    assert _tab_names(_page(ops)) == ["Jobs", "Usage", "Audit log"]
    nobody = Actor(id=admin.id, username=admin.username, role="x", permissions=frozenset({"use_chat"}))
    at = _page(nobody)
    assert not at.tabs and "no admin permissions" in at.info[0].value


def test_create_a_user_from_the_users_tab(admin: Actor) -> None:
    at = _page(admin)
    name = unique("ui")
    _text(at, "Username").input(name)
    _text(at, "Email").input(f"{name}@example.com")
    at = _button(at, "Create user").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with session_scope() as session:
        assert session.scalar(select(User.id).where(User.username == name)) is not None
    assert any(name in s.value for s in at.success)
    # No password was typed, so a generated one is shown once.
    assert at.code and len(at.code[0].value) >= 12
    assert not _page(admin).code


def test_delete_a_user_needs_the_typed_username(admin: Actor, make_user: Callable[..., Actor]) -> None:
    victim = make_user()
    at = _select_user(admin, victim)
    assert _button(at, "Delete user").disabled
    at.text_input(key=f"admin_delete_confirm_{victim.id}").input(victim.username)
    at = at.run()
    at = _button(at, "Delete user").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert get_row(User, victim.id) is None


def _select_user(admin: Actor, user: Actor) -> AppTest:
    at = _page(admin)
    picker = at.selectbox(key="admin_user_pick")
    labels = [label.split(" · ")[0] for label in picker.options]
    return picker.select_index(labels.index(user.username)).run()


def test_create_a_role_from_the_roles_tab(admin: Actor) -> None:
    at = _page(admin)
    name = unique("auditors")
    _text(at, "Name").input(name)
    at.multiselect[0].select("view_audit_log")
    at = _button(at, "Create role").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with session_scope() as session:
        assert session.scalar(select(Role.id).where(Role.name == name)) is not None


def test_accept_a_correction_from_the_feedback_tab(admin: Actor, member: Actor) -> None:
    _, (answer,) = make_chat(member.id, [(f"Who owns {unique('topic')}?", "Nobody.")])
    feedback = make_feedback(answer, member.id, rating="bad", correction="Dana owns it.")
    at = _page(admin)
    picker = at.selectbox(key="admin_fb_pick")
    at = picker.select_index([label.split(" · ")[0] for label in picker.options].index(f"#{feedback}")).run()
    at.radio[0].set_value("accepted")
    at.text_area[0].input("Confirmed.")
    at = _button(at, "Save review").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    row = get_row(MessageFeedback, feedback)
    assert (row.review_status, row.reviewer_note, row.reviewer_id) == ("accepted", "Confirmed.", admin.id)
    # The reviewed item stays open although its review status changed.
    assert at.selectbox(key="admin_fb_pick").value == feedback
    assert row.question_embedding is not None


def test_tabs_count_what_needs_attention_and_tables_speak_words(admin: Actor, member: Actor) -> None:
    _, (answer,) = make_chat(member.id, [(f"Who owns {unique('topic')}?", "Nobody.")])
    make_feedback(answer, member.id, rating="bad", correction="Dana owns it.")
    make_document(member.id, status="FAILED", error="The file could not be read.")
    make_document(member.id, status="COMPLETED", chunks_total=1, chunks_done=1)
    at = _page(admin)
    assert not at.exception, at.exception
    labels = [tab.label for tab in at.tabs]
    assert re.fullmatch(r"Feedback review · \d+ new", labels[2]) and re.fullmatch(r"Jobs · \d+ failed", labels[3])
    # The session opens on the first tab where something waits, and keeps it afterwards.
    assert at.session_state[session_keys.ADMIN_OPENING_TAB] == "Feedback review"

    # Feedback: what a reviewer acts on comes first; long texts are cut to keep it on screen.
    tables = [frame.value for frame in at.dataframe]
    feedback_table = next(table for table in tables if "Reviewer" in table.columns)
    assert list(feedback_table.columns[:3]) == ["Id", "Status", "Rating"]
    assert set(feedback_table["Status"]) <= {"New", "Accepted", "Rejected"}
    assert set(feedback_table["Rating"]) <= {"Thumbs up", "Thumbs down"}
    assert feedback_table["Answer"].str.len().max() <= 90

    # Jobs: statuses and stages in words, nothing like "COMPLETED" or "done".
    jobs_table = next(table for table in tables if "Stage" in table.columns)
    assert set(jobs_table["Status"]) <= {"Waiting", "Running", "Completed", "Failed", "Running (stalled)"}
    assert "done" not in set(jobs_table["Stage"]) and set(jobs_table["Kind"]) <= {"Transcription", "Indexing"}

    # Usage: audio as a clock like Home, and no chart drawn for a series of zeros (offline cost).
    audio = next(metric for metric in at.metric if metric.label == "Audio transcribed")
    assert re.fullmatch(r"\d+:\d{2}(:\d{2})?", audio.value)
    assert not any(" h" in metric.value for metric in at.metric)
