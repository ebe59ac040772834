"""Chat: ask the knowledge base; answers stream in with numbered, checked citations.

UI only: every action is a core.chat.answers / core.chat.feedback call. Chats belong to their owner
(checked in core); the active chat's id lives in session state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import streamlit as st
from core.access import Actor
from core.ai import is_offline
from core.chat import (
    ChatMessageView,
    ChatSummary,
    RetrievalFilters,
    Source,
    answer_question,
    create_chat,
    delete_chat,
    list_chats,
    list_messages,
    rate_message,
    regenerate_last_answer,
    rename_chat,
)
from core.documents import list_documents
from core.platform.errors import QuorumError
from core.platform.statuses import DOCUMENT_TYPES, MessageRole, Rating
from ui import session_keys, untrusted
from ui.answer_in_progress import AnswerInProgress
from ui.common import current_actor, date_range_input, flash_and_rerun, format_seconds, plain, run_action, show_flash

TYPE_LABELS = {
    "general_document": "Documents",
    "full_transcript": "Transcripts",
    "meeting_minutes": "Meeting minutes",
}
RATINGS = ("bad", "good")  # st.feedback("thumbs"): 0 is thumbs down, 1 is thumbs up
RATED = {
    "bad": "Marked not helpful. Thank you: reviewers read every such answer.",
    "good": "Marked helpful. Thank you.",
}
TRANSCRIPTS_PAGE = "pages/transcripts.py"
RECENT_CHATS = 12  # listed in the sidebar; the chat bar searches all of them


def _active_chat(chats: list[ChatSummary]) -> ChatSummary | None:
    """The chat open in this session; a new session opens the most recent one (chats come
    most recently active first). After "New chat" or a delete, no chat is open until the
    first question creates one."""
    if session_keys.ACTIVE_CHAT_ID not in st.session_state and chats:
        _select(chats[0].id)
    wanted = st.session_state.get(session_keys.ACTIVE_CHAT_ID)
    return next((chat for chat in chats if chat.id == wanted), None)


def _select(chat_id: int | None) -> None:
    st.session_state[session_keys.ACTIVE_CHAT_ID] = chat_id


def _when(chat: ChatSummary) -> str:
    return chat.updated_at.astimezone().strftime("%b %d, %H:%M")


def _distinct_labels(chats: list[ChatSummary], *, with_time: bool) -> dict[int, str]:
    """A label per chat that no other chat shares: the browser sends a picker's choice back as
    its label, so two chats both called "Budget" would be one choice. Shared titles get the
    time, then the id."""

    def unique(labels: dict[int, str], extra: Callable[[int], str]) -> dict[int, str]:
        counts = Counter(labels.values())
        return {chat_id: label + extra(chat_id) if counts[label] > 1 else label for chat_id, label in labels.items()}

    by_id = {chat.id: chat for chat in chats}
    labels = {chat.id: chat.title + (f" · {_when(chat)}" if with_time else "") for chat in chats}
    if not with_time:
        labels = unique(labels, lambda chat_id: f" · {_when(by_id[chat_id])}")
    return unique(labels, lambda chat_id: f" (#{chat_id})")


def _open_chosen(widget_key: str) -> None:
    """A chat picker's callback: open the chat chosen in it."""
    chosen = st.session_state.get(widget_key)
    if chosen is not None:
        _select(chosen)


def _chat_bar(actor: Actor, chats: list[ChatSummary], active: ChatSummary | None) -> None:
    """Find and open any chat by typing part of its title, start a new one, or manage this one.

    In the page itself, not only in the sidebar, which narrow screens fold away.
    """
    labels = _distinct_labels(chats, with_time=True)
    pick_col, new_col, manage_col = st.columns([4, 1, 1], vertical_alignment="bottom")
    # Keyed and set from the open chat on every run: a picker's own memory would disagree
    # with the chat opened elsewhere (the other picker, a new chat, a delete).
    st.session_state[session_keys.CHAT_PICKER] = active.id if active is not None else None
    pick_col.selectbox(
        f"Your chats ({len(chats)})",
        options=list(labels),
        format_func=labels.__getitem__,
        placeholder="Type to search your chats by title" if chats else "No chats yet",
        disabled=not chats,
        key=session_keys.CHAT_PICKER,
        on_change=_open_chosen,
        args=(session_keys.CHAT_PICKER,),
    )
    if new_col.button("New chat", icon=":material/add_comment:", width="stretch", key="chat_new"):
        _select(None)  # the first question creates it: no empty chats piling up
        st.rerun()
    if active is None:
        return
    with manage_col.popover("Manage", icon=":material/edit:", width="stretch"):
        title = st.text_input("Title", value=active.title, key=f"chat_title_{active.id}", max_chars=80)
        renamed = st.button("Rename", key="chat_rename")
        if renamed and run_action(lambda: rename_chat(actor=actor, chat_id=active.id, title=title)).ok:
            flash_and_rerun("Chat renamed.")
        st.divider()
        deleting = st.button("Delete this chat", type="primary", icon=":material/delete:", key="chat_delete")
        if deleting and run_action(lambda: delete_chat(actor=actor, chat_id=active.id)).ok:
            _select(None)
            flash_and_rerun("Chat deleted.")


def _sidebar(chats: list[ChatSummary], active: ChatSummary | None) -> None:
    """The most recent chats as a list in the sidebar; the chat bar finds the older ones."""
    recent = [chat.id for chat in chats[:RECENT_CHATS]]
    if not recent:
        return
    titles = _distinct_labels(chats[:RECENT_CHATS], with_time=False)
    st.session_state[session_keys.CHAT_RECENT] = active.id if active is not None and active.id in recent else None
    with st.sidebar:
        st.radio(
            "Recent chats",
            options=recent,
            format_func=titles.__getitem__,
            key=session_keys.CHAT_RECENT,
            on_change=_open_chosen,
            args=(session_keys.CHAT_RECENT,),
        )


