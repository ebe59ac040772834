"""Sign-in plumbing around streamlit-authenticator, backed by the users table.

streamlit-authenticator renders the form, checks the bcrypt hash and keeps the signed
re-authentication cookie. Quorum adds what it lacks: disabled accounts, lock-out after
repeated failures (counted in the database, so it holds across sessions and restarts), and
a fresh permission check on every run.
"""

from __future__ import annotations

import extra_streamlit_components as stx
import streamlit as st
import streamlit_authenticator as stauth
from extra_streamlit_components.CookieManager import _component_func as _cookie_component
from streamlit_authenticator.models import cookie_model

from core.access.accounts import (
    check_sign_in,
    credentials_for_authenticator,
    record_failed_sign_in,
    record_successful_sign_in,
)
from core.platform.config import get_settings
from ui import session_keys

_USER_KEYS = (session_keys.ACTOR, session_keys.ACTIVE_CHAT_ID, session_keys.SELECTED_JOB_ID)


class _CookieWriter(stx.CookieManager):  # type: ignore[misc]
    """streamlit-authenticator's cookie manager without its "getAll" component.

    streamlit-authenticator 0.4 reads its cookie from st.context.cookies, yet creating the
    CookieManager also renders a component that sends every cookie back to the server when
    it mounts. That report starts a second run of the page, and a click made while the first
    run is still going (Login, a link) is dropped by Streamlit when the second run replaces
    it. Setting and deleting the cookie still go through the component, only when needed.
    """

    def __init__(self, key: str = "init") -> None:
        self.cookie_manager = _cookie_component
        self.cookies = dict(st.context.cookies)


cookie_model.stx = type("_CookieComponents", (), {"CookieManager": _CookieWriter})


Authenticator = tuple[stauth.Authenticate, dict[str, dict[str, dict[str, object]]]]


def build_authenticator() -> Authenticator:
    """One authenticator per script run (its cookie component must be created once)."""
    settings = get_settings()
    credentials = credentials_for_authenticator()
    authenticator = stauth.Authenticate(
        credentials,
        cookie_name=settings.cookie_name,
        cookie_key=settings.cookie_key,
        cookie_expiry_days=settings.cookie_expiry_days,
        auto_hash=False,
        login_sleep_time=0.1,
    )
    return authenticator, credentials


def restore_session() -> Authenticator | None:
    """Sign in from the cookie when there is one, and re-check the account on every run.

    A user disabled, locked or deleted while signed in is signed out at their next click,
    and role changes take effect at once. Returns the authenticator (and the credentials
    it was given) when this run needed one: signed out, or just signed out. A session
    signed in earlier is re-checked without it, because its cookie component reports back
    after every page change and each report would cost a second run of the page.
    """
    if st.session_state.pop(session_keys.SIGN_OUT_REQUESTED, False):
        built = build_authenticator()
        sign_out(built[0])
        return built
    if st.session_state.get(session_keys.AUTH_STATUS):
        return _admit(None)
    built = build_authenticator()
    try:
        built[0].login(location="unrendered")
    except stauth.LoginError:
        # A valid cookie for an account that no longer exists.
        sign_out(built[0], message="This account no longer exists.")
        return built
    return _admit(built) if st.session_state.get(session_keys.AUTH_STATUS) else built


def _admit(built: Authenticator | None) -> Authenticator | None:
    """Re-check the signed-in account: let it in, or sign it out (building the authenticator
    only then) with the reason. Returns the authenticator this run has, if any."""
    verdict = check_sign_in(str(st.session_state.get(session_keys.AUTH_USERNAME)))
    if verdict.actor is not None:
        st.session_state[session_keys.ACTOR] = verdict.actor
        return built
    built = built or build_authenticator()
    sign_out(built[0], message=verdict.refusal)
    return built


def request_sign_out() -> None:
    """The Sign out button's callback: the run it starts signs out and shows the sign-in form.

    Signing out renders the component that deletes the cookie in the browser; that run must
    not be cut short by st.rerun(), or the component may never reach the browser and a
    reload would sign the user in again.
    """
    st.session_state[session_keys.SIGN_OUT_REQUESTED] = True


def sign_out(authenticator: stauth.Authenticate, *, message: str | None = None) -> None:
    authenticator.logout(location="unrendered")
    for key in _USER_KEYS:
        st.session_state.pop(key, None)
    if message:
        st.session_state[session_keys.SIGN_IN_MESSAGE] = message


def render_login_form(authenticator: stauth.Authenticate, credentials: dict[str, dict[str, dict[str, object]]]) -> None:
    """The sign-in form; records failures and refuses disabled or locked accounts."""
    _, middle, _ = st.columns([1, 1.3, 1])
    with middle:
        st.title(":material/forum: Quorum")
        st.caption("Meetings and documents, searchable and chat-able. Sign in with the account your admin gave you.")
        _login_form(authenticator, credentials)


def _login_form(authenticator: stauth.Authenticate, credentials: dict[str, dict[str, dict[str, object]]]) -> None:
    authenticator.login(
        location="main",
        fields={"Form name": "Sign in", "Username": "Username", "Password": "Password", "Login": "Login"},
    )
    status = st.session_state.get(session_keys.AUTH_STATUS)
    if status is False:
        # The authenticator counts a wrong password in the credentials mapping we gave it;
        # that is where the attempted username can be read.
        failed = [name for name, entry in credentials["usernames"].items() if entry.get("failed_login_attempts")]
        message = record_failed_sign_in(failed[0]) if failed else "Wrong username or password."
        st.session_state[session_keys.AUTH_STATUS] = None
        st.error(message, icon=":material/lock:")
    elif status is True:
        username = str(st.session_state.get(session_keys.AUTH_USERNAME))
        verdict = check_sign_in(username)
        if verdict.actor is None:
            sign_out(authenticator)
            st.error(verdict.refusal or "You cannot sign in now.", icon=":material/block:")
            return
        record_successful_sign_in(username)
        st.session_state[session_keys.ACTOR] = verdict.actor
        if get_settings().cookie_expiry_days <= 0:
            st.rerun()
        # login() has just rendered the component that stores the cookie in the browser. It
        # reports back once the cookie is stored, and that report reruns the page signed in;
        # rerunning now could remove the component before it ran (no cookie, no "keep me
        # signed in" across reloads).
        st.info("Signing you in…", icon=":material/hourglass_top:")
        st.button("Continue", key="sign_in_continue")
        return
    message = st.session_state.pop(session_keys.SIGN_IN_MESSAGE, None)
    if message:
        st.warning(message, icon=":material/info:")
