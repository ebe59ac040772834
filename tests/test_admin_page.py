"""The Admin page under Streamlit's AppTest: tabs by permission, and actions reaching core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.access.rbac import Actor
from core.platform.db import session_scope
from core.platform.models import MessageFeedback, Role, User
from tests.admin_data import get_row, make_chat, make_feedback
from tests.conftest import unique
from ui import session_keys

PAGE = Path(__file__).resolve().parent.parent / "pages" / "admin.py"
ALL_TABS = ["Users", "Roles & permissions", "Feedback review", "Jobs", "Usage", "Audit log"]

pytestmark = pytest.mark.usefixtures("redis_server")


def _page(actor: Actor) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    at.session_state[session_keys.ACTOR] = actor
    return at.run()


def _button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def _text(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(t for t in at.text_input if t.label == label)


def test_an_admin_sees_every_tab(admin: Actor) -> None:
    at = _page(admin)
    assert not at.exception, at.exception
    assert [tab.label for tab in at.tabs] == ALL_TABS
    assert not at.error


def test_tabs_follow_permissions(admin: Actor) -> None:
    reviewer = Actor(id=admin.id, username=admin.username, role="x", permissions=frozenset({"review_feedback"}))
    at = _page(reviewer)
    assert not at.exception
    assert [tab.label for tab in at.tabs] == ["Feedback review"]
    ops = Actor(id=admin.id, username=admin.username, role="x", permissions=frozenset({"view_jobs", "view_audit_log"}))
    assert [tab.label for tab in _page(ops).tabs] == ["Jobs", "Usage", "Audit log"]
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
