"""Single sign-on through the real router and sign-in page (Streamlit AppTest).

AppTest seeds st.user the way Streamlit's identity cookie does after the provider's
callback; tests/e2e/test_oidc_browser.py runs the real protocol against a real provider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

import core.admin as svc
from core.access.oidc import OidcIdentity, identity_from_claims, sign_in_with_oidc
from core.access.rbac import Actor
from core.platform.db import session_scope
from core.platform.models import AuditLog, User
from tests.conftest import signed_in, unique
from tests.oidc_support import claims
from ui import session_keys

APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"


def _app(user: dict[str, Any] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.user = {"is_logged_in": True, **user} if user else {"is_logged_in": False}
    return at


def _continue(previous: AppTest) -> AppTest:
    """The next run of the router in the same browser session (AppTest's own rerun after
    st.navigation runs only the page, not streamlit_app.py)."""
    at = _app()
    at.user = dict(previous.user)
    carried = (
        session_keys.ACTOR,
        session_keys.SESSION_COOKIE,
        session_keys.SIGN_IN_METHOD,
        session_keys.OIDC_USERNAME,
        session_keys.SIGN_OUT_REQUESTED,
    )
    for key in carried:
        if key in previous.session_state:
            at.session_state[key] = previous.session_state[key]
    return at.run()


def _buttons(at: AppTest) -> list[str]:
    return [button.label for button in at.button]


def _audit(username: str) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(select(AuditLog.action).where(AuditLog.actor_username == username).order_by(AuditLog.id))
        )


def test_the_sign_in_page_offers_the_provider_beside_the_password_form(database: str, oidc: Any) -> None:
    oidc(oidc_provider_label="Acme ID")
    at = _app().run()
    assert not at.exception
    assert "Sign in with Acme ID" in _buttons(at)
    assert {ti.label for ti in at.text_input} >= {"Username", "Password"}


def test_the_password_form_can_be_turned_off(database: str, oidc: Any) -> None:
    oidc(password_sign_in="false")
    at = _app().run()
    assert not at.exception
    assert "Sign in with Acme ID" in _buttons(at)
    assert not at.text_input  # no username or password field at all


def test_without_single_sign_on_only_the_password_form_shows(database: str) -> None:
    at = _app().run()
    assert not any("Sign in with" in label for label in _buttons(at))
    assert {ti.label for ti in at.text_input} >= {"Username", "Password"}


def test_a_server_started_without_the_auth_settings_says_how_to_start_it(database: str, oidc: Any) -> None:
    oidc()
    at = _app().run()
    next(b for b in at.button if b.label.startswith("Sign in with")).click().run()
    assert any("started without its settings" in error.value for error in at.error)


def test_a_provider_sign_in_opens_the_app_and_stays_checked_every_run(database: str, oidc: Any, admin: Actor) -> None:
    oidc(oidc_new_users="active")
    at = _app(claims()).run()
    assert not at.exception
    actor = at.session_state[session_keys.ACTOR]
    assert at.session_state[session_keys.SIGN_IN_METHOD] == "oidc"
    assert any(f"Signed in as **{actor.display_name}**" in caption.value for caption in at.sidebar.caption)
    assert _audit(actor.username)[-1] == "auth.sign_in"
    # Disabled by an admin while signed in: the next run of the router signs them out,
    # saying why. (AppTest reruns only the page, so a new one carries the session over.)
    svc.set_user_active(actor=admin, user_id=actor.id, active=False)
    at = _continue(at)
    assert session_keys.ACTOR not in at.session_state
    assert any("disabled" in error.value for error in at.error)
    assert "Sign in with another account" in _buttons(at)


def test_a_refused_identity_sees_why_and_may_use_a_password(database: str, oidc: Any) -> None:
    oidc(oidc_new_users="refuse")
    person = claims()
    at = _app(person).run()
    assert session_keys.ACTOR not in at.session_state
    assert any(f"no Quorum account for {person['email']}" in error.value for error in at.error)
    assert {ti.label for ti in at.text_input} >= {"Username", "Password"}
    at.run()  # reruns show the same message without another audit row
    assert _audit(person["email"]) == ["auth.sign_in_refused"]


def test_waiting_for_approval_then_approved(database: str, oidc: Any, admin: Actor) -> None:
    oidc(oidc_new_users="approval")
    person = claims()
    at = _app(person).run()
    assert any("waits for an admin's approval" in error.value for error in at.error)
    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(User.email == person["email"]))
    assert user_id is not None
    svc.set_user_active(actor=admin, user_id=user_id, active=True)
    approved = _app(person).run()  # a reload is a new session
    assert approved.session_state[session_keys.ACTOR].id == user_id


def test_sign_out_ends_the_quorum_session_and_the_provider_cookie(database: str, oidc: Any) -> None:
    oidc()
    at = _app(claims()).run()
    username = at.session_state[session_keys.ACTOR].username
    next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    at = _continue(at)
    assert session_keys.ACTOR not in at.session_state
    assert at.user.get("is_logged_in") is False  # st.logout cleared Streamlit's identity
    assert _audit(username)[-1] == "auth.sign_out"


# ------------------------------------------------------------------ Admin > Users and Account

ADMIN_PAGE = APP.parent / "pages" / "admin.py"
ACCOUNT_PAGE = APP.parent / "pages" / "account.py"


def _page(path: Path, actor: Actor, **state: Any) -> AppTest:
    at = signed_in(AppTest.from_file(str(path), default_timeout=30), actor)  # fragments re-check the session
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_users_tab_shows_how_each_user_signs_in_and_approves_waiting_people(
    database: str, redis_server: str, oidc: Any, admin: Actor, member: Actor
) -> None:
    oidc(oidc_new_users="approval", oidc_provider_label="Acme ID")
    person = claims()
    sign_in_with_oidc(_identity(person))  # now waits for approval
    sign_in_with_oidc(_identity(claims(member.email)))  # links the password user
    at = _page(ADMIN_PAGE, admin)
    assert not at.exception
    table = at.dataframe[0].value
    rows = {row["Email"]: row for row in table.to_dict("records")}
    assert rows[person["email"]]["Signs in with"] == "Acme ID"
    assert rows[person["email"]]["Status"] == "waits for approval"
    assert rows[member.email]["Signs in with"] == "Acme ID + password"
    assert rows[member.email]["Last sign-in"].endswith("(Acme ID)")
    assert rows[admin.email]["Signs in with"] == "password"
    assert any("1 waiting for approval" in md.value or "waiting for approval" in md.value for md in at.markdown)
    approve = next(b for b in at.button if b.label == "Approve" and b.key.startswith("admin_approve_"))
    approve.click().run()
    assert not at.exception
    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == person["email"]))
        assert user is not None and user.is_active and not user.approval_pending


def test_an_admin_can_create_a_single_sign_on_only_user(
    database: str, redis_server: str, oidc: Any, admin: Actor
) -> None:
    oidc(oidc_new_users="refuse", oidc_provider_label="Acme ID")
    at = _page(ADMIN_PAGE, admin)
    email = f"{unique('pre')}@corp.example"
    fields = {t.label: t for t in at.text_input}
    fields["Username"].input(unique("pre"))
    fields["Email"].input(email)
    at.radio[0].set_value("Acme ID only")
    next(b for b in at.button if b.label == "Create user").click().run()
    assert not at.exception and not at.error
    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None and user.password_hash == ""
    verdict = sign_in_with_oidc(_identity(claims(email)))  # sign-up is closed, but this account exists
    assert verdict.actor is not None and verdict.actor.id == user.id


def test_the_account_page_of_a_single_sign_on_user_has_no_password_form(database: str, oidc: Any) -> None:
    oidc()
    actor = sign_in_with_oidc(_identity(claims())).actor
    assert actor is not None
    at = _page(ACCOUNT_PAGE, actor, **{session_keys.SIGN_IN_METHOD: "oidc"})
    assert not at.exception
    assert any("You signed in with Acme ID" in info.value for info in at.info)
    assert not any(t.label == "Current password" for t in at.text_input)


def _identity(values: dict[str, Any]) -> OidcIdentity:
    parsed = identity_from_claims(values)
    assert parsed is not None
    return parsed
