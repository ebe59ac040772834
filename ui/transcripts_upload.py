"""Meeting audio in: upload recordings or record in the browser. UI only.

`render_audio_upload()` is a piece of the Ingestion Hub page (and of Transcripts &
Minutes); it is not a page of its own. Choosing files is the whole action: each is checked
and queued at once, and a live message per recording follows it until it is transcribed.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import streamlit as st

from core.access import Actor
from core.meetings import ACCEPTED_EXTENSIONS, RecordingSummary, get_recording_summary, submit_recording
from core.platform.config import get_settings
from core.platform.errors import DuplicateRecording, NotFound, QuorumError
from core.platform.statuses import RecordingStatus
from ui import session_keys
from ui.auth_ui import recheck_account
from ui.common import current_actor, format_seconds, plain, visibility_input

TRANSCRIPTS_PAGE = "pages/transcripts.py"
REFRESH_SECONDS = 2

Note = tuple[
    str, str, int | None
]  # (accepted | duplicate | rejected, message, job id: the earlier one for a duplicate)


def _send(file: Any, filename: str, visibility: str, *, again: bool = False) -> Note:
    """Queue one recording; the outcome as a note that survives the rerun that follows."""
    try:
        job = submit_recording(
            actor=current_actor(), file=file, filename=filename, visibility=visibility, transcribe_again=again
        )
    except DuplicateRecording as duplicate:
        return ("duplicate", f"{filename}: {duplicate}", duplicate.job_id)
    except QuorumError as error:
        return ("rejected", f"{filename}: {error}", None)
    # The Transcripts & Minutes page opens the recording just queued.
    st.session_state[session_keys.SELECTED_JOB_ID] = job.id
    st.session_state[session_keys.SEEK_SECONDS] = 0.0
    return ("accepted", job.filename, job.id)


def _remember(key: str, notes: list[Note]) -> None:
    queued: dict[str, list[Note]] = st.session_state.setdefault(session_keys.AUDIO_QUEUED, {})
    queued[key] = notes


def _live_note(job: RecordingSummary, *, link: bool) -> None:
    """One queued recording's message, as its transcription stands now."""
    name = f"**{plain(job.filename)}** ({format_seconds(job.duration_seconds)})"
    if job.status == RecordingStatus.COMPLETED:
        st.success(f"{name} is transcribed; its transcript and minutes are ready.", icon=":material/check_circle:")
    elif job.status == RecordingStatus.FAILED:
        st.error(f"{name} could not be transcribed. {plain(job.error or '')}", icon=":material/error:")
    elif job.status == RecordingStatus.PENDING:
        st.info(f"{name} is queued, waiting for a worker to transcribe it…", icon=":material/hourglass_top:")
    else:
        st.info(f"{name} is being transcribed: {job.progress:.0%}…", icon=":material/graphic_eq:")
    if link:
        st.page_link(
            TRANSCRIPTS_PAGE,
            label=f"Open {job.filename} on Transcripts & Minutes",
            icon=":material/arrow_forward:",
        )


def _open_recording(job_id: int) -> None:
    st.session_state[session_keys.SELECTED_JOB_ID] = job_id
    st.session_state[session_keys.SEEK_SECONDS] = 0.0


def _duplicate_note(key: str, message: str, job_id: int) -> None:
    """ "Already transcribed as ...": the earlier recording one click away; transcribing
    again is the explicit choice of the checkbox above the uploader."""
    st.info(
        f"{plain(message)} To transcribe it anyway, tick *Transcribe again even if I uploaded it before* "
        "and add it again.",
        icon=":material/content_copy:",
    )
    if st.button("Open it", key=f"{key}_open_{job_id}", icon=":material/open_in_new:", on_click=_open_recording,
                 args=(job_id,)):  # fmt: skip
        st.switch_page(TRANSCRIPTS_PAGE)


