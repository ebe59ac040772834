"""Admin: users, roles & permissions, feedback review, jobs, usage and the audit log.

UI only. Each tab appears only for holders of its permission, and every action is a core
service call that checks that permission again and writes the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import core.admin as admin_service
import pandas as pd
import streamlit as st
from core.access.audit import AuditFilters, audit_actions, export_audit_csv, export_audit_xlsx, list_audit
from core.access.rbac import ADMIN_ROLE, PERMISSIONS, Actor
from core.admin import JobRow
from core.admin.analytics import usage_analytics
from core.chat.feedback_review import (
    FeedbackFilters,
    export_feedback_csv,
    export_feedback_xlsx,
    feedback_raters,
    list_feedback,
    review_feedback,
)
from core.platform.config import get_settings
from core.platform.models import REVIEW_STATUSES
from ui import session_keys, untrusted
from ui.auth_ui import recheck_account
from ui.common import current_actor, date_range_input, flash_and_rerun, format_seconds, run_action, show_flash

JOBS_REFRESH_SECONDS = 5
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ALL = "All"
RATING_WORDS = {"good": "Thumbs up", "bad": "Thumbs down"}
CUT_CHARACTERS = 90

actor = current_actor()
settings = get_settings()


def _apply(action: Callable[[], object], success: str) -> None:
    """Run a core action; on success rerun so every table refreshes, and say `success`."""
    if run_action(action).ok:
        flash_and_rerun(success)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= CUT_CHARACTERS else text[: CUT_CHARACTERS - 1].rstrip() + "…"


def _choice(value: str) -> str | None:
    return None if value == ALL else value


def _export_buttons(name: str, *, csv: Callable[[], bytes], xlsx: Callable[[], bytes]) -> None:
    """CSV and Excel download buttons. The export runs (and is audited) only when clicked."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    csv_col, xlsx_col, _ = st.columns([1, 1, 4])
    for column, label, data, suffix, mime in (
        (csv_col, "CSV", csv, "csv", "text/csv"),
        (xlsx_col, "Excel", xlsx, "xlsx", XLSX_MIME),
    ):
        column.download_button(
            label,
            data=data,
            file_name=f"quorum-{name}-{stamp}.{suffix}",
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            key=f"admin_{name}_{suffix}",
        )


# ---------------------------------------------------------------------------- users


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
    return user.sign_in_methods.replace("single sign-on", settings.oidc_provider_label)


def _signs_in_with_method(method: str) -> str:
    return settings.oidc_provider_label if method == "oidc" else method


def _status(user: admin_service.UserSummary) -> str:
    if user.approval_pending:
        return "waits for approval"
    return "active" if user.is_active else "disabled"


def _pending_approvals(users: list[admin_service.UserSummary]) -> None:
    """People single sign-on let in who wait for an admin (QUORUM_OIDC_NEW_USERS=approval)."""
    pending = [u for u in users if u.approval_pending]
    if not pending:
        return
    with st.container(border=True):
        st.markdown(f"**{len(pending)} waiting for approval** · signed in with {settings.oidc_provider_label}")
        for user in pending:
            who, role, approve, reject = st.columns([3, 1, 1, 1], vertical_alignment="center")
            who.markdown(f"{user.display_name} · {user.email} · since {_when(user.created_at)}")
            role.caption(f"role {user.role_name}")
            if approve.button("Approve", key=f"admin_approve_{user.id}", type="primary"):
                _apply(
                    partial(admin_service.set_user_active, actor=actor, user_id=user.id, active=True),
                    f"{user.username} is approved.",
                )
            if reject.button(
                "Reject", key=f"admin_reject_{user.id}", help="Keeps them out; delete them below if you like"
            ):
                _apply(
                    partial(admin_service.set_user_active, actor=actor, user_id=user.id, active=False),
                    f"{user.username} is rejected.",
                )


