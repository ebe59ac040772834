"""Account: who you are, what you may do, and changing your password."""

from __future__ import annotations

import streamlit as st
from core.access import PERMISSIONS, change_own_password, has_password, open_session_count, sign_out_everywhere
from core.platform.config import get_settings
from ui import session_keys
from ui.common import current_actor, run_action

actor = current_actor()
this_session = st.session_state.get(session_keys.SESSION_COOKIE)


def sessions_panel() -> None:
    """How many other browsers are signed in to this account, and signing them all out."""
    st.subheader("Where you are signed in")
    others = max(0, (run_action(lambda: open_session_count(actor=actor)).value or 1) - 1)
    st.caption(
        f"Signed in here and in {others} other browser{'s' if others != 1 else ''}."
        if others
        else "Signed in only here."
    )
    if st.button("Sign out everywhere else", icon=":material/devices:", disabled=not others):
        ended = run_action(lambda: sign_out_everywhere(actor=actor, keep=this_session)).value
        if ended is not None:
            st.success(f"Signed out {ended} other session{'s' if ended != 1 else ''}.", icon=":material/check_circle:")


st.title("Account")
left, right = st.columns([1, 1], gap="large")

with left:
    st.subheader("Profile")
    st.markdown(f"**{actor.display_name}** (`{actor.username}`)  \n{actor.email}  \nRole: **{actor.role}**")
    st.subheader("What you can do")
    for name, description in PERMISSIONS.items():
        if actor.can(name):
            st.markdown(f":material/check: {description}")

settings = get_settings()
single_sign_on = st.session_state.get(session_keys.SIGN_IN_METHOD) == "oidc"

with right:
    if single_sign_on:
        st.subheader("Sign-in")
        st.info(
            f"You signed in with {settings.oidc_provider_label}. Your password and sign-in security are "
            f"managed there. Signing out here also ends your {settings.oidc_provider_label} session when it "
            "allows that.",
            icon=":material/key:",
        )
    if not settings.password_sign_in or not has_password(actor):
        if not single_sign_on:
            st.info(f"You sign in with {settings.oidc_provider_label}; Quorum keeps no password for you.")
        sessions_panel()
        st.stop()
    st.subheader("Change password")
    with st.form("change_password", clear_on_submit=True):
        current = st.text_input("Current password", type="password")
        new = st.text_input("New password", type="password", help="At least 8 characters, not only letters or digits.")
        confirm = st.text_input("Repeat new password", type="password")
        submitted = st.form_submit_button("Change password", type="primary")
    if submitted:
        if new != confirm:
            st.error("The new passwords do not match.")
        else:
            ended = run_action(
                lambda: change_own_password(
                    actor=actor, current_password=current, new_password=new, keep_session=this_session
                )
            ).value
            if ended is not None:
                elsewhere = f" {ended} other session{'s' if ended != 1 else ''} signed out." if ended else ""
                st.success(f"Password changed.{elsewhere}", icon=":material/check_circle:")

    sessions_panel()
