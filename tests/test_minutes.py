"""Minutes: extractive with the offline provider, map-reduce against the fake OpenAI server,
JSON repair, and the job-level services (idempotent writes, edits, regenerate, access)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from core.ai.base import TranscriptPiece, UsageContext
from core.meetings import get_minutes, regenerate_minutes, update_minutes, write_minutes_for_recording
from core.meetings.minutes_extractive import extractive_minutes
from core.meetings.minutes_format import format_clock, minutes_from_json, parse_timestamp
from core.meetings.minutes_writer import MAP_PROMPT, REDUCE_PROMPT, generate_minutes
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.platform.models import UsageRecord
from core.platform.tokens import count_tokens
from tests.job_factory import insert_job, load_job

SHORT_MEETING = [
    {"start": 0.0, "end": 4.0, "text": "Good morning, this is the release planning meeting.", "speaker": "Bob"},
    {"start": 4.0, "end": 7.5, "text": "We decided to ship on Monday.", "speaker": "Bob"},
    {"start": 7.5, "end": 12.0, "text": "Alice will update the roadmap by Friday.", "speaker": "Carol"},
    {"start": 12.0, "end": 14.0, "text": "What about the budget?", "speaker": "Dan"},
]


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Minutes windows of 1,500 tokens, so a three-hour meeting needs many map calls."""
    monkeypatch.setenv("QUORUM_MINUTES_CHUNK_TOKENS", "1500")
    get_settings.cache_clear()
    yield 1500
    monkeypatch.delenv("QUORUM_MINUTES_CHUNK_TOKENS")
    get_settings.cache_clear()


def _minutes_usage() -> UsageContext:
    return UsageContext(purpose="minutes")


# --------------------------------------------------------------------------- offline


def test_offline_minutes_find_decision_action_item_and_open_question(offline_provider: Any, member: Any) -> None:
    job_id = insert_job(member, segments=SHORT_MEETING, filename="release_planning.mp3")

    write_minutes_for_recording(job_id)

    view = get_minutes(actor=member, job_id=job_id)
    minutes = view.minutes
    assert minutes is not None and minutes.generator == "extractive"
    assert [(d.text, d.timestamp) for d in minutes.decisions] == [("We decided to ship on Monday.", 4.0)]
    (action,) = minutes.action_items
    assert action.owner == "Alice" and action.due == "Friday" and action.timestamp == 7.5
    assert "update the roadmap" in action.task
    assert [(q.text, q.timestamp) for q in minutes.open_questions] == [("What about the budget?", 12.0)]
    assert "roadmap" in [t.lower() for t in minutes.topics]
    assert minutes.title == "Minutes: release planning"
    markdown = view.markdown or ""
    assert "- [0:00:04] We decided to ship on Monday." in markdown
    assert "[0:00:07] Alice will update the roadmap by Friday. — **Alice**, due Friday" in markdown
    assert "## Open questions" in markdown and "[0:00:12] What about the budget?" in markdown
    assert view.can_edit and not view.is_edited


def test_offline_minutes_join_a_sentence_cut_across_pieces_and_time_it_inside_a_piece(offline_provider: Any) -> None:
    pieces = [
        TranscriptPiece(0.0, 10.0, "Thanks for joining. Bob will book the venue", "Ann"),
        TranscriptPiece(10.0, 14.0, "for the offsite by March 3.", "Ann"),
        TranscriptPiece(14.0, 20.0, "I will draft the agenda tomorrow.", "Cy"),
    ]
    minutes = generate_minutes(pieces, provider=offline_provider, usage=_minutes_usage())
    first, second = minutes.action_items
    assert first.task == "Bob will book the venue for the offsite by March 3."
    assert first.owner == "Bob" and first.due == "March 3"
    assert 3.0 < (first.timestamp or 0) < 10.0  # interpolated within the first piece
    assert second.owner == "Cy"  # "I will ..." belongs to the speaker
    assert second.due == "tomorrow" and second.timestamp == 14.0


def test_empty_transcript_gives_minutes_without_calling_a_model(fake_openai: Any, openai_provider: Any) -> None:
    minutes = generate_minutes([{"start": 0, "end": 3, "text": "  "}], provider=openai_provider, usage=_minutes_usage())
    assert "No speech" in minutes.summary
    assert fake_openai.calls("/v1/chat/completions") == []


# --------------------------------------------------------------------------- map-reduce

_LINE = re.compile(r"^\[(\d+:\d\d:\d\d)\] (?:(\w+): )?(.*)$")


