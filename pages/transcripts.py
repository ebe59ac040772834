"""Transcripts & Minutes: recordings with live progress, the player, the timestamped
transcript (choose a line to play from there), minutes (view, edit, regenerate), retry,
delete and exports. UI only: every action is a core call.

Open a recording at a moment with ?job=ID&t=SECONDS (chat citations link here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from core.access import Actor
from core.meetings import (
    MINUTES_FORMATS,
    TRANSCRIPT_FORMATS,
    MinutesView,
    RecordingDetail,
    RecordingFile,
    RecordingSummary,
    TranscriptLine,
    delete_recording,
    export_recording,
    export_recordings_csv,
    export_recordings_zip,
    get_minutes,
    get_recording,
    get_recording_summary,
    list_action_items,
    list_recordings,
    read_recording,
    regenerate_minutes,
    retry_recording,
    update_minutes,
)
from core.platform.statuses import RecordingStatus, Visibility
from ui import page_access, session_keys, untrusted
from ui.auth_ui import recheck_account
from ui.common import current_actor, flash_and_rerun, format_bytes, format_seconds, run_action, show_flash
from ui.speaker_naming import render_speakers
from ui.transcripts_upload import render_audio_upload

LIST_REFRESH_SECONDS = 3
PROGRESS_REFRESH_SECONDS = 2
_EXPORT_LABELS = {
    "txt": "Text",
    "md": "Markdown",
    "docx": "Word",
    "srt": "SRT subtitles",
    "vtt": "WebVTT",
    "json": "JSON",
    "minutes-md": "Minutes (Markdown)",
    "minutes-docx": "Minutes (Word)",
}
_EXPORT_SUFFIXES = {"minutes-md": "minutes.md", "minutes-docx": "minutes.docx"}
_PLAYER_FORMATS = {"video/mp4": "audio/mp4", "video/quicktime": "audio/mp4"}


@st.cache_data(max_entries=3, ttl=900, show_spinner=False)
def _recording(_actor: Actor, actor_id: int, job_id: int) -> RecordingFile:
    """The upload's bytes, kept for a few reruns so seeking does not reload them."""
    return read_recording(actor=_actor, job_id=job_id)


def _status(job: RecordingSummary) -> str:
    return job.state.display_status


def _cost(job: RecordingSummary) -> str:
    return f"${job.cost_usd:.4f}" if job.cost_usd else "—"


def _job_rows(jobs: list[RecordingSummary]) -> list[dict[str, Any]]:
    return [
        {
            "Recording": job.filename,
            "Owner": job.owner_name,
            "Status": _status(job),
            "Stage": job.stage_label if job.is_active else "",
            "Progress": job.state.progress,
            "Length": format_seconds(job.duration_seconds),
            "Cost": _cost(job),
            "Uploaded": job.created_at.strftime("%Y-%m-%d %H:%M"),
        }
        for job in jobs
    ]


def _seek(seconds: float) -> None:
    st.session_state[session_keys.SEEK_SECONDS] = float(seconds)


def _open_from_link() -> None:
    """?job=ID&t=SECONDS opens a recording at a moment (links from chat citations)."""
    params = st.query_params
    if "job" not in params:
        return
    try:
        st.session_state[session_keys.SELECTED_JOB_ID] = int(params["job"])
        _seek(float(params.get("t", 0)))
    except ValueError:
        pass
    del params["job"]
    if "t" in params:
        del params["t"]


# --------------------------------------------------------------------------- list


def render_job_list(actor: Actor, jobs: list[RecordingSummary], mine_only: bool) -> None:
    """The recordings table; refreshes itself while any job is running."""

    @st.fragment(run_every=LIST_REFRESH_SECONDS if any(job.is_active for job in jobs) else None)
    def job_table() -> None:
        fresh = recheck_account(*page_access.TRANSCRIPTS)
        current = list_recordings(actor=fresh, mine_only=mine_only)
        st.dataframe(
            _job_rows(current),
            hide_index=True,
            width="stretch",
            column_config={
                "Progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent")
            },
        )
        if any(job.is_active for job in jobs) and not any(job.is_active for job in current):
            st.rerun(scope="app")  # all done: show the finished transcripts and stop polling

    job_table()


# --------------------------------------------------------------------------- detail


def render_progress(actor: Actor, job: RecordingSummary) -> None:
    """Stage and percent of a running job, refreshed live; the page reloads when it ends."""

    @st.fragment(run_every=PROGRESS_REFRESH_SECONDS)
    def live() -> None:
        fresh = recheck_account(*page_access.TRANSCRIPTS)
        current = run_action(lambda: get_recording_summary(actor=fresh, job_id=job.id)).value
        if current is None:
            return
        st.progress(current.state.progress, text=f"{current.stage_label} — {current.state.progress:.0%}")
        if current.error:
            st.caption(untrusted.plain(current.error))
        if not current.is_active:
            st.rerun(scope="app")

    live()


