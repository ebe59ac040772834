"""Action items across meetings: one list of what every meeting the user may read agreed.

Each recording's minutes list action items (task, owner, due as said, the second it was
said). They are copied into the action_items table by `sync_action_items` whenever the
minutes are written, regenerated or edited, and there they get what the minutes cannot
hold: a status (open/done, who closed it and when), a due date parsed from what was said,
and edits of owner and due date made in the Action items view.

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

import calendar
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor, require
from core.ai.hashing import STOPWORDS
from core.meetings.minutes_format import MinutesActionItem, minutes_from_json
from core.meetings.recording_access import job_visible_clause, may_manage_job
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.models import ActionItem, TranscriptionJob, User
from core.platform.tabular import to_csv_bytes, to_xlsx_bytes

log = logging.getLogger(__name__)

STATUSES = ("open", "done")
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
MAX_TASK_CHARS = 2000
MAX_OWNER_CHARS = 200
_SAME_MOMENT_SECONDS = 10.0


# --------------------------------------------------------------------------- values


# An action item as the minutes state it, and whether they mark it done ("[x]" in an edit).
TickedAction = tuple[MinutesActionItem, bool]


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


# --------------------------------------------------------------------------- due dates

_WEEKDAYS = {name: index for index, name in enumerate(calendar.day_name[i].lower() for i in range(7))}
_MONTHS = {name.lower()[:3]: index for index, name in enumerate(calendar.month_name) if name}
_MONTH_DAY = re.compile(r"\b([a-z]{3})[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b")
_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([a-z]{3})[a-z]*\b")
_IN_PERIOD = re.compile(r"\bin\s+(\d{1,2}|a|one|two|three)\s+(day|week)s?\b")
_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3}


def parse_due(text: str | None, *, said_on: date) -> date | None:
    """The date a deadline said on `said_on` means: "Friday" (the next one), "tomorrow",
    "end of the week", "next week" (its Friday), "end of month", "in two weeks",
    "March 3", "3 March", "2026-12-04". None when it names no day. Pure."""
    if not text:
        return None
    phrase = " ".join(text.lower().replace(",", " ").split())
    iso = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", phrase)
    if iso:
        try:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            return None
    if re.search(r"\b(today|tonight|eod|cob|end of (the )?day)\b", phrase):
        return said_on
    if "tomorrow" in phrase:
        return said_on + timedelta(days=1)
    friday = said_on + timedelta(days=(4 - said_on.weekday()) % 7)
    if re.search(r"\b(eow|end of (the |this )?week)\b", phrase):
        return friday
    if re.search(r"\bnext week\b", phrase):
        return friday + timedelta(days=7) if said_on.weekday() <= 4 else friday
    if re.search(r"\bend of (the |this )?month\b", phrase):
        return date(said_on.year, said_on.month, calendar.monthrange(said_on.year, said_on.month)[1])
    period = _IN_PERIOD.search(phrase)
    if period:
        count = _NUMBERS.get(period.group(1)) or int(period.group(1))
        return said_on + timedelta(days=count * (7 if period.group(2) == "week" else 1))
    for name, index in _WEEKDAYS.items():
        if re.search(rf"\b{name}\b", phrase):
            ahead = (index - said_on.weekday()) % 7 or 7
            return said_on + timedelta(days=ahead + (7 if re.search(rf"\bnext week {name}\b", phrase) else 0))
    month_day = _MONTH_DAY.search(phrase)
    day_month = _DAY_MONTH.search(phrase)
    month, day = None, None
    if month_day and month_day.group(1) in _MONTHS:
        month, day = _MONTHS[month_day.group(1)], int(month_day.group(2))
    elif day_month and day_month.group(2) in _MONTHS:
        month, day = _MONTHS[day_month.group(2)], int(day_month.group(1))
    if month and day:
        try:
            candidate = date(said_on.year, month, day)
            # "January 5" said in December is next year's.
            return candidate if candidate >= said_on - timedelta(days=60) else date(said_on.year + 1, month, day)
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- from the minutes

_SECTION = re.compile(r"^\s*#{1,6}\s*(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*[-*+]\s+(?:\[([ xX])\]\s+)?(?:\[(\d+:\d{2}(?::\d{2})?)\]\s+)?(.*\S)\s*$")
_DETAIL_SPLIT = re.compile(r"\s+[—–]\s+")
_MARKUP = re.compile(r"\*\*|__|(?<!\w)[_*](?=\S)|(?<=\S)[_*](?!\w)|`")
_UNASSIGNED = frozenset({"unassigned", "nobody", "none", "tbd", "n/a"})


def _clock_seconds(text: str) -> float:
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return float(parts[0] * 3600 + parts[1] * 60 + parts[2])


def _plain(text: str) -> str:
    return " ".join(_MARKUP.sub("", text).split())


def actions_from_markdown(markdown: str) -> list[TickedAction]:
    """The items of the "Action items" section of minutes Markdown, as Quorum writes them
    ("- [0:01:02] Task — **Owner**, due Friday") or as people edit them (a tick box, no
    time, no details). "[x]" marks an item done. Pure."""
    found: list[TickedAction] = []
    inside = False
    for line in markdown.splitlines():
        heading = _SECTION.match(line)
        if heading:
            inside = heading.group(1).strip().lower().startswith("action item")
            continue
        item = _ITEM.match(line) if inside else None
        if item is None:
            continue
        tick, clock, rest = item.groups()
        parts = _DETAIL_SPLIT.split(rest)
        task, owner, due = rest, None, None
        if len(parts) > 1:
            task = " — ".join(parts[:-1])
            for detail in (d.strip() for d in parts[-1].split(",")):
                if detail.lower().startswith("due "):
                    due = _plain(detail[4:]) or None
                elif owner is None and _plain(detail) and _plain(detail).lower() not in _UNASSIGNED:
                    owner = _plain(detail)
        task = _plain(task)
        if task and task.lower() != "none recorded.":
            timestamp = _clock_seconds(clock) if clock else None
            found.append((MinutesActionItem(task, owner, due, timestamp), (tick or "").lower() == "x"))
    return found


def _actions_of_job(job: TranscriptionJob) -> list[TickedAction]:
    """The job's action items: from the owner's edited Markdown when there is one, else
    from the generated minutes."""
    if job.minutes_edited_at is not None and job.minutes_markdown:
        return actions_from_markdown(job.minutes_markdown)
    if not isinstance(job.minutes, Mapping):
        return []
    return [(item, False) for item in minutes_from_json(job.minutes).action_items]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def _likeness(row: ActionItem, action: MinutesActionItem) -> float:
    """How surely a stored row and a minutes item are the same item (0 = not at all)."""
    a, b = _words(row.task), _words(action.task)
    overlap = len(a & b) / len(a | b) if a | b else 0.0
    same_moment = (
        row.said_at_seconds is not None
        and action.timestamp is not None
        and abs(row.said_at_seconds - action.timestamp) <= _SAME_MOMENT_SECONDS
    )
    if overlap >= 0.5 or (same_moment and overlap >= 0.25):
        return overlap + (0.5 if same_moment else 0.0)
    return 0.0


def match_items(rows: Sequence[ActionItem], actions: Sequence[MinutesActionItem]) -> dict[int, int]:
    """{index in actions: index in rows}: the most alike pairs first, each used once. Pure."""
    pairs = sorted(
        ((_likeness(row, action), r, a) for r, row in enumerate(rows) for a, action in enumerate(actions)),
        key=lambda p: (-p[0], p[2], p[1]),
    )
    matched: dict[int, int] = {}
    used_rows: set[int] = set()
    for score, r, a in pairs:
        if score <= 0:
            break
        if a not in matched and r not in used_rows:
            matched[a] = r
            used_rows.add(r)
    return matched


def sync_action_items(job_id: int, *, edited_by: int | None = None) -> None:
    """Make the job's action_items rows agree with its minutes, matching instead of duplicating.

    Matched rows take the minutes' wording, moment and order and keep their status; owner
    and due follow the minutes unless someone edited them in the Action items view, except
    after a person edited the minutes (`edited_by` set): the newer human word wins, and a
    "[x]" there closes the item. New items are added; rows no longer in the minutes are
    deleted unless people touched them (kept, in_minutes False). Idempotent. Commits.
    """
    with session_scope() as session:
        job = session.scalar(select(TranscriptionJob).where(TranscriptionJob.id == job_id).with_for_update())
        if job is None:
            return
        ticked = _actions_of_job(job)
        actions = [action for action, _ in ticked]
        said_on = job.created_at.date()
        rows = list(
            session.scalars(
                select(ActionItem).where(ActionItem.transcription_job_id == job_id).order_by(ActionItem.position)
            )
        )
        matched = match_items(rows, actions)
        now = datetime.now(UTC)
        for position, (action, done) in enumerate(ticked):
            owner = (action.owner or None) and action.owner[:MAX_OWNER_CHARS]
            due = (action.due or None) and action.due[:MAX_OWNER_CHARS]
            if position not in matched:
                row = ActionItem(
                    transcription_job_id=job_id,
                    position=position,
                    task=action.task[:MAX_TASK_CHARS],
                    owner=owner,
                    due_text=due,
                    due_date=parse_due(due, said_on=said_on),
                    said_at_seconds=action.timestamp,
                    status="done" if done else "open",
                    closed_by=edited_by if done else None,
                    closed_at=now if done else None,
                )
                session.add(row)
                continue
            row = rows[matched[position]]
            row.position, row.task, row.in_minutes = position, action.task[:MAX_TASK_CHARS], True
            if action.timestamp is not None:
                row.said_at_seconds = action.timestamp
            minutes_win = row.edited_at is None or edited_by is not None
            if minutes_win and (row.owner, row.due_text) != (owner, due):
                row.owner, row.due_text, row.due_date = owner, due, parse_due(due, said_on=said_on)
            if edited_by is not None and done and row.status == "open":
                row.status, row.closed_by, row.closed_at = "done", edited_by, now
            row.updated_at = now
        kept = set(matched.values())
        for index, row in enumerate(rows):
            if index in kept:
                continue
            if row.status == "done" or row.edited_at is not None:
                row.in_minutes = False
            else:
                session.delete(row)
    log.info("action items: job %s has %d in its minutes (%d matched)", job_id, len(actions), len(matched))


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
    can_edit = may_manage_job(actor, job)
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
    if status is not None and status not in STATUSES:
        raise InvalidInput("Status must be open or done.")
    today = today or date.today()
    statement = (
        select(ActionItem, TranscriptionJob, _closer_name())
        .join(TranscriptionJob, TranscriptionJob.id == ActionItem.transcription_job_id)
        .outerjoin(User, User.id == ActionItem.closed_by)
        .where(job_visible_clause(actor))
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
            .where(job_visible_clause(actor), ActionItem.owner.is_not(None))
            .distinct()
        ).all()
    return sorted({o for o in owners if o}, key=str.casefold)


# --------------------------------------------------------------------------- changing

_UNCHANGED: Any = object()


def _load_for_change(session: Session, actor: Actor, item_id: int) -> tuple[ActionItem, TranscriptionJob]:
    row = session.execute(
        select(ActionItem, TranscriptionJob)
        .join(TranscriptionJob, TranscriptionJob.id == ActionItem.transcription_job_id)
        .where(ActionItem.id == item_id, job_visible_clause(actor))
        .with_for_update(of=ActionItem)
    ).first()
    if row is None:
        raise NotFound(f"Action item {item_id} was not found.")
    return row[0], row[1]


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
    if status is not None and status not in STATUSES:
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
    "TickedAction",
    "action_item_owners",
    "actions_from_markdown",
    "export_action_items",
    "list_action_items",
    "match_items",
    "my_open_action_items",
    "parse_due",
    "sync_action_items",
    "update_action_item",
]