def simulated_model(body: dict[str, Any]) -> str:
    """A stand-in model on the fake server: lists the decisions ("decided") and action items
    ("will") of a transcript window with their timestamps, and merges partials by
    concatenating their items and shortening the summary."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if system == REDUCE_PROMPT:
        partials = json.loads(user)
        merged: dict[str, Any] = {"title": "Quarterly planning", "summary": ""}
        for key in ("decisions", "action_items", "open_questions", "topics"):
            merged[key] = [item for p in partials for item in p.get(key, [])]
        merged["summary"] = " ".join(p["summary"] for p in partials)[:240]
        return json.dumps(merged)
    assert system == MAP_PROMPT
    decisions, actions, texts = [], [], []
    for line in user.splitlines():
        match = _LINE.match(line)
        assert match, line
        clock, speaker, text = match.groups()
        texts.append(text)
        if "decided" in text:
            decisions.append({"text": text, "timestamp": clock})
        if " will " in text:
            actions.append(
                {"task": text, "owner": speaker, "due": "Friday" if "Friday" in text else None, "timestamp": clock}
            )
    return json.dumps(
        {
            "title": "Part",
            "summary": " ".join(texts[:5]),
            "decisions": decisions,
            "action_items": actions,
            "topics": ["plan"],
        }
    )


def three_hour_meeting() -> list[dict[str, Any]]:
    pieces = []
    for i in range(720):  # one piece every 15 seconds for three hours
        text = f"Marker {i:04d}: the team reviewed part {i} of the quarterly plan and talked it through in detail."
        pieces.append({"start": i * 15.0, "end": i * 15.0 + 14.5, "text": text, "speaker": "Sam"})
    pieces[20]["text"] = "Marker 0020: We decided to hire two engineers."
    pieces[680] = {
        "start": 10200.0,
        "end": 10214.0,
        "text": "Marker 0680: Dana will send the final budget by Friday.",
        "speaker": "Dana",
    }
    pieces[700]["text"] = "Marker 0700: We decided to move the launch to October."
    return pieces


def test_three_hour_meeting_is_map_reduced_under_the_budget_and_nothing_is_truncated(
    fake_openai: Any, openai_provider: Any, small_windows: int
) -> None:
    fake_openai.chat_handler = simulated_model
    pieces = three_hour_meeting()
    transcript_tokens = sum(count_tokens(p["text"]) for p in pieces)
    assert transcript_tokens > 10 * small_windows  # far over one window

    minutes = generate_minutes(pieces, provider=openai_provider, usage=_minutes_usage(), title="Fallback")

    calls = fake_openai.calls("/v1/chat/completions")
    map_calls = [c for c in calls if c.body["messages"][0]["content"] == MAP_PROMPT]
    reduce_calls = [c for c in calls if c.body["messages"][0]["content"] == REDUCE_PROMPT]
    assert len(map_calls) >= 10
    assert len(reduce_calls) >= 2  # partials did not fit one call: reduced hierarchically
    for call in calls:
        assert call.body["response_format"]["type"] == "json_object"
        sent = sum(count_tokens(m["content"]) for m in call.body["messages"])
        assert sent <= small_windows
    # Every piece was sent, each exactly once and in order.
    sent_markers = [m for c in map_calls for m in re.findall(r"Marker (\d{4})", c.body["messages"][-1]["content"])]
    assert sent_markers == [f"{i:04d}" for i in range(720)]

    assert minutes.title == "Quarterly planning"
    decisions = {d.text: d.timestamp for d in minutes.decisions}
    assert decisions["Marker 0020: We decided to hire two engineers."] == 300.0
    assert decisions["Marker 0700: We decided to move the launch to October."] == 10500.0  # from the last hour
    (dana,) = [a for a in minutes.action_items if a.owner == "Dana"]
    assert dana.due == "Friday" and dana.timestamp == 10200.0
    assert "[2:50:00] Marker 0680: Dana will send the final budget by Friday. — **Dana**, due Friday" in (
        minutes.to_markdown()
    )


def test_write_minutes_for_job_records_usage_and_is_idempotent(
    fake_openai: Any, openai_provider: Any, small_windows: int, member: Any
) -> None:
    fake_openai.chat_handler = simulated_model
    job_id = insert_job(member, segments=three_hour_meeting()[:200])

    write_minutes_for_recording(job_id)
    calls = len(fake_openai.calls("/v1/chat/completions"))
    assert calls >= 2
    job = load_job(job_id)
    assert job.minutes is not None and job.minutes["generator"] == "gpt-4o-mini"
    assert "We decided to hire two engineers." in (job.minutes_markdown or "")
    with session_scope() as session:
        recorded = session.scalar(
            select(func.count()).where(UsageRecord.transcription_job_id == job_id, UsageRecord.purpose == "minutes")
        )
        owner = session.scalar(select(UsageRecord.user_id).where(UsageRecord.transcription_job_id == job_id).limit(1))
    assert recorded == calls and owner == member.id

    write_minutes_for_recording(job_id)  # a redelivered message
    assert len(fake_openai.calls("/v1/chat/completions")) == calls


def test_model_json_is_repaired_not_fatal(fake_openai: Any, openai_provider: Any) -> None:
    fake_openai.chat_handler = lambda body: (
        "Here are the minutes:\n```json\n"
        + json.dumps(
            {
                "summary": ["Shipping was discussed.", "So was the roadmap."],
                "decisions": "Ship on Monday",
                "action_items": {
                    "action": "Update the roadmap",
                    "assignee": "Alice",
                    "deadline": "Friday",
                    "time": "0:00:07",
                },
                "open_questions": [None, {"question": "Budget?", "timestamp": 99999}, 42],
                "topics": "roadmap, budget",
            }
        )
        + "\n```"
    )
    minutes = generate_minutes(SHORT_MEETING, provider=openai_provider, usage=_minutes_usage(), title="Standup")
    assert minutes.title == "Standup"
    assert minutes.summary == "Shipping was discussed. So was the roadmap."
    assert [(d.text, d.timestamp) for d in minutes.decisions] == [("Ship on Monday", None)]
    (action,) = minutes.action_items
    assert (action.task, action.owner, action.due, action.timestamp) == ("Update the roadmap", "Alice", "Friday", 7.0)
    assert [(q.text, q.timestamp) for q in minutes.open_questions] == [("Budget?", None), ("42", None)]
    assert minutes.topics == ("roadmap", "budget")


def test_a_window_with_no_json_is_asked_again_then_summarised_extractively(
    fake_openai: Any, openai_provider: Any
) -> None:
    fake_openai.chat_handler = lambda body: "Sorry, I cannot produce JSON today."
    minutes = generate_minutes(SHORT_MEETING, provider=openai_provider, usage=_minutes_usage())
    assert len(fake_openai.calls("/v1/chat/completions")) == 2
    assert [d.text for d in minutes.decisions] == ["We decided to ship on Monday."]
    assert minutes.action_items[0].owner == "Alice"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (62, 62.0),
        (62.5, 62.5),
        ("1:02:03", 3723.0),
        ("[0:01:02]", 62.0),
        ("01:02", 62.0),
        ("62s", 62.0),
        ("1:02:03.5", 3723.5),
        ("soon", None),
        (-3, None),
        (True, None),
        (None, None),
    ],
)
def test_parse_timestamp(value: object, expected: float | None) -> None:
    assert parse_timestamp(value) == expected


def test_parse_timestamp_rejects_times_after_the_meeting() -> None:
    assert parse_timestamp("2:00:00", max_seconds=3600) is None
    assert parse_timestamp("0:59:00", max_seconds=3600) == 3540.0


def test_minutes_round_trip_through_stored_json() -> None:
    minutes = minutes_from_json(
        {"title": "T", "summary": "S", "action_items": [{"task": "x", "owner": "null", "due": "", "timestamp": 5}]}
    )
    assert minutes.action_items[0].owner is None and minutes.action_items[0].due is None
    assert minutes_from_json(minutes.to_json()) == minutes
    assert format_clock(3723.9) == "1:02:03"
    with pytest.raises(ValueError):
        minutes_from_json("no object here")


# --------------------------------------------------------------------------- edits and access


def test_an_edit_is_kept_by_the_worker_and_replaced_only_by_regenerate(offline_provider: Any, member: Any) -> None:
    job_id = insert_job(member, segments=SHORT_MEETING)
    write_minutes_for_recording(job_id)

    edited = update_minutes(actor=member, job_id=job_id, markdown="# Release\n\n- Ship Monday (confirmed by Bob)\r\n")
    assert edited.is_edited and edited.markdown == "# Release\n\n- Ship Monday (confirmed by Bob)\n"

    write_minutes_for_recording(job_id)  # redelivery after an edit
    write_minutes_for_recording(job_id)
    assert load_job(job_id).minutes_markdown == edited.markdown

    regenerated = regenerate_minutes(actor=member, job_id=job_id)
    assert not regenerated.is_edited
    assert "We decided to ship on Monday." in (regenerated.markdown or "")


def test_only_owner_or_admin_may_edit_or_regenerate(
    offline_provider: Any, member: Any, make_user: Any, admin: Any
) -> None:
    colleague = make_user()
    team_job = insert_job(member, segments=SHORT_MEETING)
    private_job = insert_job(member, segments=SHORT_MEETING, visibility="private")

    assert get_minutes(actor=colleague, job_id=team_job).can_edit is False
    with pytest.raises(PermissionDenied):
        update_minutes(actor=colleague, job_id=team_job, markdown="mine now")
    with pytest.raises(PermissionDenied):
        regenerate_minutes(actor=colleague, job_id=team_job)
    with pytest.raises(NotFound):
        get_minutes(actor=colleague, job_id=private_job)
    with pytest.raises(NotFound):
        update_minutes(actor=colleague, job_id=private_job, markdown="mine now")

    assert regenerate_minutes(actor=admin, job_id=private_job).minutes is not None
    assert update_minutes(actor=admin, job_id=private_job, markdown="Checked by admin").is_edited


def test_edit_validation_and_missing_transcript(offline_provider: Any, member: Any) -> None:
    job_id = insert_job(member, segments=SHORT_MEETING)
    with pytest.raises(InvalidInput):
        update_minutes(actor=member, job_id=job_id, markdown="   \n")
    with pytest.raises(InvalidInput):
        update_minutes(actor=member, job_id=job_id, markdown="x" * 200_001)

    pending = insert_job(member, status="PROCESSING")
    with pytest.raises(Conflict):
        regenerate_minutes(actor=member, job_id=pending)
    with pytest.raises(NotFound):
        write_minutes_for_recording(2_000_000_000)


def test_edits_and_regenerated_minutes_are_reindexed(offline_provider: Any, redis_server: str, member: Any) -> None:
    from core.documents import index_document, index_text_document
    from core.platform.models import Document, DocumentChunk

    job_id = insert_job(member, segments=SHORT_MEETING)
    write_minutes_for_recording(job_id)
    document_id = index_text_document(job_id=job_id, document_type="meeting_minutes", index_now=True)
    assert document_id is not None

    def indexed_text() -> str:
        with session_scope() as session:
            document = session.get(Document, document_id)
            assert document is not None
            chunks = session.scalars(
                select(DocumentChunk.content).where(
                    DocumentChunk.document_id == document_id, DocumentChunk.generation == document.active_generation
                )
            )
            return " ".join(chunks)

    assert "We decided to ship on Monday." in indexed_text()

    update_minutes(actor=member, job_id=job_id, markdown="# Release\n\nThe launch moved to the Zanzibar office.")
    with session_scope() as session:
        assert session.scalar(select(Document.status).where(Document.id == document_id)) == "PENDING"
    index_document(document_id)  # what the worker does with the queued message
    assert "Zanzibar" in indexed_text() and "ship on Monday" not in indexed_text()

    regenerate_minutes(actor=member, job_id=job_id)
    index_document(document_id)
    assert "We decided to ship on Monday." in indexed_text() and "Zanzibar" not in indexed_text()


def test_a_job_without_a_minutes_document_is_not_given_one_by_an_edit(offline_provider: Any, member: Any) -> None:
    from core.platform.models import Document

    job_id = insert_job(member, segments=SHORT_MEETING)
    update_minutes(actor=member, job_id=job_id, markdown="Notes before indexing")
    write_minutes_for_recording(job_id)  # the pipeline reaching its minutes stage after a human wrote some
    assert load_job(job_id).minutes_markdown == "Notes before indexing\n"
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Document.transcription_job_id == job_id)) == 0


def test_offline_topics_are_subjects_not_meeting_filler() -> None:
    said = [
        ("Ann", "Okay, first item on the agenda is the budget for next quarter."),
        ("Ben", "The marketing budget is 120 thousand dollars, the same as last quarter."),
        ("Ann", "Next item: the hiring plan. We need two engineers next quarter."),
        ("Ben", "The hiring plan fits the budget if the contractors leave in June."),
        ("Cy", "Action item for Ben: send the budget spreadsheet to finance by Friday."),
        ("Ann", "Next steps: Cy will book the offsite venue next week."),
        ("Cy", "What about the travel budget for the offsite?"),
        ("Ann", "We agreed to cap the travel budget at ten thousand dollars."),
    ]
    pieces = [TranscriptPiece(5.0 * i, 5.0 * i + 5, text, speaker) for i, (speaker, text) in enumerate(said)]
    topics = [topic.lower() for topic in extractive_minutes(pieces).topics]
    assert topics[:2] == ["budget", "hiring plan"]
    words = set(" ".join(topics).split())
    assert not words & {"item", "next", "steps", "action", "agenda", "first", "thousand", "dollars"}