def render_player(actor: Actor, job: RecordingSummary) -> None:
    recording = run_action(lambda: _recording(actor, actor.id, job.id)).value
    if recording is None:
        return
    seek = float(st.session_state.get(session_keys.SEEK_SECONDS) or 0.0)
    st.audio(
        recording.data,
        format=_PLAYER_FORMATS.get(recording.content_type, recording.content_type or "audio/mpeg"),
        start_time=int(seek),
        autoplay=seek > 0,
    )
    if seek:
        st.caption(f"Playing from {format_seconds(seek)}.")


def render_transcript(detail: RecordingDetail) -> None:
    if not detail.lines:
        if detail.summary.is_active:
            st.info("The transcript appears here as the segments are transcribed.", icon=":material/hourglass_top:")
        else:
            st.info("No speech was found in this recording.", icon=":material/voice_over_off:")
        return
    if not detail.transcript_complete:
        st.caption(f"Transcribed so far ({detail.segments_done} segments done):")
    query = st.text_input("Find in the transcript", placeholder="a word or a name", key="transcript_find")
    needle = query.strip().lower()
    lines: list[TranscriptLine] = [
        line for line in detail.lines if not needle or needle in f"{line.speaker or ''} {line.text}".lower()
    ]
    if not lines:
        st.caption("No line matches.")
        return

    def seek_to_chosen_line() -> None:
        rows = st.session_state[session_keys.TRANSCRIPT_LINES]["selection"]["rows"]
        if rows:
            _seek(lines[rows[0]].start)

    show_speakers = any(line.speaker for line in lines)
    st.dataframe(
        [
            {"Time": format_seconds(line.start), **({"Speaker": line.speaker or ""} if show_speakers else {}),
             "Text": line.text}
            for line in lines
        ],
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(lines), 520),
        on_select=seek_to_chosen_line,
        selection_mode="single-row",
        key=session_keys.TRANSCRIPT_LINES,
        column_config={"Time": st.column_config.TextColumn(width="small"),
                       "Text": st.column_config.TextColumn(width="large")},
    )  # fmt: skip
    st.caption("Choose a line to play the recording from that moment.")


def _moments(view: MinutesView) -> list[tuple[str, float]]:
    """(label, second) of every decision, action item and open question with a timestamp."""
    if view.minutes is None:
        return []
    minutes = view.minutes
    items: list[tuple[str, float | None]] = [(f"Decision: {d.text}", d.timestamp) for d in minutes.decisions]
    items += [(f"Action: {a.task}" + (f" ({a.owner})" if a.owner else ""), a.timestamp) for a in minutes.action_items]
    items += [(f"Question: {q.text}", q.timestamp) for q in minutes.open_questions]
    return sorted(((f"{format_seconds(t)} {label}", t) for label, t in items if t is not None), key=lambda m: m[1])


def render_minutes(actor: Actor, detail: RecordingDetail) -> None:
    job = detail.summary
    view = run_action(lambda: get_minutes(actor=actor, job_id=job.id)).value
    if view is None:
        return
    editing = st.session_state.get(session_keys.MINUTES_EDITING) == job.id
    if editing and view.can_edit:
        with st.form(f"minutes_editor_{job.id}"):
            text = st.text_area("Minutes (Markdown)", value=view.markdown or "", height=480)
            save, cancel = st.columns(2)
            saved = save.form_submit_button("Save minutes", type="primary", icon=":material/save:")
            cancelled = cancel.form_submit_button("Cancel")
        if saved and run_action(lambda: update_minutes(actor=actor, job_id=job.id, markdown=text)).ok:
            st.session_state.pop(session_keys.MINUTES_EDITING, None)
            flash_and_rerun("Minutes saved and re-indexed for search.")
        if cancelled:
            st.session_state.pop(session_keys.MINUTES_EDITING, None)
            st.rerun()
        return

    if view.markdown:
        st.markdown(untrusted.markdown(view.markdown))
        if view.is_edited and view.edited_at is not None:
            st.caption(f"Edited {view.edited_at:%Y-%m-%d %H:%M}.")
        moments = _moments(view)
        if moments:
            chosen = st.selectbox(
                "Play a moment from the minutes",
                options=range(len(moments)),
                format_func=lambda i: moments[i][0],
                index=None,
                placeholder="Choose a decision, action item or question",
                key=f"minutes_moment_{job.id}",
            )
            if chosen is not None and st.button("Play from there", icon=":material/play_arrow:"):
                _seek(moments[chosen][1])
                st.rerun()
    elif job.is_active:
        st.info("The minutes are written once the transcript is done.", icon=":material/hourglass_top:")
    else:
        st.info("This recording has no minutes yet.")

    if not (view.can_edit and detail.transcript_complete):
        return
    edit, regenerate = st.columns(2)
    if edit.button("Edit minutes", icon=":material/edit:", disabled=not view.markdown):
        st.session_state[session_keys.MINUTES_EDITING] = job.id
        st.rerun()
    with regenerate.popover("Regenerate minutes", icon=":material/autorenew:"):
        st.write(
            "Write the minutes again from the transcript." + (" Your edits are replaced." if view.is_edited else "")
        )
        if st.button("Regenerate now", type="primary", key=f"regenerate_{job.id}"):
            with st.spinner("Writing the minutes…"):
                if run_action(lambda: regenerate_minutes(actor=actor, job_id=job.id)).ok:
                    flash_and_rerun("Minutes regenerated.")


