"""The Roles & permissions tab: the role x permission matrix, adding, renaming and deleting roles. UI only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import core.admin as admin_service
from core.access import ADMIN_ROLE, PERMISSIONS, Actor
from ui.admin.widgets import (
    apply_action,
)
from ui.common import run_action


def roles_tab(actor: Actor) -> None:
    roles = run_action(lambda: admin_service.list_roles(actor=actor)).value or []
    if not roles:
        return
    st.caption(
        "Tick what each role may do. The admin role always holds every permission. A change that would "
        "leave no active user able to manage users and roles is refused."
    )
    matrix = pd.DataFrame(
        {
            "Permission": list(PERMISSIONS),
            "What it allows": list(PERMISSIONS.values()),
            **{f"role_{role.id}": [name in role.permissions for name in PERMISSIONS] for role in roles},
        }
    )
    fixed = [f"role_{role.id}" for role in roles if role.name == ADMIN_ROLE]
    edited = st.data_editor(
        matrix,
        hide_index=True,
        disabled=["Permission", "What it allows", *fixed],
        column_config={
            f"role_{role.id}": st.column_config.CheckboxColumn(f"{role.name} ({role.user_count})", width="small")
            for role in roles
        },
        key="admin_permission_matrix",
    )
    if st.button("Save permissions", type="primary", icon=":material/save:"):
        wanted = {
            role.id: {name for name, on in zip(edited["Permission"], edited[f"role_{role.id}"], strict=True) if on}
            for role in roles
            if role.name != ADMIN_ROLE
        }
        apply_action(lambda: admin_service.set_permission_matrix(actor=actor, matrix=wanted), "Permissions saved.")

    create_col, edit_col = st.columns(2, gap="large")
    with create_col, st.form("admin_create_role", clear_on_submit=True):
        st.subheader("New role")
        name = st.text_input("Name")
        description = st.text_input("Description")
        granted = st.multiselect("Permissions", list(PERMISSIONS))
        if st.form_submit_button("Create role"):
            apply_action(
                lambda: admin_service.create_role(actor=actor, name=name, description=description, permissions=granted),
                f"Role {name.strip()} created.",
            )
    with edit_col:
        st.subheader("Rename or delete")
        role = st.selectbox("Role", roles, format_func=lambda r: f"{r.name} ({r.user_count} users)")
        if role is not None:
            new_name = st.text_input("Name", value=role.name, key=f"admin_role_name_{role.id}", disabled=role.built_in)
            new_description = st.text_input("Description", value=role.description, key=f"admin_role_desc_{role.id}")
            rename, remove = st.columns(2)
            if rename.button("Save name and description", key=f"admin_rename_{role.id}"):
                apply_action(
                    lambda: admin_service.rename_role(
                        actor=actor, role_id=role.id, name=new_name, description=new_description
                    ),
                    "Role saved.",
                )
            blocked = role.built_in or role.user_count > 0
            reason = "Built-in roles stay." if role.built_in else "Give its users another role first."
            if remove.button(
                "Delete role", key=f"admin_delete_role_{role.id}", disabled=blocked, help=reason if blocked else None
            ):
                apply_action(
                    lambda: admin_service.delete_role(actor=actor, role_id=role.id), f"Role {role.name} deleted."
                )
