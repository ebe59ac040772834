"""The Audit log tab: filters, the entries, exports. UI only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Actor, AuditFilters, audit_actions, export_audit_csv, export_audit_xlsx, list_audit
from ui.admin.widgets import (
    ALL,
    choice,
    export_buttons,
    when,
)
from ui.common import date_range_input, run_action


def audit_tab(actor: Actor) -> None:
    actions = run_action(lambda: audit_actions(actor=actor)).value or []
    user_col, action_col, type_col, text_col = st.columns(4)
    username = user_col.text_input("User", key="admin_audit_user")
    action = action_col.selectbox("Action", [ALL, *actions], key="admin_audit_action")
    target_type = type_col.selectbox(
        "Target",
        [ALL, "user", "role", "feedback", "document", "transcription", "indexing", "audit_log"],
        key="admin_audit_target",
    )
    text = text_col.text_input("Contains", key="admin_audit_text", help="Searches target ids and details")
    since, until = date_range_input("Between", key="admin_audit_dates")
    filters = AuditFilters(
        actor_username=username.strip() or None,
        action=choice(action),
        target_type=choice(target_type),
        text=text.strip() or None,
        since=since,
        until=until,
        limit=500,
    )
    entries = run_action(lambda: list_audit(actor=actor, filters=filters)).value or []
    if not entries:
        st.caption("No audit entries match these filters.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When": when(e.created_at),
                    "Who": e.actor_username,
                    "Action": e.action,
                    "Target": e.target_type,
                    "Target id": e.target_id or "",
                    "Details": e.details,
                }
                for e in entries
            ]
        ),
        hide_index=True,
        column_config={"Details": st.column_config.JsonColumn("Details")},
    )
    st.caption(f"{len(entries)} entries shown (newest first, at most 500; exports hold up to 100,000).")
    export_buttons(
        "audit",
        csv=lambda: export_audit_csv(actor=actor, filters=filters),
        xlsx=lambda: export_audit_xlsx(actor=actor, filters=filters),
    )
