"""Action items: what every meeting the user may read agreed, who owns it and whether it is
done. Filters, edit owner / due date / status, the moment it was said, CSV and XLSX. UI only."""

from __future__ import annotations

from datetime import date

import streamlit as st
from core.access import Actor
from core.meetings import (
    ActionItemView,
    action_item_owners,
    export_action_items,
    known_speaker_names,
    list_action_items,
    update_action_item,
)
from ui import session_keys
from ui.common import current_actor, flash_and_rerun, format_seconds, plain, run_action, show_flash

TRANSCRIPTS_PAGE = "pages/transcripts.py"
_EVERYONE, _UNASSIGNED = "Everyone", "Unassigned"
_STATUS_CHOICES = {"open": "Open", "done": "Done", "all": "All"}
_DUE_CHOICES = {"any": "Any", "overdue": "Overdue", "this_week": "Due within 7 days", "no_date": "No due date"}


def _filters(actor: Actor) -> dict[str, object]:
    owners = run_action(lambda: action_item_owners(actor=actor)).value or []
    left, middle, right, dates = st.columns([2, 1, 2, 2])
    owner = left.selectbox("Owner", [_EVERYONE, _UNASSIGNED, *owners], key="action_items_owner")
    status = middle.selectbox(
        "Status", list(_STATUS_CHOICES), format_func=_STATUS_CHOICES.__getitem__, key="action_items_status"
    )
    due = right.selectbox("Due", list(_DUE_CHOICES), format_func=_DUE_CHOICES.__getitem__, key="action_items_due")
    period = dates.date_input("Meeting dates", value=[], key="action_items_dates", format="YYYY-MM-DD")
    mine = st.toggle("Only items assigned to me", key="action_items_mine")
    chosen = tuple(period) if isinstance(period, tuple | list) else (period,)
    return {
        "owner": None if owner == _EVERYONE else ("" if owner == _UNASSIGNED else owner),
        "status": None if status == "all" else status,
        "due": due,
        "meeting_from": chosen[0] if chosen else None,
        "meeting_to": chosen[1] if len(chosen) > 1 else (chosen[0] if chosen else None),
        "mine": mine,
    }


def _status_text(item: ActionItemView, today: date) -> str:
    if item.status == "done":
        return "Done"
    return "Overdue" if item.is_overdue(today) else "Open"


def _rows(items: list[ActionItemView], today: date) -> list[dict[str, object]]:
    return [
        {
            "Status": _status_text(item, today),
            "Task": item.task,
            "Owner": item.owner or "—",
            "Due": item.due_date.isoformat() if item.due_date else (item.due_text or ""),
            "Meeting": item.meeting,
            "Meeting date": item.meeting_date.strftime("%Y-%m-%d"),
            "Said at": format_seconds(item.said_at_seconds) if item.said_at_seconds is not None else "",
            "Closed by": (item.closed_by or "") if item.status == "done" else "",
            "Closed": item.closed_at.strftime("%Y-%m-%d %H:%M") if item.closed_at and item.status == "done" else "",
        }
        for item in items
    ]


def _item_label(item: ActionItemView) -> str:
    owner = item.owner or "unassigned"
    return f"{item.task[:90]} — {owner} — {item.meeting} ({item.meeting_date:%Y-%m-%d})"


