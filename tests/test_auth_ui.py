"""Sign-in through the real login page (Streamlit AppTest) backed by the users table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from streamlit.testing.v1 import AppTest

from core.access import sign_in_throttle
from core.access.rbac import Actor
from core.platform.db import session_scope
from core.platform.models import SignInThrottle, User
from ui import session_keys

PASSWORD = "correct-horse-9"
APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"


@pytest.fixture(autouse=True)
def _no_sign_in_waits(database: str) -> None:
    """Every AppTest signs in from the same (unknown) address: start each test without the
    waits earlier tests' wrong passwords left there."""
    with session_scope() as session:
        session.execute(delete(SignInThrottle))


def _app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=30)


def _sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.run()
    inputs = {ti.label: ti for ti in at.text_input}
    inputs["Username"].input(username)
    inputs["Password"].input(password)
    at.button[0].click()
    at.run()
    if session_keys.ACTOR in at.session_state:
        # In a browser the cookie component reports back once the cookie is stored, which
        # reruns the page signed in; AppTest runs no components, so the test reruns.
        assert any("Signing you in" in info.value for info in at.info)
        at.run()
    return at


def _errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def test_sign_in_success_builds_navigation(database: str, member: Actor) -> None:
    at = _sign_in(_app(), member.username, PASSWORD)
    actor = at.session_state[session_keys.ACTOR]
    assert actor.username == member.username
    assert not at.exception
    assert any("Welcome" in t.value for t in at.title)
    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == member.username))
        assert user is not None and user.last_login_at is not None


def test_wrong_password_is_refused(database: str, member: Actor) -> None:
    at = _sign_in(_app(), member.username, "wrong-password-1")
    assert session_keys.ACTOR not in at.session_state
    assert "Wrong username or password" in _errors(at)
    with session_scope() as session:
        assert session.scalar(select(User.failed_login_count).where(User.username == member.username)) == 1


def test_repeated_failures_make_this_address_wait(
    database: str, member: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five wrong passwords, then each attempt from this address waits (the right password
    too, with the same answer); the account itself is not locked (see
    tests/reliability/test_security_inputs.py for other addresses and the account lock)."""
    frozen = datetime.now(UTC)  # the throttle's clock stands still: no wait runs out mid-test
    monkeypatch.setattr(sign_in_throttle, "_now", lambda: frozen)
    at = _app()
    for _ in range(5):
        at = _sign_in(at, member.username, "wrong-password-1")
    assert "Wrong username or password" in _errors(at)
    at = _sign_in(at, member.username, "wrong-password-1")
    assert "Too many failed sign-in attempts. Wait 1 second before trying again." in _errors(at)
    at = _sign_in(_app(), member.username, PASSWORD)
    assert session_keys.ACTOR not in at.session_state
    assert "Too many failed sign-in attempts. Wait" in _errors(at)
    with session_scope() as session:
        assert session.scalar(select(User.locked_until).where(User.username == member.username)) is None


def test_lock_expires(database: str, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user(locked_until=datetime.now(UTC) - timedelta(seconds=1))
    at = _sign_in(_app(), user.username, PASSWORD)
    assert at.session_state[session_keys.ACTOR].username == user.username


def test_disabled_user_is_refused(database: str, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user(is_active=False)
    at = _sign_in(_app(), user.username, PASSWORD)
    assert session_keys.ACTOR not in at.session_state
    assert "disabled" in _errors(at)


def test_user_cannot_reach_admin_page(database: str, member: Actor) -> None:
    at = _sign_in(_app(), member.username, PASSWORD)
    with pytest.raises(ValueError):
        at.switch_page("pages/admin.py")


def test_signed_out_visitor_sees_only_sign_in(database: str) -> None:
    at = _app().run()
    assert [ti.label for ti in at.text_input] == ["Username", "Password"]
    with pytest.raises(ValueError):
        at.switch_page("pages/home.py")


def test_change_password(database: str, member: Actor) -> None:
    at = _sign_in(_app(), member.username, PASSWORD)
    at.switch_page("pages/account.py").run()
    fields = {ti.label: ti for ti in at.text_input}
    fields["Current password"].input(PASSWORD)
    fields["New password"].input("new-secret-42")
    fields["Repeat new password"].input("new-secret-42")
    next(b for b in at.button if b.label == "Change password").click()
    at.run()
    assert not at.error
    from core.access.accounts import verify_password

    with session_scope() as session:
        stored = session.scalar(select(User.password_hash).where(User.username == member.username))
    assert stored is not None and verify_password("new-secret-42", stored)
