"""Single sign-on end to end: a real OpenID Connect provider on loopback (oidc-provider-mock),
Quorum started the way the image starts it (`python -m core.cli serve`, which hands the
QUORUM_OIDC_* settings to Streamlit), and headless Chromium signing in through the provider.

The browser talks to Quorum as http://localhost:PORT because that is the registered redirect
URL (the default, http://localhost:{port}/oauth2callback): Streamlit's identity cookie and
the protocol's state belong to that origin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

import core.admin as svc
from core.access.rbac import ADMIN_ROLE, PERMISSIONS, Actor
from core.platform.db import get_engine, session_scope
from core.platform.models import AuditLog, User
from tests.conftest import unique
from tests.e2e.conftest import ARTIFACTS, ROOT, choose_option, screenshot, settle
from tests.local_servers import free_port, wait_until_healthy

LABEL = "Mock ID"


@dataclass(frozen=True)
class SingleSignOnApp:
    url: str
    issuer: str


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A real OpenID Connect provider on loopback; yields its issuer URL."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=free_port()) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def sso_app(database: str, redis_server: str, provider: str) -> Iterator[SingleSignOnApp]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": get_engine().url.render_as_string(hide_password=False),
        "REDIS_URL": redis_server,
        "PYTHONUNBUFFERED": "1",
        "QUORUM_OIDC_ISSUER": provider,
        "QUORUM_OIDC_CLIENT_ID": "quorum-test",
        "QUORUM_OIDC_CLIENT_SECRET": "quorum-test-secret",
        "QUORUM_OIDC_PROVIDER_LABEL": LABEL,
        "QUORUM_OIDC_NEW_USERS": "active",
        "QUORUM_OIDC_ROLES_CLAIM": "groups",
        "QUORUM_OIDC_ROLE_MAP": json.dumps({"quorum-admins": ADMIN_ROLE}),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "streamlit-oidc.log", "w") as log:
        app = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve", "--port", str(port), "--address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://localhost:{port}"
            if not wait_until_healthy(url, seconds=60, still_running=lambda: app.poll() is None):
                pytest.fail(f"Streamlit did not start; see {ARTIFACTS / 'streamlit-oidc.log'}")
            yield SingleSignOnApp(url=url, issuer=provider)
        finally:
            app.terminate()
            try:
                app.wait(timeout=15)
            except subprocess.TimeoutExpired:
                app.kill()


def _register(provider: str, subject: str, **claims: Any) -> None:
    """Tell the provider who `subject` is (the claims it puts in the ID token)."""
    request = urllib.request.Request(
        f"{provider}/users/{subject}",
        data=json.dumps(claims).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def _sign_in_through_provider(page: Any, app: SingleSignOnApp, subject: str) -> None:
    page.goto(app.url)
    button = page.get_by_role("button", name=f"Sign in with {LABEL}")
    button.wait_for()
    settle(page)
    button.click()
    # The provider's own authorization page: who is signing in.
    page.wait_for_url(f"{app.issuer}/oauth2/authorize*")
    page.get_by_placeholder("sub").fill(subject)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{app.url}/**")


def _audit(username: str) -> list[str]:
    with session_scope() as session:
        query = select(AuditLog.action).where(AuditLog.actor_username == username).order_by(AuditLog.id)
        return list(session.scalars(query))


def test_signing_in_through_the_provider_provisions_keeps_and_ends_the_session(
    page: Any, sso_app: SingleSignOnApp
) -> None:
    subject, email = unique("sub"), f"{unique('grace')}@corp.example"
    _register(sso_app.issuer, subject, email=email, email_verified=True, name="Grace Hopper", groups=["quorum-admins"])

    page.goto(sso_app.url)
    page.get_by_role("button", name=f"Sign in with {LABEL}").wait_for()
    page.get_by_role("textbox", name="Username").wait_for()  # the password form stays beside it
    screenshot(page, "oidc-sign-in")

    _sign_in_through_provider(page, sso_app, subject)
    page.get_by_text("Signed in as Grace Hopper").wait_for()
    settle(page)
    assert page.get_by_role("link", name="Admin").count() == 1  # the groups claim made them an admin
    screenshot(page, "oidc-signed-in")
    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        assert (user.oidc_issuer, user.oidc_subject, user.role.name) == (sso_app.issuer, subject, ADMIN_ROLE)
        username = user.username
    assert _audit(username) == ["user.provision", "auth.sign_in"]

    # A reload is a new Streamlit session: Streamlit's identity cookie signs them in again,
    # checked but not counted as another sign-in.
    page.reload()
    page.get_by_text("Signed in as Grace Hopper").wait_for()
    assert _audit(username) == ["user.provision", "auth.sign_in"]

    # The Users tab says how they sign in.
    page.get_by_role("link", name="Admin").click()
    # Admin opens on whatever needs attention (failed jobs from other tests): choose Users.
    page.get_by_role("tab", name="Users").click()
    settle(page)
    choose_option(page, "User", username)  # other tests' users may come first
    page.get_by_text(f"Role {ADMIN_ROLE} · active · signs in with {LABEL}").wait_for()
    screenshot(page, "oidc-admin-users")

    # Sign out ends the Quorum session, Streamlit's cookie and (RP-initiated logout) the provider's.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{sso_app.issuer}/oauth2/end_session*")
    page.get_by_role("button", name="End session").click()
    page.get_by_role("button", name=f"Sign in with {LABEL}").wait_for()
    expect(page.get_by_text("Signed in as")).to_have_count(0)
    page.reload()
    page.get_by_role("button", name=f"Sign in with {LABEL}").wait_for()
    expect(page.get_by_text("Signed in as")).to_have_count(0)
    assert _audit(username)[-1] == "auth.sign_out"


def test_a_disabled_user_is_refused_with_the_reason(page: Any, sso_app: SingleSignOnApp, admin: Actor) -> None:
    subject, email = unique("sub"), f"{unique('linus')}@corp.example"
    _register(sso_app.issuer, subject, email=email, email_verified=True, name="Linus Pauling")
    _sign_in_through_provider(page, sso_app, subject)
    page.get_by_text("Signed in as Linus Pauling").wait_for()
    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
    assert user_id is not None
    manager = Actor(id=admin.id, username=admin.username, role=ADMIN_ROLE, permissions=frozenset(PERMISSIONS))
    svc.set_user_active(actor=manager, user_id=user_id, active=False)

    # The next click re-checks the account and signs them out, saying why.
    page.get_by_role("link", name="Account").click()
    page.get_by_text("This account is disabled").wait_for()
    page.get_by_role("button", name="Sign in with another account").wait_for()
    page.get_by_role("textbox", name="Username").wait_for()  # a password may still be used
    settle(page)
    screenshot(page, "oidc-refused")
    expect(page.get_by_text("Signed in as")).to_have_count(0)
