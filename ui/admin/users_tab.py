"""The Users tab: approvals, the table, adding a user, changing one, deleting one. UI only."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

import core.admin as admin_service
from core.access import Actor
from core.platform.config import get_settings
from ui import session_keys
from ui.admin.widgets import (
    apply_action,
    when,
)
from ui.common import flash_and_rerun, run_action


def _show_new_password() -> None:
    shown = st.session_state.pop(session_keys.ADMIN_NEW_PASSWORD, None)
    if shown:
        username, password = shown
        st.warning(
            f"New password for **{username}**. Copy it now and hand it over safely: it is not shown again.",
            icon=":material/key:",
        )
        st.code(password, language=None)


def _signs_in_with(user: admin_service.UserSummary) -> str:
    return user.sign_in_methods.replace("single sign-on", get_settings().oidc_provider_label)


def _signs_in_with_method(method: str) -> str:
    return get_settings().oidc_provider_label if method == "oidc" else method


def _status(user: admin_service.UserSummary) -> str:
    if user.approval_pending:
        return "waits for approval"
    return "active" if user.is_active else "disabled"


def _pending_approvals(actor: Actor, users: list[admin_service.UserSummary]) -> None:
    """People single sign-on let in who wait for an admin (QUORUM_OIDC_NEW_USERS=approval)."""
    pending = [u for u in users if u.approval_pending]
    if not pending:
        return
    with st.container(border=True):
        st.markdown(f"**{len(pending)} waiting for approval** · signed in with {get_settings().oidc_provider_label}")
        for user in pending:
            who, role, approve, reject = st.columns([3, 1, 1, 1], vertical_alignment="center")
            who.markdown(f"{user.display_name} · {user.email} · since {when(user.created_at)}")
            role.caption(f"role {user.role_name}")
            if approve.button("Approve", key=f"admin_approve_{user.id}", type="primary"):
                apply_action(
                    partial(admin_service.set_user_active, actor=actor, user_id=user.id, active=True),
                    f"{user.username} is approved.",
                )
            if reject.button(
                "Reject", key=f"admin_reject_{user.id}", help="Keeps them out; delete them below if you like"
            ):
                apply_action(
                    partial(admin_service.set_user_active, actor=actor, user_id=user.id, active=False),
                    f"{user.username} is rejected.",
                )


def users_tab(actor: Actor) -> None:
    settings = get_settings()
    _show_new_password()
    users = run_action(lambda: admin_service.list_users(actor=actor)).value or []
    roles = run_action(lambda: admin_service.list_roles(actor=actor)).value or []
    role_names = {role.id: role.name for role in roles}
    _pending_approvals(actor, users)
    if settings.oidc_enabled and settings.oidc_roles_claim and settings.oidc_role_map:
        st.caption(
            f"Roles of people who sign in with {settings.oidc_provider_label} follow its "
            f"`{settings.oidc_roles_claim}` claim at every sign-in."
        )
    _users_table(users)
    _add_user_form(actor, role_names)
    user = _pick_user(users)
    if user is None:
        return
    _change_user(actor, user, role_names)
    if actor.can("delete_users"):
        _delete_user(actor, user)


def _users_table(users: list[admin_service.UserSummary]) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Username": u.username,
                    "Name": u.display_name,
                    "Email": u.email,
                    "Role": u.role_name,
                    "Status": _status(u),
                    "Signs in with": _signs_in_with(u),
                    "Locked": u.locked,
                    "Failed sign-ins": u.failed_login_count,
                    "Last sign-in": when(u.last_login_at)
                    + (f" ({_signs_in_with_method(u.last_login_method)})" if u.last_login_method else ""),
                    "Created": when(u.created_at),
                }
                for u in users
            ]
        ),
        hide_index=True,
    )


def _add_user_form(actor: Actor, role_names: dict[int, str]) -> None:
    settings = get_settings()
    with st.expander("Add a user", icon=":material/person_add:"):
        with st.form("admin_create_user", clear_on_submit=True):
            left, right = st.columns(2)
            username = left.text_input("Username")
            email = right.text_input("Email")
            display_name = left.text_input("Display name (optional)")
            role_id = right.selectbox("Role", list(role_names), format_func=lambda rid: role_names[rid])
            methods = [f"{settings.oidc_provider_label} only"] if settings.oidc_enabled else []
            methods += ["Password"] if settings.password_sign_in else []
            # A choice only when both ways of signing in are on.
            method = (
                st.radio(
                    "Signs in with",
                    methods,
                    horizontal=True,
                    help=f"{settings.oidc_provider_label} links the account by its email at the first sign-in.",
                )
                if len(methods) > 1
                else methods[0]
            )
            password = (
                st.text_input("Password (leave empty to generate one)", type="password", help="At least 8 characters.")
                if settings.password_sign_in
                else ""
            )
            submitted = st.form_submit_button("Create user", type="primary")
        if submitted and role_id is not None:
            with_password = method == "Password"
            chosen = (password or admin_service.generate_password()) if with_password else None
            created = run_action(
                lambda: admin_service.create_user(
                    actor=actor,
                    username=username,
                    email=email,
                    password=chosen,
                    role_id=role_id,
                    display_name=display_name,
                )
            ).value
            if created:
                if with_password and not password:
                    st.session_state[session_keys.ADMIN_NEW_PASSWORD] = (created.username, chosen)
                flash_and_rerun(f"User {created.username} created.")


def _pick_user(users: list[admin_service.UserSummary]) -> admin_service.UserSummary | None:
    if not users:
        return None
    st.subheader("Change a user")
    # Options are ids with labels that an action cannot change: the browser sends the chosen
    # label back, and a label changed by the action (new role, disabled) would drop the choice.
    users_by_id = {u.id: u for u in users}
    picked = st.selectbox(
        "User",
        list(users_by_id),
        format_func=lambda user_id: f"{users_by_id[user_id].username} · {users_by_id[user_id].email}",
        key="admin_user_pick",
    )
    if picked is None:
        return None
    return users_by_id[picked]


def _change_user(actor: Actor, user: admin_service.UserSummary, role_names: dict[int, str]) -> None:
    """Role, enable or disable, unlock and password of one user."""
    settings = get_settings()
    st.caption(
        f"Role {user.role_name} · {_status(user)} · signs in with {_signs_in_with(user)}"
        + (" · locked" if user.locked else "")
    )
    is_self = user.id == actor.id
    role_col, state_col = st.columns(2, gap="large")
    with role_col:
        ids = list(role_names)
        new_role = st.selectbox(
            "Role",
            ids,
            index=ids.index(user.role_id) if user.role_id in ids else 0,
            format_func=lambda rid: role_names[rid],
            key=f"admin_role_for_{user.id}",
        )
        if st.button("Change role", disabled=new_role == user.role_id, key=f"admin_change_role_{user.id}"):
            apply_action(
                lambda: admin_service.change_user_role(actor=actor, user_id=user.id, role_id=new_role),
                f"{user.username} now has the role {role_names[new_role]}.",
            )
    with state_col:
        st.markdown(
            f"**{user.username}** is {_status(user)}"
            + (f", locked until {when(user.locked_until)}" if user.locked else "")
            + "."
        )
        buttons = st.columns(3)
        if user.is_active:
            if buttons[0].button("Disable", disabled=is_self, key=f"admin_disable_{user.id}", help="Stops sign-in"):
                apply_action(
                    lambda: admin_service.set_user_active(actor=actor, user_id=user.id, active=False),
                    f"{user.username} is disabled.",
                )
        elif buttons[0].button("Approve" if user.approval_pending else "Enable", key=f"admin_enable_{user.id}"):
            apply_action(
                lambda: admin_service.set_user_active(actor=actor, user_id=user.id, active=True),
                f"{user.username} is {'approved' if user.approval_pending else 'enabled'}.",
            )
        if buttons[1].button(
            "Unlock", disabled=not user.locked and not user.failed_login_count, key=f"admin_unlock_{user.id}"
        ):
            apply_action(
                lambda: admin_service.unlock_user(actor=actor, user_id=user.id), f"{user.username} is unlocked."
            )
        if settings.password_sign_in and buttons[2].button(
            "Set password" if not user.has_password else "Reset password", key=f"admin_reset_{user.id}"
        ):
            new_password = run_action(lambda: admin_service.reset_password(actor=actor, user_id=user.id)).value
            if new_password:
                st.session_state[session_keys.ADMIN_NEW_PASSWORD] = (user.username, new_password)
                flash_and_rerun(f"Password of {user.username} reset.")


def _delete_user(actor: Actor, user: admin_service.UserSummary) -> None:
    is_self = user.id == actor.id
    with st.expander(f"Delete {user.username}", icon=":material/delete:"):
        st.markdown(
            "Deleting a user removes their chats, messages and feedback, and their private documents "
            "and recordings with the stored files. Team documents and recordings they uploaded stay, "
            'shown as uploaded by "deleted user". This cannot be undone.'
        )
        typed = st.text_input("Type the username to confirm", key=f"admin_delete_confirm_{user.id}")
        if st.button(
            "Delete user",
            type="primary",
            disabled=is_self or typed.strip() != user.username,
            key=f"admin_delete_{user.id}",
            help="You cannot delete yourself." if is_self else None,
        ):
            apply_action(
                lambda: admin_service.delete_user(actor=actor, user_id=user.id),
                f"{user.username} was deleted.",
            )
