"""Action items across meetings: one list of what every meeting the user may read agreed.

Each recording's minutes list action items (task, owner, due as said, the second it was
said). They are copied into the action_items table by `sync_action_items`
(core.meetings.action_item_sync) whenever the minutes are written, regenerated or edited,
and there they get what the minutes cannot hold: a status (open/done, who closed it and
when), a due date parsed from what was said, and edits of owner and due date made in the
Action items view.

Matching, not duplicating. A sync pairs the minutes' items with the stored rows by the
words of the task (and the moment it was said), so a regenerated or edited minutes text
keeps each item's status and edits; a row that no longer matches is deleted unless people
had touched it (closed or edited), in which case it stays, marked as no longer in the minutes.

Permissions are those of the recording (core.meetings.recording_access): an item is seen
by whoever may read its recording; the recording's owner or an admin edits it; the person it
is assigned to (their name or username) may close or reopen it. Exports need
export_transcripts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor, require
from core.meetings.action_item_sync import MAX_OWNER_CHARS
from core.meetings.recording_access import may_manage_recording, recording_visible_clause
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.models import ActionItem, TranscriptionJob, User
from core.platform.statuses import ACTION_ITEM_STATUSES
from core.platform.tabular import to_csv_bytes, to_xlsx_bytes

log = logging.getLogger(__name__)

DueFilter = Literal["any", "overdue", "this_week", "no_date"]
EXPORT_COLUMNS = (
    "task",
    "owner",
    "due",
    "due_date",
    "status",
    "meeting",
    "meeting_date",
    "said_at",
    "closed_by",
    "closed_at",
    "recording_id",
    "item_id",
)


@dataclass(frozen=True)
class ActionItemView:
    """One action item as the view and the exports show it."""

    id: int
    job_id: int
    meeting: str
    meeting_date: datetime
    task: str
    owner: str | None
    due_text: str | None
    due_date: date | None
    said_at_seconds: float | None
    status: str
    closed_by: str | None
    closed_at: datetime | None
    in_minutes: bool
    can_edit: bool
    can_close: bool

    def is_overdue(self, today: date | None = None) -> bool:
        return self.status == "open" and self.due_date is not None and self.due_date < (today or date.today())


# --------------------------------------------------------------------------- reading


def _names_of(actor: Actor) -> set[str]:
    """How minutes may name the actor: display name, its first word, username (casefolded)."""
    names = {actor.username.casefold()}
    if actor.display_name.strip():
        names.add(actor.display_name.strip().casefold())
        names.add(actor.display_name.split()[0].casefold())
    return names


def _assigned_to(actor: Actor) -> ColumnElement[bool]:
    return func.lower(func.coalesce(ActionItem.owner, "")).in_(sorted(_names_of(actor)))


def _view(item: ActionItem, job: TranscriptionJob, closer: str | None, actor: Actor) -> ActionItemView:
    can_edit = may_manage_recording(actor, job)
    return ActionItemView(
        id=item.id,
        job_id=job.id,
        meeting=job.filename,
        meeting_date=job.created_at,
        task=item.task,
        owner=item.owner,
        due_text=item.due_text,
        due_date=item.due_date,
        said_at_seconds=item.said_at_seconds,
        status=item.status,
        closed_by=closer,
        closed_at=item.closed_at,
        in_minutes=item.in_minutes,
        can_edit=can_edit,
        can_close=can_edit or (item.owner or "").strip().casefold() in _names_of(actor),
    )


def _closer_name() -> Any:
    return func.coalesce(func.nullif(User.display_name, ""), User.username)


def list_action_items(
    *,
    actor: Actor,
    owner: str | None = None,
    status: str | None = None,
    due: DueFilter = "any",
    meeting_from: date | None = None,
    meeting_to: date | None = None,
    mine: bool = False,
    job_id: int | None = None,
    today: date | None = None,
    limit: int = 2000,
) -> list[ActionItemView]:
    """Action items of every recording the actor may read, filtered. Read-only.

    `owner` matches case-insensitively ("" = unassigned); `status` open/done; `due`:
    overdue (open, due before today), this_week (due within 7 days), no_date; meeting dates
    bound the recording's date; `mine` keeps the items assigned to the actor. Open items
    first, by due date (undated last), then meeting date.
    """
    if status is not None and status not in ACTION_ITEM_STATUSES:
        raise InvalidInput("Status must be open or done.")
    today = today or date.today()
    statement = (
        select(ActionItem, TranscriptionJob, _closer_name())
        .join(TranscriptionJob, TranscriptionJob.id == ActionItem.transcription_job_id)
        .outerjoin(User, User.id == ActionItem.closed_by)
        .where(recording_visible_clause(actor))
    )
    if owner is not None:
        statement = statement.where(
            ActionItem.owner.is_(None) if owner == "" else func.lower(ActionItem.owner) == owner.strip().lower()
        )
    if status:
        statement = statement.where(ActionItem.status == status)
    if due == "overdue":
        statement = statement.where(ActionItem.status == "open", ActionItem.due_date < today)
    elif due == "this_week":
        statement = statement.where(ActionItem.due_date >= today, ActionItem.due_date <= today + timedelta(days=7))
    elif due == "no_date":
        statement = statement.where(ActionItem.due_date.is_(None))
    if meeting_from is not None:
        start = datetime.combine(meeting_from, datetime.min.time(), UTC)
        statement = statement.where(TranscriptionJob.created_at >= start)
    if meeting_to is not None:
        end = datetime.combine(meeting_to + timedelta(days=1), datetime.min.time(), UTC)
        statement = statement.where(TranscriptionJob.created_at < end)
    if mine:
        statement = statement.where(_assigned_to(actor))
    if job_id is not None:
        statement = statement.where(ActionItem.transcription_job_id == job_id)
    statement = statement.order_by(
        (ActionItem.status == "done").asc(),
        ActionItem.due_date.asc().nulls_last(),
        TranscriptionJob.created_at.desc(),
        ActionItem.position,
    ).limit(limit)
    with session_scope() as session:
        return [_view(item, job, closer, actor) for item, job, closer in session.execute(statement).all()]


def my_open_action_items(*, actor: Actor, limit: int = 10) -> list[ActionItemView]:
    """Open action items assigned to the actor (by name or username), soonest due first."""
    return list_action_items(actor=actor, status="open", mine=True, limit=limit)


def action_item_owners(*, actor: Actor) -> list[str]:
    """The owners named in the action items the actor may read, for the owner filter."""
    with session_scope() as session:
        owners = session.scalars(
            select(ActionItem.owner)
            .join(TranscriptionJob, TranscriptionJob.id == ActionItem.transcription_job_id)
            .where(recording_visible_clause(actor), ActionItem.owner.is_not(None))
            .distinct()
        ).all()
    return sorted({o for o in owners if o}, key=str.casefold)


# --------------------------------------------------------------------------- changing

_UNCHANGED: Any = object()


def _load_for_change(session: Session, actor: Actor, item_id: int) -> tuple[ActionItem, TranscriptionJob]:
    row = session.execute(
        select(ActionItem, TranscriptionJob)
        .join(TranscriptionJob, TranscriptionJob.id == ActionItem.transcription_job_id)
        .where(ActionItem.id == item_id, recording_visible_clause(actor))
        .with_for_update(of=ActionItem)
    ).first()
    if row is None:
        raise NotFound(f"Action item {item_id} was not found.")
    return row.ActionItem, row.TranscriptionJob


def update_action_item(
    *,
    actor: Actor,
    item_id: int,
    owner: str | None = _UNCHANGED,
    due_date: date | None = _UNCHANGED,
    status: str | None = None,
) -> ActionItemView:
    """Change an item's owner, due date or status (open/done); arguments left out stay.

    The recording's owner or an admin may change everything; the person the item is
    assigned to may change its status. Closing records who and when; reopening clears it.
    Owner and due edits are kept over later minutes regenerations. Commits with an audit
    row. Raises NotFound, PermissionDenied, InvalidInput.
    """
    if status is not None and status not in ACTION_ITEM_STATUSES:
        raise InvalidInput("Status must be open or done.")
    with session_scope() as session:
        item, job = _load_for_change(session, actor, item_id)
        view = _view(item, job, None, actor)
        editing = owner is not _UNCHANGED or due_date is not _UNCHANGED
        if editing and not view.can_edit:
            raise PermissionDenied("Only the owner of this recording or an admin can change an action item.")
        if status is not None and not view.can_close:
            raise PermissionDenied("Only the person it is assigned to, the recording's owner or an admin can close it.")
        before = {"owner": item.owner, "due_date": str(item.due_date) if item.due_date else None, "status": item.status}
        now = datetime.now(UTC)
        if owner is not _UNCHANGED:
            cleaned = " ".join(str(owner or "").split())[:MAX_OWNER_CHARS] or None
            if cleaned != item.owner:
                item.owner, item.edited_by, item.edited_at = cleaned, actor.id, now
        if due_date is not _UNCHANGED and due_date != item.due_date:
            item.due_date, item.edited_by, item.edited_at = due_date, actor.id, now
            item.due_text = due_date.isoformat() if due_date else None
        if status is not None and status != item.status:
            item.status = status
            item.closed_by, item.closed_at = (actor.id, now) if status == "done" else (None, None)
        item.updated_at = now
        after = {"owner": item.owner, "due_date": str(item.due_date) if item.due_date else None, "status": item.status}
        if after != before:
            record_audit(
                session,
                actor=actor,
                action="action_item.update",
                target_type="action_item",
                target_id=item.id,
                details={"recording_id": job.id, "before": before, "after": after},
            )
        session.flush()
        closer = actor.display_name or actor.username if item.status == "done" and item.closed_by == actor.id else None
        if item.status == "done" and closer is None and item.closed_by is not None:
            user = session.get(User, item.closed_by)
            closer = (user.display_name or user.username) if user else None
        return _view(item, job, closer, actor)


# --------------------------------------------------------------------------- exports


def _export_rows(items: Sequence[ActionItemView]) -> list[dict[str, Any]]:
    from core.platform.timecodes import short_clock

    return [
        {
            "task": item.task,
            "owner": item.owner or "",
            "due": item.due_text or "",
            "due_date": item.due_date,
            "status": item.status,
            "meeting": item.meeting,
            "meeting_date": item.meeting_date,
            "said_at": short_clock(item.said_at_seconds) if item.said_at_seconds is not None else "",
            "closed_by": item.closed_by or "",
            "closed_at": item.closed_at,
            "recording_id": item.job_id,
            "item_id": item.id,
        }
        for item in items
    ]


def export_action_items(*, actor: Actor, items: Sequence[ActionItemView], fmt: str) -> tuple[str, str, bytes]:
    """The given items (as listed for this actor) as CSV or XLSX: (filename, mime, bytes).

    Needs export_transcripts. Cells are safe against formula injection. Raises
    PermissionDenied, InvalidInput for another format.
    """
    require(actor, "export_transcripts")
    rows = _export_rows(items)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    if fmt == "csv":
        return f"action-items-{stamp}.csv", "text/csv; charset=utf-8", to_csv_bytes(rows, EXPORT_COLUMNS)
    if fmt == "xlsx":
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return f"action-items-{stamp}.xlsx", mime, to_xlsx_bytes(rows, EXPORT_COLUMNS, sheet_name="Action items")
    raise InvalidInput("Action items export as csv or xlsx.")


__all__ = [
    "ActionItemView",
    "action_item_owners",
    "export_action_items",
    "list_action_items",
    "my_open_action_items",
    "update_action_item",
]
