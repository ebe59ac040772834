"""Sign-in plumbing: passwords (streamlit-authenticator) and single sign-on (st.login).

streamlit-authenticator renders the password form, checks the bcrypt hash and keeps the
signed re-authentication cookie. Quorum adds what it lacks: disabled accounts, lock-out
after repeated failures (counted in the database, so it holds across sessions and
restarts), and a fresh permission check on every run.

Single sign-on runs on Streamlit's own OpenID Connect support: st.login sends the browser
to the identity provider, Streamlit checks the answer and keeps the verified claims in its
identity cookie (st.user). core.access.oidc turns those claims into a Quorum user, and the
same per-run check as for passwords keeps permissions, disabling and deletion in force.
"""

from __future__ import annotations

from typing import Any

import extra_streamlit_components as stx
import streamlit as st
import streamlit_authenticator as stauth
from extra_streamlit_components.CookieManager import _component_func as _cookie_component
from streamlit.errors import StreamlitAuthError
from streamlit_authenticator.models import cookie_model

from core.access.accounts import (
    check_sign_in,
    credentials_for_authenticator,
    record_failed_sign_in,
    record_refused_sign_in,
    record_sign_out,
    record_successful_sign_in,
)
from core.access.oidc import (
    EXPIRED_MESSAGE,
    STREAMLIT_PROVIDER,
    OidcIdentity,
    identity_from_claims,
    sign_in_expired,
    sign_in_with_oidc,
)
from core.access.sign_in_throttle import client_address, seconds_to_wait, wait_message
from core.platform.config import get_settings
from ui import session_keys

_USER_KEYS = (
    session_keys.ACTOR,
    session_keys.ACTIVE_CHAT_ID,
    session_keys.SELECTED_JOB_ID,
    session_keys.SIGN_IN_METHOD,
    session_keys.OIDC_USERNAME,
)


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
    _throttle_password_checks(authenticator)
    return authenticator, credentials


def current_client_address() -> str | None:
    """The address of the browser this session talks to (see QUORUM_FORWARDED_FOR_HOPS)."""
    connected, forwarded = st.context.ip_address, st.context.headers.get("X-Forwarded-For")
    # Outside a browser session (AppTest, bare runs) these are not strings: no address.
    return client_address(
        connected=connected if isinstance(connected, str) else None,
        forwarded_for=forwarded if isinstance(forwarded, str) else None,
    )


