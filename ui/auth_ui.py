"""Sign-in (password and single sign-on), the sign-in cookie, and the account re-check on
every run, fragment and dialog.

Every sign-in opens a session in the database (core.access.sessions), and every run asks
check_session() whether it still stands, so signing out, a password change or reset,
disabling or deleting an account ends it at the next click. A password session is kept
across reloads by a signed cookie naming it. Streamlit reads cookies from the request that
opened the WebSocket and cannot set response headers, so that cookie is written and deleted
in the browser by a small component (extra-streamlit-components' cookie manager).

Single sign-on runs on Streamlit's own OpenID Connect support: st.login sends the browser
to the identity provider, Streamlit checks the answer and keeps the verified claims in its
identity cookie (st.user). core.access.oidc turns those claims into a Quorum user; each
browser session it admits gets a Quorum session too, checked on every run like the others.
"""

from __future__ import annotations

import streamlit as st
from extra_streamlit_components.CookieManager import _component_func as _cookie_component
from streamlit.errors import StreamlitAuthError

from core.access import (
    EXPIRED_MESSAGE,
    STREAMLIT_PROVIDER,
    Actor,
    OidcIdentity,
    StartedSession,
    check_session,
    client_address,
    end_session,
    identity_from_claims,
    open_session,
    record_sign_out,
    sign_in_expired,
    sign_in_with_oidc,
    sign_in_with_password,
)
from core.platform.config import get_settings
from ui import session_keys

# Everything that belongs to the signed-in user; cleared when they sign out.
_USER_KEYS = (
    session_keys.ACTOR,
    session_keys.SESSION_COOKIE,
    session_keys.ACTIVE_CHAT_ID,
    session_keys.SELECTED_JOB_ID,
    session_keys.ANSWERS_IN_PROGRESS,
    session_keys.SIGN_IN_METHOD,
    session_keys.OIDC_USERNAME,
)


def current_client_address() -> str | None:
    """The address of the browser this session talks to (see QUORUM_FORWARDED_FOR_HOPS)."""
    connected, forwarded = st.context.ip_address, st.context.headers.get("X-Forwarded-For")
    # Outside a browser session (AppTest, bare runs) these are not strings: no address.
    return client_address(
        connected=connected if isinstance(connected, str) else None,
        forwarded_for=forwarded if isinstance(forwarded, str) else None,
    )


def _client_details() -> tuple[str | None, str | None]:
    """The browser's address and user agent, recorded with its session."""
    agent = st.context.headers.get("User-Agent")
    return current_client_address(), agent if isinstance(agent, str) else None


def _served_over_tls() -> bool:
    """True when the browser reached the app over https, directly or through a proxy."""
    configured = get_settings().cookie_secure
    if configured is not None:
        return configured
    url = st.context.url
    forwarded = st.context.headers.get("X-Forwarded-Proto")
    return (isinstance(url, str) and url.lower().startswith("https://")) or (
        isinstance(forwarded, str) and forwarded.split(",")[0].strip().lower() == "https"
    )


def _store_cookie(started: StartedSession) -> None:
    """Render the component that stores the sign-in cookie in the browser (JavaScript sets
    it: Streamlit has no response to put a Set-Cookie header on, hence no HttpOnly)."""
    options: dict[str, object] = {"path": "/", "expires": started.expires_at.isoformat(), "sameSite": "strict"}
    if _served_over_tls():
        options["secure"] = True
    _cookie_component(
        method="set",
        cookie=get_settings().cookie_name,
        value=started.cookie,
        options=options,
        key="quorum_store_sign_in_cookie",
        default=False,
    )


def _forget_cookie() -> None:
    """Render the component that deletes the sign-in cookie in the browser."""
    _cookie_component(
        method="delete", cookie=get_settings().cookie_name, key="quorum_forget_sign_in_cookie", default=False
    )


def _end_local_session(*, message: str | None) -> None:
    """Forget the signed-in user in this browser tab, for good: st.context.cookies keeps
    showing the cookie the tab was opened with even after the browser deleted it, so the tab
    must not sign in with that value again."""
    for key in _USER_KEYS:
        st.session_state.pop(key, None)
    opened_with = _opened_with_cookie()
    if opened_with:
        st.session_state[session_keys.DISCARDED_COOKIE] = opened_with
    # The sign-in page deletes the browser's cookie below its form (render_login_form).
    st.session_state[session_keys.FORGET_COOKIE] = True
    if message:
        st.session_state[session_keys.SIGN_IN_MESSAGE] = message


def _opened_with_cookie() -> str | None:
    """The sign-in cookie the browser sent when this tab connected, if any."""
    cookie = st.context.cookies.get(get_settings().cookie_name)
    return cookie if isinstance(cookie, str) and cookie else None


def _cookie_from_browser() -> str | None:
    if not get_settings().password_sign_in:
        return None
    cookie = _opened_with_cookie()
    return None if cookie == st.session_state.get(session_keys.DISCARDED_COOKIE) else cookie


def restore_session() -> None:
    """Admit this run's user, or sign them out with the reason. Call once, first, on every run.

    A password session comes from this tab's state (signed in here) or from the browser's
    cookie (a reload or a new tab); a single sign-on session from st.user. Either is checked
    against the database every time; one that no longer stands is signed out here.
    """
    if st.session_state.pop(session_keys.SIGN_OUT_REQUESTED, False):
        _sign_out()
        return
    if st.session_state.get(session_keys.SIGN_IN_METHOD) == "oidc":
        _admit_single_sign_on()
        return
    cookie = st.session_state.get(session_keys.SESSION_COOKIE) or _cookie_from_browser()
    if cookie is None:
        st.session_state.pop(session_keys.ACTOR, None)
        _sign_in_with_provider()
        return
    verdict = check_session(cookie)
    if verdict.actor is not None:
        st.session_state[session_keys.ACTOR] = verdict.actor
        st.session_state[session_keys.SESSION_COOKIE] = cookie
        return
    _end_local_session(message=verdict.refusal)