def _render_notes(key: str, *, link: bool) -> None:
    notes = st.session_state.get(session_keys.AUDIO_QUEUED, {}).get(key, [])
    if not notes:
        return
    actor = current_actor()

    def current(viewer: Actor) -> dict[int, RecordingSummary]:
        jobs: dict[int, RecordingSummary] = {}
        for status, _, job_id in notes:
            if status == "accepted" and job_id is not None:
                with contextlib.suppress(NotFound):  # deleted meanwhile: its message goes
                    jobs[job_id] = get_recording_summary(actor=viewer, job_id=job_id)
        return jobs

    active = any(job.is_active for job in current(actor).values())

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def queued_recordings() -> None:
        latest = current(recheck_account())
        for status, message, job_id in notes:
            if status == "duplicate" and job_id is not None:
                _duplicate_note(key, message, job_id)
            elif status != "accepted":
                st.error(message, icon=":material/block:")
            elif job_id in latest:
                _live_note(latest[job_id], link=link)
        if st.button("Clear these messages", icon=":material/close:", type="tertiary", key=f"{key}_clear"):
            st.session_state.get(session_keys.AUDIO_QUEUED, {}).pop(key, None)
            st.rerun(scope="app")
        if any(job.is_active for job in latest.values()) != active:
            st.rerun(scope="app")  # stop (or start) refreshing

    queued_recordings()


def render_audio_upload(*, key: str = "audio", link: bool = True) -> None:
    """Upload recordings or record one in the browser, and queue them for transcription.

    Shows nothing but a note to actors without transcribe_audio. `key` keeps the widgets
    apart when the block appears on more than one page; `link` adds a link to each
    recording on Transcripts & Minutes (not wanted on that page itself).
    """
    actor = current_actor()
    if not actor.can("transcribe_audio"):
        st.info("Your role cannot transcribe recordings (transcribe_audio).", icon=":material/lock:")
        return
    settings = get_settings()
    visibility = visibility_input(
        "Who can read the transcript and minutes", readers="everyone who reads transcripts", key=f"{key}_visibility"
    )
    again = st.checkbox(
        "Transcribe again even if I uploaded it before",
        key=f"{key}_again",
        help="The same recording uploaded twice points to the first one instead, unless this is ticked.",
    )
    upload_tab, record_tab = st.tabs([":material/upload_file: Upload recordings", ":material/mic: Record now"])

    # A new widget key after each send empties the uploader and the recorder: what they held
    # is queued now, and sending it again would only find the duplicate.
    generation_key = f"{key}_uploader_generation"
    generation = st.session_state.get(generation_key, 0)
    with upload_tab:
        files = st.file_uploader(
            "Add recordings: transcription starts as soon as they are uploaded",
            type=[f".{extension}" for extension in ACCEPTED_EXTENSIONS],
            accept_multiple_files=True,
            max_upload_size=settings.max_audio_mb,
            help=f"Audio ({', '.join(ACCEPTED_EXTENSIONS)}) or the sound of an mp4/mov video; "
            f"up to {settings.max_audio_mb} MB each. Long meetings are fine.",
            key=f"{key}_files_{generation}",
        )
        if files:
            notes: list[Note] = []
            for file in files:
                with st.spinner(f"Checking {file.name}…"):
                    notes.append(_send(file, file.name, visibility, again=again))
            _remember(key, notes)
            st.session_state[generation_key] = generation + 1
            st.rerun()

    with record_tab:
        recording = st.audio_input("Record a meeting or a voice note", key=f"{key}_recorder_{generation}")
        name = st.text_input(
            "Name of the recording", value=f"Recording {datetime.now():%Y-%m-%d %H-%M}", key=f"{key}_recording_name"
        )
        if st.button("Transcribe this recording", disabled=recording is None, key=f"{key}_record_submit"):
            assert recording is not None
            with st.spinner("Saving the recording…"):
                _remember(key, [_send(recording, f"{name.strip() or 'Recording'}.wav", visibility, again=again)])
            st.session_state[generation_key] = generation + 1
            st.rerun()
    _render_notes(key, link=link)