def _throttle_password_checks(authenticator: stauth.Authenticate) -> None:
    """Put the sign-in throttle in front of the authenticator's password check.

    A submitted form reaches the controller's login(username, password); a sign-in that
    must wait is refused there before the password is looked at, so the answer cannot tell
    a right password from a wrong one. The typed username is kept for counting failures
    (the authenticator does not say which name failed when the name does not exist).
    """
    controller = authenticator.authentication_controller
    check_password = controller.login

    def login(username: str | None = None, password: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if not (username and password):  # a cookie, not a form
            return check_password(username, password, *args, **kwargs)
        typed = username.strip().lower()
        wait = seconds_to_wait(username=typed, address=current_client_address())
        st.session_state[session_keys.SIGN_IN_ATTEMPT] = (typed, wait_message(wait) if wait else None)
        if wait:
            return None
        return check_password(username, password, *args, **kwargs)

    controller.login = login


def restore_session() -> Authenticator | None:
    """Sign in from the cookie when there is one, and re-check the account on every run.

    A user disabled, locked or deleted while signed in is signed out at their next click,
    and role changes take effect at once. Returns the authenticator (and the credentials
    it was given) when this run needed one: signed out, or just signed out. A session
    signed in earlier is re-checked without it, because its cookie component reports back
    after every page change and each report would cost a second run of the page.
    Single sign-on sessions (st.user) get the same per-run check and never need it.
    """
    password_sign_in = get_settings().password_sign_in
    if st.session_state.pop(session_keys.SIGN_OUT_REQUESTED, False):
        if st.session_state.get(session_keys.SIGN_IN_METHOD) == "oidc":
            _end_single_sign_on()
            return None
        username = st.session_state.get(session_keys.AUTH_USERNAME)
        if username and st.session_state.get(session_keys.ACTOR):
            record_sign_out(str(username), method="password")
        built = build_authenticator()
        sign_out(built[0])
        return built
    if st.session_state.get(session_keys.SIGN_IN_METHOD) == "oidc":
        _admit_single_sign_on()
        return None
    if password_sign_in and st.session_state.get(session_keys.AUTH_STATUS):
        return _admit(None)
    if _sign_in_with_provider() or not password_sign_in:
        return None
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
    # "session": the lock-out stops new password sign-ins, never sessions already open.
    verdict = check_sign_in(str(st.session_state.get(session_keys.AUTH_USERNAME)), method="session")
    if verdict.actor is not None:
        st.session_state[session_keys.ACTOR] = verdict.actor
        return built
    built = built or build_authenticator()
    sign_out(built[0], message=verdict.refusal)
    return built


# ---------------------------------------------------------------------------- single sign-on


def provider_identity() -> OidcIdentity | None:
    """The identity the provider vouched for in this browser (st.user), if any."""
    if not get_settings().oidc_enabled:
        return None
    try:
        if not st.user.is_logged_in:
            return None
        claims = st.user.to_dict()
    except (AttributeError, KeyError, StreamlitAuthError):
        return None  # the server was started without Quorum's [auth] settings
    return identity_from_claims(claims)


def _sign_in_with_provider() -> bool:
    """Sign in the provider's identity of this browser, if there is one. True when admitted;
    a refusal is remembered for the sign-in page (and audited once, by the service)."""
    identity = provider_identity()
    if identity is None:
        return False
    refused = st.session_state.get(session_keys.OIDC_REFUSED)
    if refused and refused[0] == identity.subject:
        return False
    verdict = sign_in_with_oidc(identity)
    if verdict.actor is None:
        st.session_state[session_keys.OIDC_REFUSED] = (identity.subject, verdict.refusal or "You cannot sign in now.")
        return False
    st.session_state.pop(session_keys.OIDC_REFUSED, None)
    st.session_state[session_keys.SIGN_IN_METHOD] = "oidc"
    st.session_state[session_keys.OIDC_USERNAME] = verdict.actor.username
    st.session_state[session_keys.ACTOR] = verdict.actor
    return True


def _admit_single_sign_on() -> None:
    """The per-run check of a single sign-on session: the same account rules as passwords,
    and the provider's sign-in must still be there and not older than a sign-in lasts."""
    identity = provider_identity()
    username = str(st.session_state.get(session_keys.OIDC_USERNAME))
    if identity is None:
        verdict_message = "You were signed out."
    elif sign_in_expired(identity, get_settings()):
        verdict_message = EXPIRED_MESSAGE
    else:
        verdict = check_sign_in(username, method="oidc")
        if verdict.actor is not None:
            st.session_state[session_keys.ACTOR] = verdict.actor
            return
        verdict_message = verdict.refusal or "You cannot sign in now."
    _forget_signed_in_user()
    if identity is not None:
        st.session_state[session_keys.OIDC_REFUSED] = (identity.subject, verdict_message)
    else:
        st.session_state[session_keys.SIGN_IN_MESSAGE] = verdict_message


def _end_single_sign_on() -> None:
    """Sign out of Quorum and of Streamlit's identity cookie; Streamlit then asks the provider
    to end its session too when it offers that (OpenID Connect RP-initiated logout)."""
    username = st.session_state.get(session_keys.OIDC_USERNAME)
    if username:
        record_sign_out(str(username), method="oidc")
    _forget_signed_in_user()
    st.session_state.pop(session_keys.OIDC_REFUSED, None)
    st.logout()


def _forget_signed_in_user() -> None:
    for key in _USER_KEYS:
        st.session_state.pop(key, None)


def _single_sign_on_button() -> None:
    settings = get_settings()
    refused = st.session_state.get(session_keys.OIDC_REFUSED)
    if refused and provider_identity() is not None:
        st.error(refused[1], icon=":material/block:")
        label = "Sign in with another account"
    else:
        label = f"Sign in with {settings.oidc_provider_label}"
    if st.button(label, type="primary", icon=":material/key:", width="stretch", key="sign_in_single_sign_on"):
        st.session_state.pop(session_keys.OIDC_REFUSED, None)
        try:
            st.login(STREAMLIT_PROVIDER)
        except StreamlitAuthError:
            st.error(
                "Single sign-on is configured, but this server was started without its settings. "
                "Start Quorum with `python -m core.cli up` (or `serve`), not `streamlit run`.",
                icon=":material/error:",
            )


def request_sign_out() -> None:
    """The Sign out button's callback: the run it starts signs out and shows the sign-in form.

    Signing out renders the component that deletes the cookie in the browser; that run must
    not be cut short by st.rerun(), or the component may never reach the browser and a
    reload would sign the user in again.
    """
    st.session_state[session_keys.SIGN_OUT_REQUESTED] = True


def sign_out(authenticator: stauth.Authenticate, *, message: str | None = None) -> None:
    authenticator.logout(location="unrendered")
    _forget_signed_in_user()
    if message:
        st.session_state[session_keys.SIGN_IN_MESSAGE] = message


def render_login_form(authentication: Authenticator | None) -> None:
    """The sign-in page: the single sign-on button and/or the password form (which records
    failures and refuses disabled or locked accounts)."""
    settings = get_settings()
    _, middle, _ = st.columns([1, 1.3, 1])
    with middle:
        st.title(":material/forum: Quorum")
        label = settings.oidc_provider_label
        who = f"your {label} account" if settings.oidc_enabled else "the account your admin gave you"
        st.caption(f"Meetings and documents, searchable and chat-able. Sign in with {who}.")
        if settings.oidc_enabled:
            _single_sign_on_button()
        if authentication is None:
            message = st.session_state.pop(session_keys.SIGN_IN_MESSAGE, None)
            if message:
                st.warning(message, icon=":material/info:")
            return
        if settings.oidc_enabled:
            st.caption("Or with a Quorum password:")
        _login_form(*authentication)


def _login_form(authenticator: stauth.Authenticate, credentials: dict[str, dict[str, dict[str, object]]]) -> None:
    authenticator.login(
        location="main",
        fields={"Form name": "Sign in", "Username": "Username", "Password": "Password", "Login": "Sign in"},
    )
    status = st.session_state.get(session_keys.AUTH_STATUS)
    typed, wait = st.session_state.pop(session_keys.SIGN_IN_ATTEMPT, (None, None))
    if wait:
        st.error(wait, icon=":material/timer:")
    elif status is False:
        message = (
            record_failed_sign_in(typed, address=current_client_address()) if typed else "Wrong username or password."
        )
        st.session_state[session_keys.AUTH_STATUS] = None
        st.error(message, icon=":material/lock:")
    elif status is True:
        username = str(st.session_state.get(session_keys.AUTH_USERNAME))
        verdict = check_sign_in(username)
        if verdict.actor is None:
            record_refused_sign_in(username, reason=verdict.reason or "refused", address=current_client_address())
            sign_out(authenticator)
            st.error(verdict.refusal or "You cannot sign in now.", icon=":material/block:")
            return
        record_successful_sign_in(username, address=current_client_address())
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
