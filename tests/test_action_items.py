"""Action items across meetings: stored by migration, matched (not duplicated) through minutes
regeneration and edits, filtered, edited, closed, exported; permissions as for transcripts."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from core.access.rbac import Actor
from core.meetings import regenerate_minutes, update_minutes, write_minutes_for_recording
from core.meetings.action_item_sync import actions_from_markdown, parse_due
from core.meetings.action_items import (
    action_item_owners,
    export_action_items,
    list_action_items,
    my_open_action_items,
    update_action_item,
)
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.models import TranscriptionJob
from tests.job_factory import insert_job, load_job

WEDNESDAY = date(2026, 12, 2)

MEETING = [
    {"start": 0.0, "end": 5.0, "text": "Welcome to the launch review.", "speaker": None},
    {"start": 5.0, "end": 11.0, "text": "Alice will send the final budget report by Friday.", "speaker": None},
    {"start": 11.0, "end": 17.0, "text": "Bob will book the venue by next week.", "speaker": None},
    {"start": 17.0, "end": 23.0, "text": "Carol will update the press kit by tomorrow.", "speaker": None},
    {"start": 23.0, "end": 28.0, "text": "That is all for today.", "speaker": None},
]


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Friday", date(2026, 12, 4)),
        ("next Friday", date(2026, 12, 4)),
        ("Wednesday", date(2026, 12, 9)),
        ("tomorrow", date(2026, 12, 3)),
        ("today", WEDNESDAY),
        ("end of the week", date(2026, 12, 4)),
        ("next week", date(2026, 12, 11)),
        ("the end of the month", date(2026, 12, 31)),
        ("in two weeks", date(2026, 12, 16)),
        ("March 3rd", date(2027, 3, 3)),
        ("15 December", date(2026, 12, 15)),
        ("2027-01-20", date(2027, 1, 20)),
        ("soon", None),
        (None, None),
    ],
)
def test_due_dates_are_read_from_what_was_said(said: str | None, expected: date | None) -> None:
    assert parse_due(said, said_on=WEDNESDAY) == expected


def test_action_items_are_read_from_minutes_markdown_as_written_or_edited() -> None:
    markdown = (
        "# Minutes\n\n## Summary\n\n- Not an item — Alice\n\n## Action items\n\n"
        "- [0:00:05] Send the report — **Alice**, due Friday\n"
        "- [x] Book the venue — _unassigned_\n"
        "* Call the printer\n\n## Topics\n\n- Launch\n"
    )
    items = actions_from_markdown(markdown)
    assert [(i.task, i.owner, i.due, i.timestamp, done) for i, done in items] == [
        ("Send the report", "Alice", "Friday", 5.0, False),
        ("Book the venue", None, None, None, True),
        ("Call the printer", None, None, None, False),
    ]


@pytest.fixture
def meeting(member: Actor, redis_server: str) -> int:
    job_id = insert_job(member, segments=MEETING, filename="launch review.mp3")
    with session_scope() as session:
        created = datetime.combine(WEDNESDAY, datetime.min.time(), UTC) + timedelta(hours=10)
        session.execute(update(TranscriptionJob).where(TranscriptionJob.id == job_id).values(created_at=created))
    write_minutes_for_recording(job_id)  # offline: extractive minutes, then the items are synced
    return job_id


def _by_owner(actor: Actor, job_id: int) -> dict[str | None, object]:
    return {item.owner: item for item in list_action_items(actor=actor, job_id=job_id)}


def test_items_survive_regeneration_and_owner_edits_of_the_minutes(member: Actor, meeting: int) -> None:
    items = list_action_items(actor=member, job_id=meeting)
    assert sorted(i.owner or "" for i in items) == ["Alice", "Bob", "Carol"]
    alice = next(i for i in items if i.owner == "Alice")
    assert (alice.due_text, alice.due_date, alice.said_at_seconds) == ("Friday", date(2026, 12, 4), 5.0)
    assert alice.meeting == "launch review.mp3" and alice.status == "open"

    closed = update_action_item(actor=member, item_id=alice.id, status="done")
    assert closed.status == "done" and closed.closed_by and closed.closed_at is not None

    regenerate_minutes(actor=member, job_id=meeting)
    again = list_action_items(actor=member, job_id=meeting)
    assert len(again) == 3  # matched, not duplicated
    assert next(i for i in again if i.id == alice.id).status == "done"

    # The owner edits the minutes: Bob's item goes to Dave, Carol's item is removed, one is added.
    markdown = load_job(meeting).minutes_markdown or ""
    markdown = markdown.replace("**Bob**", "**Dave**")
    markdown = "\n".join(line for line in markdown.splitlines() if "press kit" not in line)
    erin = "- [0:00:23] Write the launch blog post — **Erin**\n\n## Open questions"
    markdown = markdown.replace("## Open questions", erin)
    update_minutes(actor=member, job_id=meeting, markdown=markdown)
    after = _by_owner(member, meeting)
    assert set(after) == {"Alice", "Dave", "Erin"}
    assert after["Alice"].id == alice.id and after["Alice"].status == "done"  # type: ignore[attr-defined]

    # A closed item the minutes no longer list is kept (team memory), marked as such.
    markdown = "\n".join(line for line in markdown.splitlines() if "budget report" not in line)
    update_minutes(actor=member, job_id=meeting, markdown=markdown)
    kept = _by_owner(member, meeting)["Alice"]
    assert kept.status == "done" and not kept.in_minutes  # type: ignore[attr-defined]


def test_view_edits_win_over_a_regeneration_and_are_audited(member: Actor, meeting: int) -> None:
    bob = _by_owner(member, meeting)["Bob"]
    update_action_item(actor=member, item_id=bob.id, owner="Robert", due_date=date(2026, 12, 20))  # type: ignore[attr-defined]
    regenerate_minutes(actor=member, job_id=meeting)
    robert = _by_owner(member, meeting)["Robert"]
    assert robert.due_date == date(2026, 12, 20) and robert.id == bob.id  # type: ignore[attr-defined]
    assert len(list_action_items(actor=member, job_id=meeting)) == 3


def test_filters_and_your_open_items(member: Actor, make_user: Callable[..., Actor], meeting: int) -> None:
    carol = make_user(display_name="Carol Jones")
    today = date(2026, 12, 5)  # Alice's Friday has passed; Carol's tomorrow too
    overdue = list_action_items(actor=member, job_id=meeting, due="overdue", today=today)
    assert sorted(i.owner or "" for i in overdue) == ["Alice", "Carol"]
    assert all(i.is_overdue(today) for i in overdue)
    assert [i.owner for i in list_action_items(actor=member, job_id=meeting, owner="bob")] == ["Bob"]
    assert list_action_items(actor=member, job_id=meeting, status="done") == []
    assert list_action_items(actor=member, job_id=meeting, meeting_from=WEDNESDAY, meeting_to=WEDNESDAY)
    assert not list_action_items(actor=member, job_id=meeting, meeting_from=WEDNESDAY + timedelta(days=1))
    assert {"Alice", "Bob", "Carol"} <= set(action_item_owners(actor=member))
    assert [i.owner for i in my_open_action_items(actor=carol) if i.job_id == meeting] == ["Carol"]
    with pytest.raises(InvalidInput):
        list_action_items(actor=member, status="closed")


def test_permissions_follow_the_recording(member: Actor, make_user: Callable[..., Actor], meeting: int) -> None:
    carol = make_user(display_name="Carol Jones")
    reader = make_user()
    carol_item = _by_owner(member, meeting)["Carol"]
    # The assignee may close it, not reassign it.
    assert update_action_item(actor=carol, item_id=carol_item.id, status="done").status == "done"  # type: ignore[attr-defined]
    with pytest.raises(PermissionDenied):
        update_action_item(actor=carol, item_id=carol_item.id, owner="Someone else")  # type: ignore[attr-defined]
    # Another reader sees it but may not close it.
    assert list_action_items(actor=reader, job_id=meeting)
    with pytest.raises(PermissionDenied):
        update_action_item(actor=reader, item_id=carol_item.id, status="open")  # type: ignore[attr-defined]
    # Private recordings' items are not seen at all.
    with session_scope() as session:
        session.execute(update(TranscriptionJob).where(TranscriptionJob.id == meeting).values(visibility="private"))
    assert list_action_items(actor=reader, job_id=meeting) == []
    with pytest.raises(NotFound):
        update_action_item(actor=reader, item_id=carol_item.id, status="open")  # type: ignore[attr-defined]


def test_csv_and_xlsx_exports(member: Actor, meeting: int, make_user: Callable[..., Actor]) -> None:
    items = list_action_items(actor=member, job_id=meeting)
    name, mime, data = export_action_items(actor=member, items=items, fmt="csv")
    text = data.decode("utf-8-sig")
    assert name.endswith(".csv") and mime.startswith("text/csv")
    assert text.splitlines()[0].startswith("task,owner,due,due_date,status,meeting")
    assert "Alice will send the final budget report by Friday." in text and "launch review.mp3" in text
    name, _, data = export_action_items(actor=member, items=items, fmt="xlsx")
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None and sheet.max_row == len(items) + 1
    with pytest.raises(InvalidInput):
        export_action_items(actor=member, items=items, fmt="pdf")
    from tests.job_factory import make_role

    no_export = make_user(role=make_role("read_transcripts"))
    with pytest.raises(PermissionDenied):
        export_action_items(actor=no_export, items=items, fmt="csv")
