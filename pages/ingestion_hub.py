"""Ingestion Hub: upload documents and recordings, and manage everything in the knowledge base.

UI only: every action is a core call. The table of content refreshes itself in a fragment
(only the table reruns) while anything is waiting or indexing.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from core.access import Actor
from core.documents import (
    SUPPORTED_DESCRIPTION,
    UPLOAD_PICKER_EXTENSIONS,
    DocumentInfo,
    delete_documents,
    document_chunks,
    download_document,
    list_documents,
    list_uploaders,
    reindex_document,
    retry_document,
    upload_documents,
)
from core.platform.config import get_settings
from core.platform.statuses import DOCUMENT_STATUSES, DOCUMENT_TYPES, DocumentStatus
from ui import page_access, session_keys, untrusted
from ui.auth_ui import recheck_account
from ui.common import (
    current_actor,
    date_range_input,
    flash_and_rerun,
    format_bytes,
    format_seconds,
    run_action,
    show_flash,
    visibility_input,
)

ACTIVE_REFRESH_SECONDS = 2
IDLE_REFRESH_SECONDS = 30
CHUNKS_SHOWN = 200
TYPE_LABELS = {"general_document": "Document", "full_transcript": "Transcript", "meeting_minutes": "Minutes"}
_OUTCOME_STYLE = {
    "accepted": (st.success, ":material/check_circle:"),
    "duplicate": (st.info, ":material/content_copy:"),
    "rejected": (st.error, ":material/block:"),
}


def _is_active(document: DocumentInfo) -> bool:
    return document.state.active


# --------------------------------------------------------------------------- upload


def render_document_upload(actor: Actor) -> None:
    """Choosing files is the whole action: they are checked, stored and queued for indexing at
    once, and one live message per file follows it until it is searchable (or says why not)."""
    if not actor.can("ingest_documents"):
        st.info("Your role cannot add documents (ingest_documents).", icon=":material/lock:")
        return
    settings = get_settings()
    visibility = visibility_input(
        "Who can find them", readers="everyone who reads documents", key="hub_document_visibility"
    )
    # A new key after each batch empties the uploader: the files are in the knowledge base
    # now, and leaving them in the box would suggest that something is still to be done.
    generation = st.session_state.get(session_keys.HUB_UPLOADER_GENERATION, 0)
    files = st.file_uploader(
        "Add documents: they are indexed as soon as they are uploaded",
        type=list(UPLOAD_PICKER_EXTENSIONS),
        accept_multiple_files=True,
        max_upload_size=settings.max_document_mb,
        help=f"{SUPPORTED_DESCRIPTION}; up to {settings.max_document_mb} MB each. Drop many at once.",
        key=f"hub_documents_{generation}",
    )
    if files:
        with st.spinner(f"Checking and storing {len(files)} file{'s' if len(files) != 1 else ''}…"):
            outcomes = run_action(lambda: upload_documents(actor=actor, files=files, visibility=visibility)).value
        if outcomes is not None:
            st.session_state[session_keys.HUB_UPLOAD_RESULTS] = [(o.status, o.message, o.document_id) for o in outcomes]
            st.session_state[session_keys.HUB_UPLOADER_GENERATION] = generation + 1
            st.rerun()
    render_upload_notes(actor)


def _live_note(document: DocumentInfo) -> None:
    """One uploaded file's message, as its indexing stands now."""
    name = untrusted.plain(document.filename)
    if document.status == DocumentStatus.COMPLETED:
        chunks = f"{document.chunks_total} chunk{'s' if document.chunks_total != 1 else ''}"
        st.success(f"{name}: indexed ({chunks}); Chat can answer from it now.", icon=":material/check_circle:")
    elif document.status == DocumentStatus.FAILED:
        reason = untrusted.plain(document.error)
        st.error(f"{name}: indexing failed. {reason} Pick it below to retry.", icon=":material/error:")
    elif document.state.stale:
        st.warning(f"{name}: indexing stopped answering. Pick it below to retry.", icon=":material/warning:")
    elif document.status == DocumentStatus.INDEXING:
        done = f" ({document.chunks_done} of {document.chunks_total} chunks)" if document.chunks_total else ""
        st.info(f"{name}: indexing{done}…", icon=":material/hourglass_top:")
    else:
        st.info(f"{name}: uploaded, waiting for a worker to index it…", icon=":material/hourglass_top:")


