"""Home: a signed-in user's overview of their knowledge base and work in progress."""

from __future__ import annotations

from datetime import date

import streamlit as st
from core.admin import home_overview
from core.meetings import my_open_action_items
from ui.common import current_actor, format_seconds, run_action

actor = current_actor()
overview = home_overview(actor=actor)

st.title(f"Welcome, {actor.display_name}")
st.caption("Quorum turns your meetings and documents into a searchable, chat-able knowledge base.")

columns = st.columns(4)
columns[0].metric("Documents you can search", overview.documents_visible)
columns[1].metric("Meetings transcribed", overview.meetings_completed)
columns[2].metric("Audio transcribed", format_seconds(overview.audio_hours * 3600))
columns[3].metric("Your chats", overview.chats)

if overview.in_progress:
    st.subheader("In progress")
    for item in overview.in_progress:
        st.progress(item.state.progress, text=f"{item.kind}: {item.name} — {item.state.stage_label}")

if actor.can("read_transcripts"):
    st.subheader("Your open action items")
    mine = run_action(lambda: my_open_action_items(actor=actor)).value or []
    if mine:
        today = date.today()
        st.dataframe(
            [
                {
                    "Task": item.task,
                    "Due": ("Overdue · " if item.is_overdue(today) else "")
                    + (item.due_date.isoformat() if item.due_date else (item.due_text or "")),
                    "Meeting": item.meeting,
                    "Date": item.meeting_date.strftime("%Y-%m-%d"),
                }
                for item in mine
            ],
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("Nothing assigned to you in the meetings' minutes.")
    st.page_link("pages/action_items.py", label="All action items", icon=":material/checklist:")

st.subheader("Recently added")
if overview.recent:
    st.dataframe(
        [
            {
                "Name": item.name,
                "Type": item.kind,
                "Status": item.state.display_status,
                "Added": item.created_at.strftime("%Y-%m-%d %H:%M"),
                "Length": format_seconds(item.duration_seconds) if item.duration_seconds else "",
            }
            for item in overview.recent
        ],
        hide_index=True,
        width="stretch",
    )
else:
    st.info("Nothing here yet. Open the **Ingestion Hub** to upload documents or meeting recordings.")

st.subheader("Start here")
shortcuts = [
    (
        "pages/ingestion_hub.py",
        "Upload documents and recordings",
        ":material/upload:",
        actor.can("ingest_documents") or actor.can("transcribe_audio"),
    ),
    ("pages/chat.py", "Ask the knowledge base", ":material/chat:", actor.can("use_chat")),
    ("pages/transcripts.py", "Read transcripts and minutes", ":material/graphic_eq:", actor.can("read_transcripts")),
]
for column, (page, label, icon, allowed) in zip(st.columns(3), shortcuts, strict=True):
    if allowed:
        column.page_link(page, label=label, icon=icon)
