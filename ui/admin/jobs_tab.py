"""The Jobs tab: every transcription and indexing job, live, with queue depths and retry. UI only."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pandas as pd
import streamlit as st

import core.admin as admin_service
from core.access import Actor
from core.admin import JOB_STATUS_WORDS
from ui import untrusted
from ui.admin.widgets import ALL, choice, when
from ui.auth_ui import recheck_account
from ui.common import format_seconds, run_action

JOBS_REFRESH_SECONDS = 5


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
    rows = admin_service.list_jobs(actor=actor, kind=choice(kind), status=choice(status))  # type: ignore[arg-type]

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
                    "Status": row.status_label,
                    "Stage": row.current_stage,
                    "Progress": row.progress,
                    "Attempts": row.attempts,
                    "Duration": format_seconds(row.duration_seconds),
                    "Created": when(row.created_at),
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
        if (
            clicked
            and run_action(
                partial(admin_service.retry_job, actor=actor, kind=row.kind, job_id=row.id),
                success=f"{row.kind} #{row.id} queued again.",
            ).ok
        ):
            st.rerun(scope="fragment")


def jobs_tab(actor: Actor) -> None:
    st.caption(f"Refreshes every {JOBS_REFRESH_SECONDS} seconds.")
    jobs_panel()