def render_upload_notes(actor: Actor) -> None:
    """The last batch's messages: refused and duplicate files as they were, accepted ones live."""
    notes: list[tuple[str, str, int | None]] = st.session_state.get(session_keys.HUB_UPLOAD_RESULTS, [])
    if not notes:
        return
    ids = [document_id for status, _, document_id in notes if status == "accepted" and document_id is not None]

    def current(viewer: Actor) -> dict[int, DocumentInfo]:
        if not ids:
            return {}
        return {d.id: d for d in run_action(lambda: list_documents(actor=viewer, document_ids=ids)).value or []}

    active = any(_is_active(d) for d in current(actor).values())

    @st.fragment(run_every=ACTIVE_REFRESH_SECONDS if active else None)
    def upload_notes() -> None:
        latest = current(recheck_account(*page_access.INGESTION_HUB))
        for status, message, document_id in notes:
            if status == "accepted" and document_id is not None:
                if document_id in latest:  # gone when deleted meanwhile
                    _live_note(latest[document_id])
                continue
            show, icon = _OUTCOME_STYLE.get(status, (st.info, None))
            show(message, icon=icon)
        if st.button("Clear these messages", icon=":material/close:", type="tertiary", key="hub_clear_notes"):
            st.session_state.pop(session_keys.HUB_UPLOAD_RESULTS, None)
            st.rerun(scope="app")
        if any(_is_active(d) for d in latest.values()) != active:
            st.rerun(scope="app")  # stop (or start) refreshing

    upload_notes()


def render_audio_area() -> None:
    """Recordings go to the transcription pipeline (ui/transcripts_upload.py)."""
    try:
        from ui.transcripts_upload import render_audio_upload
    except ImportError:
        st.info("Audio upload is not available in this installation.", icon=":material/graphic_eq:")
        return
    render_audio_upload(key="hub_audio")


# --------------------------------------------------------------------------- table


def _filters(actor: Actor) -> dict[str, Any]:
    """The filter widgets; returns list_documents keyword arguments."""
    type_col, status_col, uploader_col, date_col, name_col = st.columns([1, 1, 1.2, 1.4, 1.4])
    document_type = type_col.selectbox(
        "Type", options=[None, *DOCUMENT_TYPES], format_func=lambda t: "All" if t is None else TYPE_LABELS[t]
    )
    status = status_col.selectbox(
        "Status", options=[None, *DOCUMENT_STATUSES], format_func=lambda s: "All" if s is None else s.title()
    )
    uploaders = run_action(lambda: list_uploaders(actor=actor)).value or []
    names = dict(uploaders)
    uploader_id = uploader_col.selectbox(
        "Uploaded by", options=[None, *names], format_func=lambda u: "Anyone" if u is None else names[u]
    )
    date_from, date_to = date_range_input("Uploaded between", key=session_keys.HUB_FILTER_DATES, container=date_col)
    filename = name_col.text_input("File name contains", placeholder="part of a name")
    return {
        "document_type": document_type,
        "status": status,
        "uploader_id": uploader_id,
        "date_from": date_from,
        "date_to": date_to,
        "filename_contains": filename or None,
    }


def _status_text(document: DocumentInfo) -> str:
    # Plain words: emoji need a colour-emoji font, which many Linux desktops lack.
    text = document.state.display_status
    if document.state.stale:
        return text
    if document.status in (DocumentStatus.PENDING, DocumentStatus.INDEXING) and document.searchable:
        return f"{text} (re-index; previous version searchable)"
    return text


def _rows(documents: list[DocumentInfo]) -> list[dict[str, Any]]:
    return [
        {
            "ID": d.id,
            "Name": d.filename,
            "Type": TYPE_LABELS.get(d.document_type, d.document_type),
            "Status": _status_text(d),
            "Progress": d.state.progress,
            "Chunks": f"{d.chunks_done}/{d.chunks_total}" if d.chunks_total else "—",
            "Visibility": d.visibility.title(),
            "Uploaded by": d.uploader,
            "Uploaded": d.upload_date.strftime("%Y-%m-%d %H:%M"),
            "Size": format_bytes(d.size_bytes),
            "Error": d.error or "",
        }
        for d in documents
    ]


def render_table(actor: Actor, filters: dict[str, Any], documents: list[DocumentInfo]) -> None:
    """The catalogue; only this fragment reruns while documents are waiting or indexing."""
    active = any(_is_active(d) for d in documents)

    @st.fragment(run_every=ACTIVE_REFRESH_SECONDS if active else IDLE_REFRESH_SECONDS)
    def content_table() -> None:
        fresh = recheck_account(*page_access.INGESTION_HUB)
        current = run_action(lambda: list_documents(actor=fresh, **filters)).value or []
        if not current:
            st.info("Nothing matches. Upload documents or recordings above, or change the filters.")
            return
        st.dataframe(
            _rows(current),
            hide_index=True,
            width="stretch",
            column_config={
                "ID": st.column_config.NumberColumn(width="small"),
                "Progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent"),
                "Status": st.column_config.TextColumn(width="medium"),
                "Error": st.column_config.TextColumn(width="medium"),
            },
        )
        # Rerun the whole page only when indexing starts or stops (to change the refresh
        # rate and the row actions), not whenever someone else uploads: a page-wide rerun
        # every few seconds would redraw the upload form under the user's hands.
        if any(_is_active(d) for d in current) != active:
            st.rerun(scope="app")

    content_table()


# --------------------------------------------------------------------------- row actions


