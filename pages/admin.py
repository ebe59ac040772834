"""Admin: users, roles & permissions, feedback review, jobs, usage and the audit log.

UI only. Each tab appears only for holders of its permission, and every action is a core
service call that checks that permission again and writes the audit log.
"""

from __future__ import annotations

from collections.abc import Callable

import core.admin as admin_service
import streamlit as st
from core.access import Actor
from core.chat import FeedbackFilters, list_feedback
from core.platform.statuses import RecordingStatus, ReviewStatus
from ui import session_keys
from ui.admin.audit_tab import audit_tab
from ui.admin.feedback_tab import feedback_tab
from ui.admin.jobs_tab import jobs_tab
from ui.admin.roles_tab import roles_tab
from ui.admin.usage_tab import usage_tab
from ui.admin.users_tab import users_tab
from ui.common import current_actor, run_action, show_flash

actor = current_actor()

# ---------------------------------------------------------------------------- page

TABS: list[tuple[str, str, Callable[[Actor], None]]] = [
    ("Users", "manage_users", users_tab),
    ("Roles & permissions", "manage_roles", roles_tab),
    ("Feedback review", "review_feedback", feedback_tab),
    ("Jobs", "view_jobs", jobs_tab),
    ("Usage", "view_jobs", usage_tab),
    ("Audit log", "view_audit_log", audit_tab),
]


def _attention() -> dict[str, str]:
    """Tab label -> what waits there ("3 new", "2 failed"), for the tabs the actor may open."""
    waiting: dict[str, str] = {}
    if actor.can("review_feedback"):
        new = (
            run_action(
                lambda: list_feedback(actor=actor, filters=FeedbackFilters(review_status=ReviewStatus.NEW))
            ).value
            or []
        )
        if new:
            waiting["Feedback review"] = f"{len(new)} new"
    if actor.can("view_jobs"):
        failed = run_action(lambda: admin_service.list_jobs(actor=actor, status=RecordingStatus.FAILED)).value or []
        if failed:
            waiting["Jobs"] = f"{len(failed)} failed"
    return waiting


st.title("Admin")
show_flash()
visible = [(label, permission, render) for label, permission, render in TABS if actor.can(permission)]
if not visible:
    st.info("Your role has no admin permissions.")
    st.stop()
attention = _attention()
labels = [label + (f" · {attention[label]}" if label in attention else "") for label, _, _ in visible]
# A new visit opens where something waits (new feedback, failed jobs). The choice is kept
# for the session and the key keeps the tabs the same widget when a count changes, so a
# rerun never moves the admin to another tab.
opening = st.session_state.setdefault(
    session_keys.ADMIN_OPENING_TAB, next((label for label, _, _ in visible if label in attention), visible[0][0])
)
default = next((shown for shown, (label, _, _) in zip(labels, visible, strict=True) if label == opening), None)
for container, (_, _, render) in zip(st.tabs(labels, default=default, key="admin_tabs"), visible, strict=True):
    with container:
        render(actor)
