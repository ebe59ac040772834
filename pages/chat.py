"""Chat: ask the knowledge base; answers stream in with numbered, checked citations.

UI only: every action is a core.chat.answers / core.chat.feedback call. Chats belong to their owner
(checked in core); the active chat's id lives in session state.
"""

from __future__ import annotations

from datetime import date

import streamlit as st
from core.access.rbac import Actor
from core.ai import is_offline
from core.chat.answers import (
    ChatMessageView,
    ChatSummary,
    Source,
    answer_question,
    create_chat,
    delete_chat,
    list_chats,
    list_messages,
    regenerate_last_answer,
    rename_chat,
)
from core.chat.feedback import rate_message
from core.chat.retrieval import RetrievalFilters
from core.documents import list_documents
from core.platform.errors import QuorumError
from core.platform.models import DOCUMENT_TYPES
from ui import session_keys
from ui.answer_in_progress import AnswerInProgress
from ui.common import current_actor, format_seconds, run_action

TYPE_LABELS = {
    "general_document": "Documents",
    "full_transcript": "Transcripts",
    "meeting_minutes": "Meeting minutes",
}
RATINGS = ("bad", "good")  # st.feedback("thumbs"): 0 is thumbs down, 1 is thumbs up
TRANSCRIPTS_PAGE = "pages/transcripts.py"


def _flash(message: str) -> None:
    st.session_state[session_keys.CHAT_FLASH] = message
    st.rerun()


def _active_chat(chats: list[ChatSummary]) -> ChatSummary | None:
    wanted = st.session_state.get(session_keys.ACTIVE_CHAT_ID)
    return next((chat for chat in chats if chat.id == wanted), None)


def _select(chat_id: int | None) -> None:
    st.session_state[session_keys.ACTIVE_CHAT_ID] = chat_id


def _sidebar(actor: Actor, chats: list[ChatSummary], active: ChatSummary | None) -> None:
    with st.sidebar:
        st.subheader("Your chats")
        if st.button("New chat", icon=":material/add_comment:", width="stretch"):
            chat = run_action(lambda: create_chat(actor=actor))
            if chat:
                _select(chat.id)
                st.rerun()
        for chat in chats:
            current = active is not None and chat.id == active.id
            st.button(
                chat.title,
                key=f"chat_open_{chat.id}",
                type="primary" if current else "tertiary",
                width="stretch",
                on_click=_select,
                args=(chat.id,),
            )
        if active is None:
            return
        with st.popover("Rename or delete", icon=":material/edit:", width="stretch"):
            title = st.text_input("Title", value=active.title, key=f"chat_title_{active.id}", max_chars=80)
            if st.button("Rename", key="chat_rename"):
                renamed = run_action(lambda: rename_chat(actor=actor, chat_id=active.id, title=title))
                if renamed is not None:
                    _flash("Chat renamed.")
            st.divider()
            if st.button("Delete this chat", type="primary", icon=":material/delete:", key="chat_delete"):
                if run_action(lambda: delete_chat(actor=actor, chat_id=active.id)) is None:
                    return
                _select(None)
                _flash("Chat deleted.")


def _filters(actor: Actor) -> RetrievalFilters | None:
    with st.expander("Search filters", icon=":material/filter_list:"):
        types = st.multiselect(
            "Kinds of sources",
            DOCUMENT_TYPES,
            format_func=lambda value: TYPE_LABELS.get(value, value),
            key=session_keys.CHAT_FILTER_TYPES,
            placeholder="All kinds",
        )
        documents = run_action(lambda: list_documents(actor=actor, limit=500)) or []
        names = {d.id: d.filename for d in documents if d.searchable}
        chosen = st.multiselect(
            "Only these documents",
            list(names),
            format_func=lambda value: names.get(value, str(value)),
            key=session_keys.CHAT_FILTER_DOCUMENTS,
            placeholder="All documents",
        )
        dates = st.date_input("Uploaded between", value=[], key=session_keys.CHAT_FILTER_DATES)
    date_from = date_to = None
    if isinstance(dates, tuple) and dates:
        date_from = dates[0]
        date_to = dates[1] if len(dates) > 1 else dates[0]
    elif isinstance(dates, date):
        date_from = date_to = dates
    try:
        return RetrievalFilters(
            document_types=tuple(types), document_ids=tuple(chosen), date_from=date_from, date_to=date_to
        )
    except QuorumError as error:
        st.error(str(error))
        return None


def _source_line(source: Source, message_id: int) -> None:
    if source.kind == "correction":
        st.markdown(f"**[{source.number}]** :green-badge[Reviewed correction] {source.excerpt}")
        return
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.markdown(f"**[{source.number}]** {source.label}", help=source.excerpt[:600])
    if (
        source.is_recording_moment
        and source.transcription_job_id is not None
        and right.button(
            format_seconds(source.start_seconds),
            key=f"seek_{message_id}_{source.number}",
            icon=":material/play_arrow:",
            help="Open the recording at this moment",
        )
    ):
        st.session_state[session_keys.SELECTED_JOB_ID] = source.transcription_job_id
        st.session_state[session_keys.SEEK_SECONDS] = float(source.start_seconds or 0.0)
        st.switch_page(
            TRANSCRIPTS_PAGE,
            query_params={"job": str(source.transcription_job_id), "t": str(int(source.start_seconds or 0))},
        )


