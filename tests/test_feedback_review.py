"""Feedback review: the table, filters, accept/reject, trusted corrections, exports."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from core.access.rbac import Actor
from core.ai import get_provider
from core.chat.corrections import trusted_corrections
from core.chat.feedback_review import (
    FeedbackFilters,
    export_feedback_csv,
    export_feedback_xlsx,
    feedback_raters,
    list_feedback,
    review_feedback,
    source_label,
)
from core.chat.retrieval import embed_question
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.models import AuditLog, MessageFeedback
from tests.admin_data import audit_actions_for, make_chat, make_feedback, set_fields
from tests.conftest import unique

SOURCES = [
    {"number": 1, "kind": "chunk", "label": "budget-2026.pdf, page 4", "excerpt": "Q3: 10,000 EUR", "page": 4},
    {
        "number": 2,
        "kind": "chunk",
        "label": "standup.mp3 transcript, 2:05",
        "excerpt": "budget",
        "start_seconds": 125.0,
    },
]


def _scenario(make_user: Callable[..., Actor]) -> tuple[Actor, int, int, str]:
    """A member's chat with two turns; the second answer gets a thumbs down with a correction."""
    rater = make_user()
    topic = unique("project")
    _, (first_answer, second_answer) = make_chat(
        rater.id,
        [
            ("Hello there", "Hi! Ask me about your documents."),
            (f"What budget did we approve for {topic} in Q3?", "The Q3 budget is 10,000 EUR [1]."),
        ],
        sources=SOURCES,
    )
    make_feedback(first_answer, rater.id, rating="good")
    bad = make_feedback(
        second_answer, rater.id, rating="bad", correction=f"The approved Q3 budget for {topic} is 12,500 EUR."
    )
    return rater, bad, second_answer, topic


def test_the_table_shows_question_answer_correction_user_and_sources(
    admin: Actor, make_user: Callable[..., Actor]
) -> None:
    rater, bad, answer_id, topic = _scenario(make_user)
    rows = list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id))
    assert [row.rating for row in rows] == ["bad", "good"]  # newest first
    item = rows[0]
    assert item.id == bad and item.message_id == answer_id
    assert item.question == f"What budget did we approve for {topic} in Q3?"  # the turn before, not the first
    assert item.answer == "The Q3 budget is 10,000 EUR [1]."
    assert item.correction is not None and "12,500" in item.correction
    assert item.username == rater.username
    assert item.sources == ["[1] budget-2026.pdf, page 4", "[2] standup.mp3 transcript, 2:05"]
    assert (item.review_status, item.reviewer, item.trusted) == ("new", None, False)
    assert rows[1].question == "Hello there" and rows[1].correction is None
    assert (rater.id, rater.username) in feedback_raters(actor=admin)


def test_filters(admin: Actor, make_user: Callable[..., Actor]) -> None:
    rater, bad, _, _ = _scenario(make_user)
    mine = FeedbackFilters(user_id=rater.id)
    assert [r.id for r in list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id, rating="bad"))] == [bad]
    assert len(list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id, rating="good"))) == 1
    assert [
        r.id for r in list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id, with_correction=True))
    ] == [bad]
    review_feedback(actor=admin, feedback_id=bad, status="rejected", note="Wrong quarter.")
    assert [
        r.id for r in list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id, review_status="rejected"))
    ] == [bad]
    assert len(list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id, review_status="new"))) == 1
    # Dates are UTC days, inclusive.
    set_fields(MessageFeedback, bad, created_at=datetime.now(UTC) - timedelta(days=10))
    today = datetime.now(UTC).date()
    recent = list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id, since=today - timedelta(days=1)))
    assert bad not in {r.id for r in recent} and len(recent) == 1
    old_day = today - timedelta(days=10)
    old = list_feedback(actor=admin, filters=FeedbackFilters(user_id=rater.id, since=old_day, until=old_day))
    assert [r.id for r in old] == [bad]
    assert len(list_feedback(actor=admin, filters=mine)) == 2
    with pytest.raises(InvalidInput):
        list_feedback(actor=admin, filters=FeedbackFilters(rating="meh"))


