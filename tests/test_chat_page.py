"""The chat page under Streamlit's AppTest: ask, see the cited answer, rate it, manage chats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from core.access.rbac import Actor
from core.ai.hashing import hashing_embed
from core.chat import list_chats, list_messages
from core.platform.config import get_settings
from tests.conftest import signed_in
from tests.retrieval_corpus import build_corpus
from ui import session_keys

PAGE = Path(__file__).resolve().parent.parent / "pages" / "chat.py"


# No recorded embedding space during each test (offline and fake-server vectors are both
# hashing vectors here), the session's space back afterwards.
pytest_plugins = ["tests.recording_fixtures"]
pytestmark = pytest.mark.usefixtures("own_embedding_space")


def _embed(texts: Any) -> list[list[float]]:
    return hashing_embed(list(texts), get_settings().embedding_dim).tolist()  # type: ignore[no-any-return]


def _page(actor: Actor) -> AppTest:
    app = AppTest.from_file(str(PAGE), default_timeout=30)
    signed_in(app, actor)
    return app


def test_ask_and_rate_on_the_page(member: Actor, offline_provider: Any) -> None:
    build_corpus(_embed, uploaded_by=member.id)
    app = _page(member).run()
    assert not app.exception
    assert any("Offline mode" in info.value for info in app.info)

    app.chat_input[0].set_value("When is the office move to Harbour Street?").run()
    assert not app.exception
    (chat,) = list_chats(actor=member)
    _question, answer = list_messages(actor=member, chat_id=chat.id)
    assert "14th of October" in answer.content and answer.sources
    assert app.session_state[session_keys.ACTIVE_CHAT_ID] == chat.id
    assert any("14th of October" in markdown.value for markdown in app.markdown)
    assert any(e.label.startswith("Sources (") for e in app.expander)

    # A transcript source offers a jump to the recording.
    assert any(button.label == "3:21" for button in app.button)
    app.button(key="regenerate").click().run()
    assert not app.exception
    assert len(list_messages(actor=member, chat_id=chat.id)) == 2


def test_chats_are_listed_searchable_and_the_last_one_opens(make_user: Any, offline_provider: Any) -> None:
    from core.chat import create_chat

    alice, bob = make_user(), make_user()
    older = create_chat(actor=alice, title="Alice's planning questions")
    latest = create_chat(actor=alice, title="Alice's hiring questions")
    create_chat(actor=bob, title="Bob's secret chat")

    # A new session opens the chat used last, instead of an empty page.
    app = _page(alice).run()
    assert not app.exception
    assert app.title[0].value == "Alice's hiring questions"
    assert app.session_state[session_keys.ACTIVE_CHAT_ID] == latest.id

    # The chat bar in the page (not only the sidebar) offers every own chat by title,
    # in a box that searches as one types; the sidebar lists the recent ones.
    (bar,) = [box for box in app.selectbox if box.label.startswith("Your chats")]
    assert bar.label == "Your chats (2)" and bar.options[0].startswith("Alice's hiring questions · ")
    assert not any("Bob" in option for option in bar.options)
    assert app.sidebar.radio[0].label == "Recent chats"
    assert app.sidebar.radio[0].options == ["Alice's hiring questions", "Alice's planning questions"]

    bar.set_value(older.id).run()
    assert app.title[0].value == "Alice's planning questions"
    app.sidebar.radio[0].set_value(latest.id).run()
    assert app.session_state[session_keys.ACTIVE_CHAT_ID] == latest.id

    # "New chat" opens an empty page; no chat row exists until the first question.
    app.button(key="chat_new").click().run()
    assert app.title[0].value == "Ask the knowledge base"
    assert len(list_chats(actor=alice)) == 2


def test_a_thumbs_down_is_said_in_words(member: Actor, offline_provider: Any) -> None:
    build_corpus(_embed, uploaded_by=member.id)
    app = _page(member).run()
    app.chat_input[0].set_value("When is the office move to Harbour Street?").run()
    (chat,) = list_chats(actor=member)
    answer = list_messages(actor=member, chat_id=chat.id)[-1]
    app.feedback(key=f"rating_{answer.id}").set_value(0).run()
    assert not app.exception
    assert list_messages(actor=member, chat_id=chat.id)[-1].my_rating == "bad"
    assert any("You marked this answer not helpful." in markdown.value for markdown in app.markdown)
    app = _page(member).run()  # and still says so in a new session
    assert any("You marked this answer not helpful." in markdown.value for markdown in app.markdown)


def test_an_answer_whose_page_run_was_interrupted_is_stored_and_shown(member: Actor, offline_provider: Any) -> None:
    """A rerun (a click, leaving the page) stops the script run, not the answer: its own
    thread stores it, and opening the chat again shows it with its sources."""
    from core.chat import answer_question, create_chat
    from ui.answer_in_progress import AnswerInProgress

    build_corpus(_embed, uploaded_by=member.id)
    chat = create_chat(actor=member)
    # What the page does on a question, with nobody following the stream afterwards.
    answer = AnswerInProgress(
        answer_question(
            actor=member, chat_id=chat.id, question="When is the office move to the Harbour Street building?"
        )
    )
    assert answer.wait(timeout=30)
    assert answer.error is None
    _question, stored = list_messages(actor=member, chat_id=chat.id)
    assert "Harbour Street" in stored.content and stored.sources

    app = _page(member)
    app.session_state[session_keys.ACTIVE_CHAT_ID] = chat.id
    app.session_state[session_keys.ANSWERS_IN_PROGRESS] = {chat.id: answer}
    app.run()
    assert not app.exception
    assert any("Harbour Street" in markdown.value for markdown in app.markdown)
    assert app.session_state[session_keys.ANSWERS_IN_PROGRESS] == {}
    assert len(list_messages(actor=member, chat_id=chat.id)) == 2  # shown once, stored once


def test_deleting_the_open_chat_removes_it_and_says_so(member: Actor, offline_provider: Any) -> None:
    """delete_chat returns None: the page must still see that it worked (run_action's ok)."""
    from core.chat import create_chat

    keep = create_chat(actor=member, title="Budget questions")
    doomed = create_chat(actor=member, title="Scratch chat")
    app = _page(member)
    app.session_state[session_keys.ACTIVE_CHAT_ID] = doomed.id
    app.run()
    assert not app.exception
    assert app.session_state[session_keys.ACTIVE_CHAT_ID] == doomed.id

    app.button(key="chat_delete").click().run()
    assert not app.exception
    assert [chat.id for chat in list_chats(actor=member)] == [keep.id]
    assert app.session_state[session_keys.ACTIVE_CHAT_ID] is None
    assert [success.value for success in app.success] == ["Chat deleted."]
    listed = [option for radio in app.sidebar.radio for option in radio.options]
    assert "Budget questions" in listed and "Scratch chat" not in listed


def test_chats_with_the_same_title_stay_distinct_choices(member: Actor, offline_provider: Any) -> None:
    from core.chat import create_chat

    first = create_chat(actor=member, title="Budget")
    second = create_chat(actor=member, title="Budget")
    app = _page(member).run()
    recent = app.sidebar.radio[0]
    assert len(set(recent.options)) == 2 and all(option.startswith("Budget") for option in recent.options)
    assert app.session_state[session_keys.ACTIVE_CHAT_ID] == second.id
    recent.set_value(first.id).run()
    assert app.session_state[session_keys.ACTIVE_CHAT_ID] == first.id
    assert app.sidebar.radio[0].value == first.id