def _sign_out() -> None:
    """End this browser's session on the server, audit it, and forget it here."""
    actor = st.session_state.get(session_keys.ACTOR)
    oidc = st.session_state.get(session_keys.SIGN_IN_METHOD) == "oidc"
    end_session(st.session_state.get(session_keys.SESSION_COOKIE))
    if isinstance(actor, Actor):
        record_sign_out(actor.username, method="oidc" if oidc else "password")
    _end_local_session(message=None)
    if oidc:
        st.session_state.pop(session_keys.OIDC_REFUSED, None)
        # Streamlit then asks the provider to end its session too when it offers that
        # (OpenID Connect RP-initiated logout).
        st.logout()


def recheck_account(*any_of: str) -> Actor:
    """The signed-in user, re-read from the database: call it first in every st.fragment
    and st.dialog, which rerun without the router (and so without restore_session).

    A session that no longer stands (signed out elsewhere, password changed, account
    disabled or deleted) ends here and the whole app reruns to the sign-in page. When
    `any_of` is given and the user now holds none of those permissions (demoted), the whole
    app reruns so the navigation drops the page. Otherwise returns the fresh Actor, which
    the caller passes to the services instead of the one its page started with.
    """
    verdict = check_session(st.session_state.get(session_keys.SESSION_COOKIE))
    if verdict.actor is None:
        _end_local_session(message=verdict.refusal)
        st.rerun(scope="app")
    actor = verdict.actor
    st.session_state[session_keys.ACTOR] = actor
    if any_of and not any(actor.can(permission) for permission in any_of):
        st.rerun(scope="app")
    return actor


def request_sign_out() -> None:
    """The Sign out button's callback: the run it starts signs out and shows the sign-in form."""
    st.session_state[session_keys.SIGN_OUT_REQUESTED] = True


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
    """Sign in the provider's identity of this browser, if there is one, with a session of
    its own. True when admitted; a refusal is remembered for the sign-in page (and audited
    once, by the service)."""
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
    address, agent = _client_details()
    started = open_session(user_id=verdict.actor.id, method="oidc", client_address=address, user_agent=agent)
    st.session_state.pop(session_keys.OIDC_REFUSED, None)
    st.session_state[session_keys.SIGN_IN_METHOD] = "oidc"
    st.session_state[session_keys.OIDC_USERNAME] = verdict.actor.username
    st.session_state[session_keys.SESSION_COOKIE] = started.cookie
    st.session_state[session_keys.ACTOR] = verdict.actor
    return True


def _admit_single_sign_on() -> None:
    """The per-run check of a single sign-on session: its Quorum session must stand (the
    same account rules as passwords), and the provider's sign-in must still be there and not
    older than a sign-in lasts."""
    identity = provider_identity()
    if identity is None:
        verdict_message = "You were signed out."
    elif sign_in_expired(identity, get_settings()):
        verdict_message = EXPIRED_MESSAGE
    else:
        verdict = check_session(st.session_state.get(session_keys.SESSION_COOKIE))
        if verdict.actor is not None:
            st.session_state[session_keys.ACTOR] = verdict.actor
            return
        verdict_message = verdict.refusal or "You cannot sign in now."
    for key in _USER_KEYS:
        st.session_state.pop(key, None)
    if identity is not None:
        st.session_state[session_keys.OIDC_REFUSED] = (identity.subject, verdict_message)
    else:
        st.session_state[session_keys.SIGN_IN_MESSAGE] = verdict_message


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


# ---------------------------------------------------------------------------- the sign-in page


def render_login_form() -> None:
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
        if settings.password_sign_in:
            if settings.oidc_enabled:
                st.caption("Or with a Quorum password:")
            _login_form()
        else:
            _sign_in_message()
    if st.session_state.pop(session_keys.FORGET_COOKIE, False):
        # After the form, so that its report back (a rerun without it) moves nothing above.
        # This run must reach the browser with the component: no st.rerun() after it.
        _forget_cookie()


def _sign_in_message() -> None:
    message = st.session_state.pop(session_keys.SIGN_IN_MESSAGE, None)
    if message:
        st.warning(message, icon=":material/info:")


def _login_form() -> None:
    with st.form("sign_in"):
        st.subheader("Sign in")
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        _sign_in_message()
        return
    address, agent = _client_details()
    outcome = sign_in_with_password(username=username, password=password, client_address=address, user_agent=agent)
    if outcome.actor is None or outcome.session is None:
        st.error(outcome.refusal or "You cannot sign in now.", icon=":material/lock:")
        return
    st.session_state[session_keys.ACTOR] = outcome.actor
    st.session_state[session_keys.SESSION_COOKIE] = outcome.session.cookie
    st.session_state.pop(session_keys.FORGET_COOKIE, None)  # the new cookie replaces the old one
    if get_settings().cookie_expiry_days <= 0:
        st.rerun()
    _store_cookie(outcome.session)
    # The component reports back once the cookie is stored, and that report reruns the page
    # signed in; rerunning now could remove the component before it ran (no cookie, no
    # "keep me signed in" across reloads).
    st.info("Signing you in…", icon=":material/hourglass_top:")
    st.button("Continue", key="sign_in_continue")
