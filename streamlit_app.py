"""Quorum's router and gate.

Signed-out visitors get only the sign-in page. Signed-in users get the pages their
permissions allow; a page they lack is neither listed nor reachable by URL. The services
behind every page check the same permissions again.
"""

from __future__ import annotations

import streamlit as st

from core.ai import is_offline, provider_status
from core.platform.health import database_problem
from ui import page_access, session_keys, untrusted
from ui.auth_ui import render_login_form, request_sign_out, restore_session
from ui.common import current_actor

st.set_page_config(page_title="Quorum", page_icon=":material/forum:", layout="wide")
untrusted.content_security_policy()

problem = database_problem()
if problem:
    st.error(problem, icon=":material/database:")
    st.button("Try again", type="primary")
    st.stop()

restore_session()

if not st.session_state.get(session_keys.ACTOR):
    login = st.Page(
        render_login_form,
        title="Sign in",
        icon=":material/login:",
        url_path="login",
        default=True,
    )
    st.navigation([login], position="hidden").run()
    st.stop()

actor = current_actor()

# (page file, title, icon, permissions: any one of them opens the page)
PAGES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("pages/home.py", "Home", ":material/home:", ()),
    ("pages/ingestion_hub.py", "Ingestion Hub", ":material/upload_file:", page_access.INGESTION_HUB),
    ("pages/transcripts.py", "Transcripts & Minutes", ":material/graphic_eq:", page_access.TRANSCRIPTS),
    ("pages/action_items.py", "Action items", ":material/checklist:", page_access.ACTION_ITEMS),
    ("pages/chat.py", "Chat", ":material/chat:", page_access.CHAT),
    ("pages/admin.py", "Admin", ":material/admin_panel_settings:", page_access.ADMIN),
    ("pages/account.py", "Account", ":material/person:", ()),
]

allowed = [
    st.Page(path, title=title, icon=icon, default=(path == "pages/home.py"))
    for path, title, icon, needs in PAGES
    if (not needs or any(actor.can(permission) for permission in needs))
]
navigation = st.navigation(allowed)

with st.sidebar:
    st.caption(f"Signed in as **{actor.display_name}** · {actor.role}")
    st.button("Sign out", icon=":material/logout:", width="stretch", on_click=request_sign_out)

if is_offline():
    # Small but on every page: the sidebar carries it, with the details one click away.
    with st.sidebar:
        st.markdown(":orange-badge[:material/cloud_off: Offline mode]", help=provider_status())
        st.caption("No API key: local transcription, extractive minutes and answers.")

navigation.run()