def test_accepting_a_correction_makes_it_trusted_context(admin: Actor, make_user: Callable[..., Actor]) -> None:
    rater, bad, _, topic = _scenario(make_user)
    question = f"What budget did we approve for {topic} in Q3?"

    reviewed = review_feedback(actor=admin, feedback_id=bad, status="accepted", note="Checked with finance.")

    assert (reviewed.review_status, reviewed.reviewer, reviewed.reviewer_note) == (
        "accepted",
        admin.username,
        "Checked with finance.",
    )
    assert reviewed.reviewed_at is not None and reviewed.trusted
    with session_scope() as session:
        row = session.get(MessageFeedback, bad)
        assert row is not None and row.question_embedding is not None
        stored = np.asarray(row.question_embedding)
    expected = np.asarray(embed_question(get_provider(), question=question, user_id=admin.id))
    assert np.allclose(stored, expected, atol=1e-6)
    assert audit_actions_for("feedback", bad) == [("feedback.review", admin.username)]

    # A later, differently worded question about the same thing finds the correction.
    later = embed_question(get_provider(), question=f"Q3 budget approved for {topic}?", user_id=rater.id)
    with session_scope() as session:
        found = trusted_corrections(session, question_embedding=later, limit=5)
    assert bad in {c.feedback_id for c in found}

    # Rejecting withdraws it at once.
    assert not review_feedback(actor=admin, feedback_id=bad, status="rejected", note="Superseded.").trusted
    with session_scope() as session:
        assert bad not in {c.feedback_id for c in trusted_corrections(session, question_embedding=later, limit=5)}


def test_review_rules(admin: Actor, member: Actor, make_user: Callable[..., Actor]) -> None:
    _, bad, _, _ = _scenario(make_user)
    with pytest.raises(PermissionDenied):
        review_feedback(actor=member, feedback_id=bad, status="accepted")
    with pytest.raises(PermissionDenied):
        list_feedback(actor=member)
    with pytest.raises(PermissionDenied):
        export_feedback_csv(actor=member)
    with pytest.raises(InvalidInput):
        review_feedback(actor=admin, feedback_id=bad, status="maybe")
    with pytest.raises(InvalidInput):
        review_feedback(actor=admin, feedback_id=bad, status="rejected", note="x" * 5000)
    with pytest.raises(NotFound):
        review_feedback(actor=admin, feedback_id=2_000_000_000, status="accepted")
    assert audit_actions_for("feedback", bad) == []
    # A thumbs-up without a correction can be accepted; there is nothing to embed.
    good_rows = list_feedback(actor=admin, filters=FeedbackFilters(rating="good", limit=1))
    accepted = review_feedback(actor=admin, feedback_id=good_rows[0].id, status="accepted")
    assert accepted.review_status == "accepted" and not accepted.trusted


def test_exports_open_in_pandas_and_openpyxl_with_formulas_defused(
    admin: Actor, make_user: Callable[..., Actor]
) -> None:
    rater, bad, _, _ = _scenario(make_user)
    set_fields(MessageFeedback, bad, correction='=HYPERLINK("http://evil.example","click")')
    filters = FeedbackFilters(user_id=rater.id)

    frame = pd.read_csv(io.BytesIO(export_feedback_csv(actor=admin, filters=filters)))
    assert sorted(frame["rating"]) == ["bad", "good"]
    assert {"question", "answer", "rating", "correction", "username", "created_at", "sources", "review_status"} <= set(
        frame.columns
    )
    bad_row = frame[frame["id"] == bad].iloc[0]
    assert bad_row["correction"].startswith("'=HYPERLINK")
    assert "budget-2026.pdf" in bad_row["sources"]

    workbook = load_workbook(io.BytesIO(export_feedback_xlsx(actor=admin, filters=filters)))
    sheet = workbook["Feedback"]
    header = [cell.value for cell in sheet[1]]
    rows = [dict(zip(header, (cell for cell in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert len(rows) == 2
    cell = next(row["correction"] for row in rows if row["id"].value == bad)
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")  # text, not a formula
    created = next(row["created_at"].value for row in rows if row["id"].value == bad)
    assert isinstance(created, datetime) and created.date() <= date.today() + timedelta(days=1)
    frame_x = pd.read_excel(io.BytesIO(export_feedback_xlsx(actor=admin, filters=filters)), engine="openpyxl")
    assert len(frame_x) == 2
    with session_scope() as session:
        exports = session.scalars(
            select(AuditLog.details).where(AuditLog.action == "feedback.export", AuditLog.actor_id == admin.id)
        ).all()
    assert sorted(details["format"] for details in exports) == ["csv", "xlsx", "xlsx"]
    assert source_label("plain") == "plain" and source_label({"filename": "notes.md"}) == "notes.md"