def users_tab() -> None:
    _show_new_password()
    users = run_action(lambda: admin_service.list_users(actor=actor)).value or []
    roles = run_action(lambda: admin_service.list_roles(actor=actor)).value or []
    role_names = {role.id: role.name for role in roles}
    _pending_approvals(users)
    if settings.oidc_enabled and settings.oidc_roles_claim and settings.oidc_role_map:
        st.caption(
            f"Roles of people who sign in with {settings.oidc_provider_label} follow its "
            f"`{settings.oidc_roles_claim}` claim at every sign-in."
        )
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
                    "Last sign-in": _when(u.last_login_at)
                    + (f" ({_signs_in_with_method(u.last_login_method)})" if u.last_login_method else ""),
                    "Created": _when(u.created_at),
                }
                for u in users
            ]
        ),
        hide_index=True,
    )

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

    if not users:
        return
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
        return
    user = users_by_id[picked]
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
            _apply(
                lambda: admin_service.change_user_role(actor=actor, user_id=user.id, role_id=new_role),
                f"{user.username} now has the role {role_names[new_role]}.",
            )
    with state_col:
        st.markdown(
            f"**{user.username}** is {_status(user)}"
            + (f", locked until {_when(user.locked_until)}" if user.locked else "")
            + "."
        )
        buttons = st.columns(3)
        if user.is_active:
            if buttons[0].button("Disable", disabled=is_self, key=f"admin_disable_{user.id}", help="Stops sign-in"):
                _apply(
                    lambda: admin_service.set_user_active(actor=actor, user_id=user.id, active=False),
                    f"{user.username} is disabled.",
                )
        elif buttons[0].button("Approve" if user.approval_pending else "Enable", key=f"admin_enable_{user.id}"):
            _apply(
                lambda: admin_service.set_user_active(actor=actor, user_id=user.id, active=True),
                f"{user.username} is {'approved' if user.approval_pending else 'enabled'}.",
            )
        if buttons[1].button(
            "Unlock", disabled=not user.locked and not user.failed_login_count, key=f"admin_unlock_{user.id}"
        ):
            _apply(lambda: admin_service.unlock_user(actor=actor, user_id=user.id), f"{user.username} is unlocked.")
        if settings.password_sign_in and buttons[2].button(
            "Set password" if not user.has_password else "Reset password", key=f"admin_reset_{user.id}"
        ):
            new_password = run_action(lambda: admin_service.reset_password(actor=actor, user_id=user.id)).value
            if new_password:
                st.session_state[session_keys.ADMIN_NEW_PASSWORD] = (user.username, new_password)
                flash_and_rerun(f"Password of {user.username} reset.")

    if actor.can("delete_users"):
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
                _apply(
                    lambda: admin_service.delete_user(actor=actor, user_id=user.id),
                    f"{user.username} was deleted.",
                )


# ---------------------------------------------------------------------------- roles


def roles_tab() -> None:
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
        _apply(lambda: admin_service.set_permission_matrix(actor=actor, matrix=wanted), "Permissions saved.")

    create_col, edit_col = st.columns(2, gap="large")
    with create_col, st.form("admin_create_role", clear_on_submit=True):
        st.subheader("New role")
        name = st.text_input("Name")
        description = st.text_input("Description")
        granted = st.multiselect("Permissions", list(PERMISSIONS))
        if st.form_submit_button("Create role"):
            _apply(
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
                _apply(
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
                _apply(lambda: admin_service.delete_role(actor=actor, role_id=role.id), f"Role {role.name} deleted.")


# ---------------------------------------------------------------------------- feedback


def feedback_tab() -> None:
    raters = dict(run_action(lambda: feedback_raters(actor=actor)).value or [])
    rating_col, status_col, user_col, dates_col = st.columns([1, 1, 1, 2])
    rating = rating_col.selectbox("Rating", [ALL, "good", "bad"], key="admin_fb_rating")
    status = status_col.selectbox("Review status", [ALL, *REVIEW_STATUSES], key="admin_fb_status")
    user_id = user_col.selectbox(
        "User", [None, *raters], format_func=lambda uid: ALL if uid is None else raters[uid], key="admin_fb_user"
    )
    with dates_col:
        since, until = date_range_input("Between", key="admin_fb_dates")
    filters = FeedbackFilters(
        rating=_choice(rating), review_status=_choice(status), user_id=user_id, since=since, until=until
    )
    items = run_action(lambda: list_feedback(actor=actor, filters=filters)).value or []

    # The columns a reviewer acts on come first and long texts are cut, so Status and
    # Reviewer are on screen; the full question, answer and sources are in the panel below.
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Id": item.id,
                    "Status": item.review_status.title(),
                    "Rating": RATING_WORDS.get(item.rating, item.rating),
                    "Question": _cut(item.question),
                    "Correction": _cut(item.correction or ""),
                    "User": item.username,
                    "Reviewer": item.reviewer or "",
                    "Date": _when(item.created_at),
                    "Trusted": item.trusted,
                    "Answer": _cut(item.answer),
                    "Note": _cut(item.reviewer_note or ""),
                    "Sources": _cut("; ".join(item.sources)),
                }
                for item in items
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Id": st.column_config.NumberColumn(width="small"),
            "Status": st.column_config.TextColumn(width="small"),
            "Question": st.column_config.TextColumn(width="medium"),
            "Correction": st.column_config.TextColumn(width="medium"),
            "Trusted": st.column_config.CheckboxColumn(width="small"),
        },
    )
    _export_buttons(
        "feedback",
        csv=lambda: export_feedback_csv(actor=actor, filters=filters),
        xlsx=lambda: export_feedback_xlsx(actor=actor, filters=filters),
    )
    if not items:
        st.caption("No feedback matches these filters.")
        return

    st.subheader("Review")
    items_by_id = {i.id: i for i in items}  # stable labels, as for the user picker
    picked_item = st.selectbox(
        "Feedback",
        list(items_by_id),
        format_func=lambda item_id: (
            f"#{item_id} · {items_by_id[item_id].username} · {items_by_id[item_id].question[:70]}"
        ),
        key="admin_fb_pick",
    )
    if picked_item is None:
        return
    item = items_by_id[picked_item]
    st.caption(f"Rated {item.rating} · review status {item.review_status}")
    st.markdown(f"**Question** ({item.username}, {_when(item.created_at)})")
    st.markdown(f"> {untrusted.plain(item.question) or '—'}")
    st.markdown("**Answer**")
    st.markdown(untrusted.markdown(item.answer))
    if item.sources:
        st.caption("Sources: " + " · ".join(untrusted.plain(source) for source in item.sources))
    if item.correction:
        st.markdown("**Correction**")
        st.info(untrusted.plain(item.correction), icon=":material/edit_note:")
    with st.form(f"admin_review_{item.id}"):
        decision = st.radio(
            "Review status", list(REVIEW_STATUSES), index=REVIEW_STATUSES.index(item.review_status), horizontal=True
        )
        note = st.text_area("Reviewer note", value=item.reviewer_note or "", max_chars=2000)
        if item.correction:
            st.caption("Accepting makes this correction trusted context: later similar questions get it as a source.")
        if st.form_submit_button("Save review", type="primary"):
            _apply(
                lambda: review_feedback(actor=actor, feedback_id=item.id, status=decision, note=note),
                f"Feedback #{item.id} marked {decision}.",
            )


