"""The Admin page in headless Chromium: every tab renders with data, and a review is saved."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from core.access.rbac import Actor
from core.platform.db import session_scope
from core.platform.models import MessageFeedback, UsageRecord
from tests.admin_data import get_row, make_chat, make_document, make_feedback, make_recording
from tests.conftest import unique
from tests.e2e.conftest import LiveApp, screenshot, sign_in

TABS = ["Users", "Roles & permissions", "Feedback review", "Jobs", "Usage", "Audit log"]


def _no_exception(page: Any) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()


def test_admin_tabs_in_browser(live_app: LiveApp, page: Any, admin: Actor, member: Actor) -> None:
    topic = unique("launch")
    _, (answer,) = make_chat(
        member.id,
        [(f"When is the {topic} date?", "It is on May 3 [1].")],
        sources=[{"number": 1, "kind": "chunk", "label": "plan.pdf, page 2", "excerpt": "May 3", "page": 2}],
    )
    feedback = make_feedback(answer, member.id, rating="bad", correction=f"The {topic} moved to May 10.")
    make_recording(member.id, status="FAILED", error="The audio could not be decoded.")
    make_document(member.id, status="COMPLETED", started_at=datetime.now(UTC), indexed_at=datetime.now(UTC))
    with session_scope() as session:
        session.add(
            UsageRecord(
                purpose="chat", provider="openai", model="gpt-4o-mini", input_tokens=900, output_tokens=120,
                cost_usd=0.01, user_id=member.id,
            )
        )  # fmt: skip

    sign_in(page, live_app, admin)
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("heading", name="Admin").wait_for()
    for tab in TABS:
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(700)
        _no_exception(page)
        screenshot(page, "admin-" + tab.lower().replace(" & ", "-").replace(" ", "-"))

    page.get_by_role("tab", name="Feedback review").click()
    # Other tests may have left newer feedback: pick ours in the review select box.
    page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Feedback", exact=True)).click()
    page.get_by_role("option", name=re.compile(rf"^#{feedback} ")).click()
    page.get_by_test_id("stAlert").filter(has_text=f"The {topic} moved to May 10.").wait_for()
    page.get_by_test_id("stRadio").get_by_text("accepted", exact=True).click()
    page.get_by_role("button", name="Save review").click()
    page.get_by_text(f"Feedback #{feedback} marked accepted.").wait_for()
    row = get_row(MessageFeedback, feedback)
    assert row.review_status == "accepted" and row.question_embedding is not None
