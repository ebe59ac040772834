"""Action items copied from a recording's minutes: what the minutes say (parsed from their
JSON or from the Markdown a person edited), a due date read from what was said, and
`sync_action_items`, which makes the action_items rows agree with the minutes.

Matching, not duplicating. A sync pairs the minutes' items with the stored rows by the
words of the task (and the moment it was said), so a regenerated or edited minutes text
keeps each item's status and edits; a row that no longer matches is deleted unless people
had touched it (closed or edited), in which case it stays, marked as no longer in the minutes.
Reading, changing and exporting the items is core.meetings.action_items.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from core.ai.hashing import STOPWORDS
from core.meetings.minutes_format import MinutesActionItem, minutes_from_json
from core.platform.db import session_scope
from core.platform.models import ActionItem, TranscriptionJob

log = logging.getLogger(__name__)

MAX_TASK_CHARS = 2000
MAX_OWNER_CHARS = 200
_SAME_MOMENT_SECONDS = 10.0

# An action item as the minutes state it, and whether they mark it done ("[x]" in an edit).
TickedAction = tuple[MinutesActionItem, bool]


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


def _actions_of_recording(job: TranscriptionJob) -> list[TickedAction]:
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
        ticked = _actions_of_recording(job)
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