@st.dialog("Chunks", width="large")
def show_chunks(document: DocumentInfo) -> None:
    actor = recheck_account(*page_access.INGESTION_HUB)
    chunks = run_action(lambda: document_chunks(actor=actor, document_id=document.id, limit=CHUNKS_SHOWN)).value
    if chunks is None:
        return
    st.caption(f"{untrusted.plain(document.filename)} · {document.chunks_total} searchable chunks")
    if not chunks:
        st.info("This document has no searchable chunks yet.")
    for chunk in chunks:
        where = [f"Chunk {chunk.chunk_index + 1}", f"{chunk.token_count} tokens"]
        if chunk.page_number is not None:
            where.append(f"page {chunk.page_number}")
        if chunk.heading:
            where.append(chunk.heading)
        if chunk.start_seconds is not None:
            where.append(f"{format_seconds(chunk.start_seconds)}–{format_seconds(chunk.end_seconds)}")
        with st.container(border=True):
            st.caption(" · ".join(where))
            st.text(chunk.content)
    if len(chunks) == CHUNKS_SHOWN and document.chunks_total > CHUNKS_SHOWN:
        st.caption(f"The first {CHUNKS_SHOWN} chunks are shown.")


@st.dialog("Delete document")
def confirm_delete(document: DocumentInfo) -> None:
    actor = recheck_account(*page_access.INGESTION_HUB)
    st.write(
        f"Delete **{untrusted.plain(document.filename)}**? Its chunks and its stored file are removed, and search "
        "will never return it again. This cannot be undone."
    )
    keep, remove = st.columns(2)
    if keep.button("Cancel", width="stretch"):
        st.rerun()
    confirmed = remove.button(
        "Delete", type="primary", icon=":material/delete:", width="stretch", key="hub_confirm_delete"
    )
    if confirmed and run_action(lambda: delete_documents(actor=actor, document_ids=[document.id])).ok:
        st.session_state.pop(session_keys.SELECTED_DOCUMENT_ID, None)
        flash_and_rerun(f"Deleted {untrusted.plain(document.filename)}.")


@st.cache_data(max_entries=4, ttl=300, show_spinner=False)
def _download(_actor: Actor, actor_id: int, document_id: int) -> tuple[str, str, bytes]:
    """The stored file, kept for a few reruns so the download button does not reload it."""
    download = download_document(actor=_actor, document_id=document_id)
    return download.filename, download.content_type, download.data


def render_actions(actor: Actor, documents: list[DocumentInfo]) -> None:
    """Pick a document, then view its chunks, download, re-index, retry or delete it."""
    by_id = {d.id: d for d in documents}
    chosen = st.selectbox(
        "Document",
        options=list(by_id),
        # No status in the label: the browser sends the chosen label back, and a label that
        # changed in between (pending -> completed) would drop the choice.
        format_func=lambda i: f"{by_id[i].filename} (#{i})",
        index=None,
        placeholder="Choose a document to view, download, re-index, retry or delete",
        key=session_keys.SELECTED_DOCUMENT_ID,
    )
    if chosen is None:
        return
    document = by_id[chosen]
    if document.error:
        (st.error if document.status == DocumentStatus.FAILED else st.warning)(document.error, icon=":material/error:")
    view, download, reindex, retry, remove = st.columns(5)
    if view.button("View chunks", icon=":material/segment:", width="stretch", disabled=not document.searchable):
        show_chunks(document)
    prepared = run_action(lambda: _download(actor, actor.id, document.id)).value
    if prepared is not None:
        filename, content_type, data = prepared
        download.download_button(
            "Download",
            data=data,
            file_name=filename,
            mime=content_type,
            icon=":material/download:",
            width="stretch",
        )
    if (
        reindex.button(
            "Re-index",
            icon=":material/refresh:",
            width="stretch",
            disabled=not document.can_reindex,
            help="Rebuild the chunks (for example after an embedding model change); the current ones stay "
            "searchable until the new ones are ready.",
        )
        and run_action(lambda: reindex_document(actor=actor, document_id=document.id)).ok
    ):
        flash_and_rerun(f"Re-indexing {untrusted.plain(document.filename)}.")
    if (
        retry.button(
            "Retry",
            icon=":material/replay:",
            width="stretch",
            disabled=not document.can_retry,
        )
        and run_action(lambda: retry_document(actor=actor, document_id=document.id)).ok
    ):
        flash_and_rerun(f"{untrusted.plain(document.filename)} is queued again.")
    if remove.button("Delete", icon=":material/delete:", width="stretch", disabled=not document.can_delete):
        confirm_delete(document)


# --------------------------------------------------------------------------- page


def main() -> None:
    actor = current_actor()
    st.title("Ingestion Hub")
    show_flash()

    documents_tab, audio_tab = st.tabs([":material/description: Documents", ":material/graphic_eq: Audio"])
    with documents_tab:
        render_document_upload(actor)
    with audio_tab:
        render_audio_area()

    st.subheader("Indexed content")
    filters = _filters(actor)
    documents = run_action(lambda: list_documents(actor=actor, **filters)).value or []
    render_table(actor, filters, documents)
    if documents:
        render_actions(actor, documents)


main()