def render_job_action_items(actor: Actor, job_id: int) -> None:
    """This meeting's action items with their status; they are followed on the Action items page."""
    items = run_action(lambda: list_action_items(actor=actor, job_id=job_id)).value or []
    if not items:
        return
    st.markdown("**Action items and their status**")
    st.dataframe(
        [
            {
                "Status": "Done" if item.status == "done" else ("Overdue" if item.is_overdue() else "Open"),
                "Task": item.task,
                "Owner": item.owner or "",
                "Due": item.due_date.isoformat() if item.due_date else (item.due_text or ""),
            }
            for item in items
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption("Close them and follow them with other meetings' items on the **Action items** page.")


def _export_data(actor: Actor, job_id: int, fmt: str) -> Callable[[], bytes]:
    return lambda: export_recording(actor=actor, job_id=job_id, fmt=fmt).data


def render_exports(actor: Actor, detail: RecordingDetail, *, has_minutes: bool) -> None:
    job = detail.summary
    if not detail.transcript_complete:
        st.info("Exports are ready when the transcript is done.")
        return
    stem = job.filename.rsplit(".", 1)[0] or "recording"
    formats = list(TRANSCRIPT_FORMATS) + (list(MINUTES_FORMATS) if has_minutes else [])
    columns = st.columns(4)
    for position, fmt in enumerate(formats):
        columns[position % 4].download_button(
            _EXPORT_LABELS.get(fmt, fmt),
            data=_export_data(actor, job.id, fmt),
            file_name=f"{stem}-{job.id}.{_EXPORT_SUFFIXES.get(fmt, fmt)}",
            key=f"export_{job.id}_{fmt}",
            icon=":material/download:",
            width="stretch",
        )


def render_actions(actor: Actor, detail: RecordingDetail) -> None:
    job = detail.summary
    retried = job.can_retry and st.button("Retry", type="primary", icon=":material/replay:", key=f"retry_{job.id}")
    if retried and run_action(lambda: retry_recording(actor=actor, job_id=job.id)).ok:
        flash_and_rerun(f"{job.filename} is queued again; it resumes where it stopped.")
    recording = run_action(lambda: _recording(actor, actor.id, job.id)).value
    if recording is not None:
        st.download_button(
            f"Download the original ({format_bytes(job.size_bytes)})",
            data=recording.data,
            file_name=recording.filename,
            mime=recording.content_type or None,
            icon=":material/download:",
            key=f"download_{job.id}",
        )
    if detail.can_delete:
        with st.popover("Delete recording", icon=":material/delete:"):
            st.warning(
                f"Delete **{job.filename}**, its transcript, its minutes and their search entries? "
                "This cannot be undone."
            )
            confirmed = st.button("Delete permanently", type="primary", key=f"delete_{job.id}")
            if confirmed and run_action(lambda: delete_recording(actor=actor, job_id=job.id)).ok:
                st.session_state.pop(session_keys.SELECTED_JOB_ID, None)
                flash_and_rerun(f"{job.filename} was deleted.")


def render_detail(actor: Actor, detail: RecordingDetail) -> None:
    job = detail.summary
    st.subheader(job.filename)
    st.caption(
        f"Uploaded by {job.owner_name} on {job.created_at:%Y-%m-%d %H:%M} · {format_bytes(job.size_bytes)} · "
        + ("visible to the team" if job.visibility == Visibility.TEAM else "private")
        + (f" · transcribed with {job.model}" if job.model else "")
    )
    facts = st.columns(3)
    facts[0].metric("Status", _status(job))
    facts[1].metric("Length", format_seconds(job.duration_seconds))
    facts[2].metric("Cost", _cost(job), help="AI usage for this recording so far: transcription and minutes")
    if job.is_active:
        render_progress(actor, job)
    elif job.status == RecordingStatus.FAILED or job.stale:
        st.error(
            job.error or "The worker stopped answering while transcribing this recording.", icon=":material/error:"
        )

    render_player(actor, job)
    tabs = ["Transcript", "Speakers", "Minutes"] + (["Export"] if actor.can("export_transcripts") else []) + ["Manage"]
    tab = dict(zip(tabs, st.tabs(tabs), strict=True))
    with tab["Transcript"]:
        render_transcript(detail)
    with tab["Speakers"]:
        if detail.transcript_complete:
            render_speakers(actor, job.id)
        else:
            st.info("Speakers can be named once the transcript is done.")
    with tab["Minutes"]:
        render_minutes(actor, detail)
        render_job_action_items(actor, job.id)
    if "Export" in tab:
        with tab["Export"]:
            view = run_action(lambda: get_minutes(actor=actor, job_id=job.id)).value
            render_exports(actor, detail, has_minutes=bool(view and view.markdown))
    with tab["Manage"]:
        render_actions(actor, detail)


def render_bulk_export(actor: Actor, jobs: list[RecordingSummary]) -> None:
    """For analysts: several finished recordings at once, as one CSV of segments or a ZIP."""
    done = {job.id: job for job in jobs if job.status == RecordingStatus.COMPLETED}
    if not done or not actor.can("export_transcripts"):
        return
    with st.expander("Export several recordings", icon=":material/table_view:"):
        scope = st.radio(
            "Which recordings",
            ["all", "chosen"],
            format_func={"all": f"All finished recordings ({len(done)})", "chosen": "Only the ones I choose"}.get,
            horizontal=True,
            key="transcripts_bulk_scope",
        )
        chosen = list(done)
        if scope == "chosen":
            chosen = st.multiselect(
                "Recordings",
                list(done),
                format_func=lambda job_id: f"{done[job_id].filename} · #{job_id}",
                key="transcripts_bulk_ids",
            )
        if not chosen:
            st.caption("Choose at least one recording.")
            return
        csv_column, zip_column = st.columns(2)
        csv_column.download_button(
            "CSV: one row per segment",
            data=lambda: export_recordings_csv(actor=actor, job_ids=chosen).data,
            file_name="transcripts.csv",
            mime="text/csv",
            icon=":material/download:",
            width="stretch",
            key="transcripts_bulk_csv",
        )
        zip_column.download_button(
            "ZIP: transcripts and minutes",
            data=lambda: export_recordings_zip(actor=actor, job_ids=chosen).data,
            file_name="transcripts.zip",
            mime="application/zip",
            icon=":material/folder_zip:",
            width="stretch",
            key="transcripts_bulk_zip",
        )


# --------------------------------------------------------------------------- page


def _open_chosen_recording() -> None:
    st.session_state[session_keys.SELECTED_JOB_ID] = st.session_state[session_keys.OPEN_RECORDING_WIDGET]
    st.session_state[session_keys.SEEK_SECONDS] = 0.0


def render_recording_picker(jobs: list[RecordingSummary]) -> int:
    """The "Open a recording" choice; returns the id of the recording to show.

    The selectbox has a key and labels that never change while a job runs, so the live
    refreshes do not rebuild it under the user's pointer. SELECTED_JOB_ID (set by a new
    upload, a chat citation or a ?job= link) wins; otherwise the newest recording opens.
    """
    ids = [job.id for job in jobs]
    labels = {job.id: f"{job.filename} · #{job.id} · {job.created_at:%Y-%m-%d %H:%M}" for job in jobs}
    wanted = st.session_state.get(session_keys.SELECTED_JOB_ID)
    if wanted not in ids:
        wanted = ids[0]
        st.session_state[session_keys.SELECTED_JOB_ID] = wanted
        st.session_state[session_keys.SEEK_SECONDS] = 0.0
    if st.session_state.get(session_keys.OPEN_RECORDING_WIDGET) != wanted:
        st.session_state[session_keys.OPEN_RECORDING_WIDGET] = wanted
    chosen: int = st.selectbox(
        "Open a recording",
        ids,
        format_func=labels.__getitem__,
        key=session_keys.OPEN_RECORDING_WIDGET,
        on_change=_open_chosen_recording,
    )
    return chosen


def main() -> None:
    actor = current_actor()
    st.title("Transcripts & Minutes")
    _open_from_link()
    show_flash()
    if actor.can("transcribe_audio"):
        with st.expander("Add a recording", icon=":material/add:"):
            render_audio_upload(key="transcripts_audio", link=False)

    mine_only = st.toggle("Only my recordings", key="transcripts_mine_only")
    jobs = list_recordings(actor=actor, mine_only=mine_only)
    if not jobs:
        st.info("No recordings yet. Upload or record one above, or in the Ingestion Hub.", icon=":material/graphic_eq:")
        return
    render_job_list(actor, jobs, mine_only)
    render_bulk_export(actor, jobs)

    chosen = render_recording_picker(jobs)
    detail = run_action(lambda: get_recording(actor=actor, job_id=chosen)).value
    if detail is not None:
        st.divider()
        render_detail(actor, detail)


main()