def _filters(actor: Actor) -> RetrievalFilters | None:
    with st.expander("Search filters", icon=":material/filter_list:"):
        types = st.multiselect(
            "Kinds of sources",
            DOCUMENT_TYPES,
            format_func=lambda value: TYPE_LABELS.get(value, value),
            key=session_keys.CHAT_FILTER_TYPES,
            placeholder="All kinds",
        )
        documents = run_action(lambda: list_documents(actor=actor, limit=500)).value or []
        names = {d.id: d.filename for d in documents if d.searchable}
        chosen = st.multiselect(
            "Only these documents",
            list(names),
            format_func=lambda value: names.get(value, str(value)),
            key=session_keys.CHAT_FILTER_DOCUMENTS,
            placeholder="All documents",
        )
        date_from, date_to = date_range_input("Uploaded between", key=session_keys.CHAT_FILTER_DATES)
    try:
        return RetrievalFilters(
            document_types=tuple(types), document_ids=tuple(chosen), date_from=date_from, date_to=date_to
        )
    except QuorumError as error:
        st.error(str(error))
        return None


def _source_line(source: Source, message_id: int) -> None:
    if source.kind == "correction":
        st.markdown(f"**[{source.number}]** :green-badge[Reviewed correction] {untrusted.plain(source.excerpt)}")
        return
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.markdown(f"**[{source.number}]** {untrusted.plain(source.label)}", help=untrusted.plain(source.excerpt[:600]))
    if source.quote:  # the sentence the answer took, said at the moment the play button opens
        left.caption(f"“{plain(source.quote)}”")
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
    thumbs, said, right = st.columns([1, 4, 2], vertical_alignment="center")
    with thumbs:
        choice = st.feedback("thumbs", key=f"rating_{message.id}", default=default)
    rating = RATINGS[choice] if choice is not None else None
    if rating is not None and rating != message.my_rating:
        chosen = rating
        run_action(
            lambda: rate_message(actor=actor, message_id=message.id, rating=chosen, correction=message.my_correction),
            success=RATED[chosen],
        )
    # The thumbs alone barely change colour when chosen: say in words what was recorded.
    if rating == Rating.BAD:
        hint = "" if message.my_correction else " Suggest a correction to help the reviewers."
        said.markdown(f":red-badge[:material/thumb_down: You marked this answer not helpful.]{hint}")
    elif rating == Rating.GOOD:
        said.markdown(":green-badge[:material/thumb_up: You marked this answer helpful.]")
    with right.popover("Suggest a correction", icon=":material/rate_review:"):
        text = st.text_area(
            "What should the answer have said?",
            value=message.my_correction or "",
            key=f"correction_{message.id}",
            help="A reviewer checks corrections; accepted ones are offered to later, similar questions.",
        )
        if st.button("Save correction", key=f"save_correction_{message.id}"):
            rating = RATINGS[choice] if choice is not None else "bad"
            if run_action(lambda: rate_message(actor=actor, message_id=message.id, rating=rating, correction=text)).ok:
                flash_and_rerun("Correction saved; a reviewer will look at it.")


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
        # Shown as it streams through the same rendering as stored answers: a model told by a
        # document to write an image of a URL must not make the browser fetch it even once.
        shown = st.empty()
        text = ""
        for piece in answer.follow():
            text += piece
            shown.markdown(untrusted.markdown(text) + " ▌")
        shown.markdown(untrusted.markdown(text))
        _answers().pop(chat_id, None)
        if answer.error is not None:
            st.error(f"{answer.error} Use “Regenerate” to try again.", icon=":material/error:")
            st.stop()
    st.rerun()


actor = current_actor()
show_flash()

chats = run_action(lambda: list_chats(actor=actor)).value or []
active = _active_chat(chats)
_sidebar(chats, active)

st.title(active.title if active else "Ask the knowledge base")
_chat_bar(actor, chats, active)
if is_offline():
    st.info(
        "Offline mode: answers quote the sentences of your documents that answer the question "
        "instead of writing new text.",
        icon=":material/cloud_off:",
    )
filters = _filters(actor)

active_id = active.id if active else 0
pending = _answers().get(active_id)
if pending is not None and pending.finished and pending.error is None:
    _answers().pop(active_id)  # stored: the messages below include it
    pending = None
messages = (run_action(lambda: list_messages(actor=actor, chat_id=active_id)).value or []) if active_id else []
if not messages:
    st.caption("Ask about your documents, transcripts and meeting minutes. Every answer cites its sources.")
last_assistant = max((m.id for m in messages if m.role == MessageRole.ASSISTANT), default=None)
for message in messages:
    with st.chat_message(message.role):
        st.markdown(untrusted.markdown(message.content))
        if message.role != MessageRole.ASSISTANT:
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
    regenerated = run_action(lambda: regenerate_last_answer(actor=actor, chat_id=chat_id, filters=filters)).value
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
        created = run_action(lambda: create_chat(actor=actor)).value
        if created is None:
            st.stop()
        active = created
        _select(created.id)
    chat_id, asked = active.id, question
    with st.chat_message("user"):
        st.markdown(untrusted.markdown(asked))
    stream = run_action(lambda: answer_question(actor=actor, chat_id=chat_id, question=asked, filters=filters)).value
    if stream is not None:
        _answers()[chat_id] = AnswerInProgress(stream)
        _follow(chat_id)