def _feedback(actor: Actor, message: ChatMessageView) -> None:
    default = RATINGS.index(message.my_rating) if message.my_rating in RATINGS else None
    left, right = st.columns([1, 4], vertical_alignment="center")
    with left:
        choice = st.feedback("thumbs", key=f"rating_{message.id}", default=default)
    if choice is not None and RATINGS[choice] != message.my_rating:
        run_action(
            lambda: rate_message(
                actor=actor, message_id=message.id, rating=RATINGS[choice], correction=message.my_correction
            ),
            success="Thanks for the feedback.",
        )
    with right.popover("Suggest a correction", icon=":material/rate_review:"):
        text = st.text_area(
            "What should the answer have said?",
            value=message.my_correction or "",
            key=f"correction_{message.id}",
            help="A reviewer checks corrections; accepted ones are offered to later, similar questions.",
        )
        if st.button("Save correction", key=f"save_correction_{message.id}"):
            rating = RATINGS[choice] if choice is not None else "bad"
            saved = run_action(lambda: rate_message(actor=actor, message_id=message.id, rating=rating, correction=text))
            if saved is not None:
                _flash("Correction saved; a reviewer will look at it.")


def _answers() -> dict[int, AnswerInProgress]:
    answers: dict[int, AnswerInProgress] = st.session_state.setdefault(session_keys.ANSWERS_IN_PROGRESS, {})
    return answers


def _follow(chat_id: int) -> None:
    """Stream the chat's answer in progress; show the stored chat (with sources) when it is done.

    The answer is written by its own thread, so a rerun or leaving the page stops only
    this view of it; coming back resumes the view from the text so far.
    """
    answer = _answers()[chat_id]
    with st.chat_message("assistant"):
        st.write_stream(answer.follow())
        _answers().pop(chat_id, None)
        if answer.error is not None:
            st.error(f"{answer.error} Use “Regenerate” to try again.", icon=":material/error:")
            st.stop()
    st.rerun()


actor = current_actor()
flash = st.session_state.pop(session_keys.CHAT_FLASH, None)
if flash:
    st.toast(flash, icon=":material/check_circle:")

chats = run_action(lambda: list_chats(actor=actor)) or []
active = _active_chat(chats)
_sidebar(actor, chats, active)

st.title(active.title if active else "Ask the knowledge base")
if is_offline():
    st.info(
        "Offline mode: answers quote the most relevant passages instead of writing new text.",
        icon=":material/cloud_off:",
    )
filters = _filters(actor)

active_id = active.id if active else 0
pending = _answers().get(active_id)
if pending is not None and pending.finished and pending.error is None:
    _answers().pop(active_id)  # stored: the messages below include it
    pending = None
messages = (run_action(lambda: list_messages(actor=actor, chat_id=active_id)) or []) if active_id else []
if not messages:
    st.caption("Ask about your documents, transcripts and meeting minutes. Every answer cites its sources.")
last_assistant = max((m.id for m in messages if m.role == "assistant"), default=None)
for message in messages:
    with st.chat_message(message.role):
        st.markdown(message.content)
        if message.role != "assistant":
            continue
        if message.sources:
            with st.expander(f"Sources ({len(message.sources)})", expanded=message.id == last_assistant):
                for source in message.sources:
                    _source_line(source, message.id)
        _feedback(actor, message)

if (
    active is not None
    and messages
    and pending is None
    and st.button("Regenerate the last answer", key="regenerate", icon=":material/refresh:", disabled=filters is None)
):
    chat_id = active.id
    regenerated = run_action(lambda: regenerate_last_answer(actor=actor, chat_id=chat_id, filters=filters))
    if regenerated is not None:
        _answers()[chat_id] = AnswerInProgress(regenerated)
        _follow(chat_id)

question = st.chat_input(
    "Answering…" if pending is not None else "Ask a question",
    key="chat_question",
    disabled=filters is None or pending is not None,
)
if pending is not None:
    _follow(active_id)
elif question and filters is not None:
    if active is None:
        created = run_action(lambda: create_chat(actor=actor))
        if created is None:
            st.stop()
        active = created
        _select(created.id)
    chat_id, asked = active.id, question
    with st.chat_message("user"):
        st.markdown(asked)
    stream = run_action(lambda: answer_question(actor=actor, chat_id=chat_id, question=asked, filters=filters))
    if stream is not None:
        _answers()[chat_id] = AnswerInProgress(stream)
        _follow(chat_id)