# ---------------------------------------------------------------------------- jobs


JOB_STATUS_WORDS = {"PENDING": "Waiting", "PROCESSING": "Running", "COMPLETED": "Completed", "FAILED": "Failed"}


def _job_status(row: JobRow) -> str:
    words = "Running" if row.status == "INDEXING" else JOB_STATUS_WORDS.get(row.status, row.status.title())
    return f"{words} (stalled)" if row.stale else words


def _job_stage(row: JobRow) -> str:
    """What a running job is doing; nothing for finished ones (the status says it all)."""
    if row.status in ("COMPLETED", "FAILED"):
        return ""
    return row.stage[:1].upper() + row.stage[1:]


def _retry(actor: Actor, row: JobRow) -> bool:
    admin_service.retry_job(actor=actor, kind=row.kind, job_id=row.id)
    return True


@st.fragment(run_every=timedelta(seconds=JOBS_REFRESH_SECONDS))
def jobs_panel() -> None:
    # Reruns every few seconds without the router: a disabled or demoted admin stops here.
    actor = recheck_account("view_jobs")
    depths = admin_service.job_queue_depths(actor=actor)
    kind_col, status_col, _ = st.columns([1, 1, 3])
    kind = kind_col.selectbox(
        "Kind", [ALL, "transcription", "indexing"], format_func=str.capitalize, key="admin_jobs_kind"
    )
    status = status_col.selectbox(
        "Status",
        [ALL, *JOB_STATUS_WORDS],
        format_func=lambda value: JOB_STATUS_WORDS.get(value, value),
        key="admin_jobs_status",
    )
    rows = admin_service.list_jobs(actor=actor, kind=_choice(kind), status=_choice(status))  # type: ignore[arg-type]

    metrics = st.columns(5)
    if depths is None:
        metrics[0].metric("Queues", "—", help="Redis is not reachable")
    else:
        metrics[0].metric("Waiting: documents", depths.get("default", 0))
        metrics[1].metric("Waiting: audio", depths.get("audio", 0))
    metrics[2].metric("Running", sum(row.running for row in rows))
    metrics[3].metric("Failed", sum(row.failed for row in rows))
    metrics[4].metric("Stalled", sum(row.stale for row in rows), help="Running without a heartbeat")

    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Kind": row.kind.title(),
                    "Id": row.id,
                    "File": row.name,
                    "Owner": row.owner,
                    "Status": _job_status(row),
                    "Stage": _job_stage(row),
                    "Progress": row.progress,
                    "Attempts": row.attempts,
                    "Duration": format_seconds(row.duration_seconds),
                    "Created": _when(row.created_at),
                    "Error": row.error or "",
                }
                for row in rows
            ]
        ),
        hide_index=True,
        column_config={"Progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0)},
    )
    retryable = [row for row in rows if row.needs_attention and row.can_retry][:20]
    if retryable:
        st.subheader("Retry")
    for row in retryable:
        text_col, button_col = st.columns([5, 1])
        text_col.markdown(
            f"**{row.kind} #{row.id}** · {untrusted.plain(row.name)} · {untrusted.plain(row.error) or 'stalled'}"
        )
        clicked = button_col.button("Retry", key=f"admin_retry_{row.kind}_{row.id}", icon=":material/replay:")
        if clicked and run_action(partial(_retry, actor, row), success=f"{row.kind} #{row.id} queued again.").ok:
            st.rerun(scope="fragment")


