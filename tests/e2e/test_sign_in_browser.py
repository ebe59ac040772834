"""Sign in through the real page in headless Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.access.rbac import Actor
from core.access.sign_in_throttle import UNKNOWN_ADDRESS
from core.platform.db import session_scope
from core.platform.models import SignInThrottle
from tests.e2e.conftest import LiveApp, screenshot, sign_in


def test_sign_in_and_out_in_browser(live_app: LiveApp, page: Any, admin: Actor) -> None:
    page.goto(live_app.url)
    page.get_by_role("textbox", name="Username").wait_for()
    screenshot(page, "login")
    sign_in(page, live_app, admin)
    page.get_by_text(f"Welcome, {admin.display_name}").wait_for()
    # Admins see the admin page in the navigation; the offline notice is on every page.
    assert page.get_by_text("Offline mode").first.is_visible()
    # The Content-Security-Policy keeps images, media, fonts and frames to Quorum's own host.
    policy = page.evaluate("document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]')?.content || ''")
    assert "img-src 'self'" in policy
    screenshot(page, "home")
    # The signed cookie keeps the session through a reload (a new Streamlit session).
    page.reload()
    page.get_by_text(f"Signed in as {admin.display_name}").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("textbox", name="Username").wait_for()
    # Signing out removes it: a reload shows the sign-in form again.
    page.wait_for_timeout(1000)
    page.reload()
    page.get_by_role("textbox", name="Username").wait_for()
    assert not page.get_by_text("Signed in as").count()


def test_wrong_password_in_browser(live_app: LiveApp, page: Any, member: Actor) -> None:
    page.goto(live_app.url)
    page.get_by_role("textbox", name="Username").fill(member.username)
    page.get_by_role("textbox", name="Password").fill("not-the-password-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text("Wrong username or password").wait_for()


def test_a_browser_that_must_wait_is_told_so(live_app: LiveApp, page: Any, make_user: Any) -> None:
    """An address that guessed too often waits, whatever it types (the right password too)."""
    guessed = make_user()
    with session_scope() as session:  # as the throttle leaves it after many wrong passwords here
        session.add(
            SignInThrottle(
                key=f"account:{guessed.username.lower()}|{UNKNOWN_ADDRESS}",  # a browser on localhost has no address
                failures=9,
                last_failure_at=datetime.now(UTC),
                blocked_until=datetime.now(UTC) + timedelta(minutes=10),
            )
        )
    page.goto(live_app.url)
    page.get_by_role("textbox", name="Username").fill(guessed.username)
    page.get_by_role("textbox", name="Password").fill("correct-horse-9")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text("Too many failed sign-in attempts. Wait 10 minutes before trying again.").wait_for()
    screenshot(page, "sign-in-wait")
    assert not page.get_by_text("Signed in as").count()