def _render_editor(actor: Actor, items: list[ActionItemView], chosen_row: int | None) -> None:
    by_id = {item.id: item for item in items}
    ids = list(by_id)
    default = ids[chosen_row] if chosen_row is not None and chosen_row < len(ids) else None
    if default is not None and st.session_state.get("action_items_row_choice") != default:
        # A row chosen in the table opens it here, once; the picker stays the user's after that.
        st.session_state["action_items_chosen"] = st.session_state["action_items_row_choice"] = default
    chosen = st.selectbox(
        "Change an item",
        ids,
        format_func=lambda item_id: _item_label(by_id[item_id]),
        index=None,
        placeholder="Choose an action item (or a row above)",
        key="action_items_chosen",
    )
    if chosen is None:
        return
    item = by_id[chosen]
    with st.container(border=True):
        st.markdown(f"**{plain(item.task)}**")
        said = f" at {format_seconds(item.said_at_seconds)}" if item.said_at_seconds is not None else ""
        st.caption(f"From {plain(item.meeting)} ({item.meeting_date:%Y-%m-%d}){said}")
        if item.status == "done" and item.closed_at is not None:
            st.caption(f"Done · closed by {plain(item.closed_by or 'someone')} on {item.closed_at:%Y-%m-%d %H:%M}")
        play, close = st.columns(2)
        if item.said_at_seconds is not None and play.button(
            f"Play from {format_seconds(item.said_at_seconds)}", icon=":material/play_arrow:", key=f"play_{item.id}"
        ):
            st.session_state[session_keys.SELECTED_JOB_ID] = item.job_id
            st.session_state[session_keys.SEEK_SECONDS] = float(item.said_at_seconds)
            st.switch_page(
                TRANSCRIPTS_PAGE, query_params={"job": str(item.job_id), "t": str(int(item.said_at_seconds))}
            )
        if item.can_close:
            done = item.status == "done"
            if close.button(
                "Reopen" if done else "Mark done",
                icon=":material/undo:" if done else ":material/task_alt:",
                type="secondary" if done else "primary",
                key=f"close_{item.id}",
            ):
                status = "open" if done else "done"
                if run_action(lambda: update_action_item(actor=actor, item_id=item.id, status=status)).ok:
                    flash_and_rerun("Reopened." if done else "Marked done.")
        if not item.can_edit:
            if not item.can_close:
                st.caption("Only the recording's owner, an admin or the person it is assigned to can change it.")
            return
        names = run_action(lambda: known_speaker_names(actor=actor)).value or []
        with st.form(f"action_item_{item.id}", border=False):
            owners = sorted({*names, *([item.owner] if item.owner else [])}, key=str.casefold)
            owner = st.selectbox(
                "Owner",
                owners,
                index=owners.index(item.owner) if item.owner in owners else None,
                accept_new_options=True,
                placeholder="Unassigned",
            )
            has_due = st.checkbox("Has a due date", value=item.due_date is not None)
            due = st.date_input("Due date", value=item.due_date or date.today(), format="YYYY-MM-DD")
            saved = st.form_submit_button("Save owner and due date", icon=":material/save:")
        if saved:
            due_date = due if has_due and isinstance(due, date) else None
            if run_action(lambda: update_action_item(actor=actor, item_id=item.id, owner=owner, due_date=due_date)).ok:
                flash_and_rerun("Action item saved.")


def _render_exports(actor: Actor, items: list[ActionItemView]) -> None:
    if not actor.can("export_transcripts") or not items:
        return
    csv_column, xlsx_column, _ = st.columns([1, 1, 2])
    for column, fmt, label in ((csv_column, "csv", "CSV"), (xlsx_column, "xlsx", "Excel (XLSX)")):
        exported = run_action(lambda fmt=fmt: export_action_items(actor=actor, items=items, fmt=fmt)).value  # type: ignore[misc]
        if exported is not None:
            name, mime, data = exported
            column.download_button(
                f"Download {label}", data=data, file_name=name, mime=mime, icon=":material/download:", key=f"ai_{fmt}"
            )


def main() -> None:
    actor = current_actor()
    st.title("Action items")
    st.caption(
        "Every action item from the minutes of the meetings you can read. Statuses and edits are kept when "
        "minutes are regenerated or edited."
    )
    show_flash()
    filters = _filters(actor)
    status = filters.pop("status")
    # The counts cover every status of what the other filters keep; the table shows the chosen status.
    matching = run_action(lambda: list_action_items(actor=actor, **filters)).value or []  # type: ignore[arg-type]
    items = [item for item in matching if status is None or item.status == status]
    today = date.today()
    counts = st.columns(3)
    counts[0].metric("Open", sum(item.status == "open" for item in matching))
    counts[1].metric("Overdue", sum(item.is_overdue(today) for item in matching))
    counts[2].metric("Done", sum(item.status == "done" for item in matching))
    if not items:
        st.info(
            "No action items match. They appear when meetings are transcribed and their minutes name work to do.",
            icon=":material/checklist:",
        )
        return
    selection = st.dataframe(
        _rows(items, today),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="action_items_table",
        column_config={"Task": st.column_config.TextColumn(width="large")},
    )
    rows = selection.selection.rows if selection is not None else []  # type: ignore[union-attr]
    _render_exports(actor, items)
    st.divider()
    _render_editor(actor, items, rows[0] if rows else None)


main()