def jobs_tab() -> None:
    st.caption(f"Refreshes every {JOBS_REFRESH_SECONDS} seconds.")
    jobs_panel()


# ---------------------------------------------------------------------------- usage


NO_COST = "No cost in this period (the offline provider is free)."


def _frame(rows: list[Any]) -> pd.DataFrame:
    return pd.DataFrame([vars(row) for row in rows])


def _bar_chart(title: str, frame: pd.DataFrame, *, y: str, color: str | None = None, empty: str = "") -> None:
    """A titled bar chart per day, or a sentence when there is nothing to draw: an all-zero
    series would be drawn as an empty plot with an axis of "0.000000" ticks."""
    st.markdown(f"**{title}**")
    if frame.empty or not frame[y].abs().sum():
        st.caption(empty or "Nothing in this period.")
        return
    st.bar_chart(frame, x="day", y=y, color=color, x_label="", y_label="")


def usage_tab() -> None:
    periods = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "All time": None}
    period = st.segmented_control("Period", list(periods), default="Last 30 days", key="admin_usage_period")
    days = periods.get(period or "Last 30 days")
    since = (datetime.now(UTC) - timedelta(days=days - 1)).date() if days else None
    data = run_action(lambda: usage_analytics(actor=actor, since=since)).value
    if data is None:
        return
    usage = data.usage
    cols = st.columns(4)
    cols[0].metric("Estimated cost", f"${usage.cost_usd:,.2f}")
    cols[1].metric("Tokens", f"{usage.input_tokens + usage.output_tokens:,}")
    cols[2].metric("Audio transcribed", format_seconds(data.audio_hours * 3600), help="hours:minutes:seconds")
    cols[3].metric("Thumbs up", "—" if data.share_good is None else f"{data.share_good:.0%}")

    if usage.by_day_purpose:
        purposes = _frame(usage.by_day_purpose)
        purposes["tokens"] = purposes["input_tokens"] + purposes["output_tokens"]
        left, right = st.columns(2)
        with left:
            _bar_chart("Tokens per day by purpose", purposes, y="tokens", color="purpose")
        with right:
            _bar_chart("Cost per day by purpose (USD)", purposes, y="cost_usd", color="purpose", empty=NO_COST)
    else:
        st.caption("No AI calls recorded in this period.")
    if usage.by_day_user:
        users = _frame(usage.by_day_user)
        left, right = st.columns(2)
        with left:
            _bar_chart("Tokens per day by user", users, y="tokens", color="username")
        with right:
            _bar_chart("Cost per day by user (USD)", users, y="cost_usd", color="username", empty=NO_COST)

    left, right = st.columns(2)
    with left:
        audio = _frame(data.audio_per_day) if data.audio_per_day else pd.DataFrame({"day": [], "audio_hours": []})
        audio["audio_minutes"] = audio["audio_hours"] * 60
        _bar_chart(
            "Audio minutes transcribed per day",
            audio,
            y="audio_minutes",
            empty="No recordings transcribed in this period.",
        )
    with right:
        st.markdown("**Jobs per day**")
        if data.jobs_per_day:
            jobs = _frame(data.jobs_per_day).groupby(["day", "kind"], as_index=False)["jobs"].sum()
            st.bar_chart(jobs, x="day", y="jobs", color="kind")
        else:
            st.caption("No jobs in this period.")
    st.markdown("**Share of thumbs up per day**")
    if data.feedback_per_day:
        st.line_chart(_frame(data.feedback_per_day), x="day", y="share_good")
    else:
        st.caption("No ratings in this period.")
    if usage.by_model:
        st.markdown("**By model**")
        st.dataframe(_frame(usage.by_model), hide_index=True)


# ---------------------------------------------------------------------------- audit log


def audit_tab() -> None:
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
        action=_choice(action),
        target_type=_choice(target_type),
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
                    "When": _when(e.created_at),
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
    _export_buttons(
        "audit",
        csv=lambda: export_audit_csv(actor=actor, filters=filters),
        xlsx=lambda: export_audit_xlsx(actor=actor, filters=filters),
    )


# ---------------------------------------------------------------------------- page

TABS: list[tuple[str, str, Callable[[], None]]] = [
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
        new = run_action(lambda: list_feedback(actor=actor, filters=FeedbackFilters(review_status="new"))).value or []
        if new:
            waiting["Feedback review"] = f"{len(new)} new"
    if actor.can("view_jobs"):
        failed = run_action(lambda: admin_service.list_jobs(actor=actor, status="FAILED")).value or []
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
        render()
