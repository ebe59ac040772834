"""Meeting audio in: upload recordings or record in the browser. UI only.

`render_audio_upload()` is a piece of the Ingestion Hub page (and of Transcripts &
Minutes); it is not a page of its own.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from core.meetings import RecordingSummary, submit_recording
from core.meetings.audio import ACCEPTED_EXTENSIONS
from core.platform.config import get_settings
from ui import session_keys
from ui.common import current_actor, format_seconds, run_action

_VISIBILITY_LABELS = {"team": "My team (everyone who reads transcripts)", "private": "Only me and admins"}


def _queued(job: RecordingSummary | None) -> None:
    if job is not None:
        # The Transcripts & Minutes page opens the recording just queued.
        st.session_state[session_keys.SELECTED_JOB_ID] = job.id
        st.session_state[session_keys.SEEK_SECONDS] = 0.0
        st.success(
            f"**{job.filename}** ({format_seconds(job.duration_seconds)}) is queued for transcription. "
            "Follow it on the Transcripts & Minutes page.",
            icon=":material/graphic_eq:",
        )


def render_audio_upload(*, key: str = "audio") -> None:
    """Upload recordings or record one in the browser, and queue them for transcription.

    Shows nothing but a note to actors without transcribe_audio. `key` keeps the widgets
    apart when the block appears on more than one page.
    """
    actor = current_actor()
    if not actor.can("transcribe_audio"):
        st.info("Your role cannot transcribe recordings (transcribe_audio).", icon=":material/lock:")
        return
    settings = get_settings()
    visibility = st.radio(
        "Who can read the transcript and minutes",
        options=list(_VISIBILITY_LABELS),
        format_func=_VISIBILITY_LABELS.__getitem__,
        horizontal=True,
        key=f"{key}_visibility",
    )
    upload_tab, record_tab = st.tabs([":material/upload_file: Upload recordings", ":material/mic: Record now"])

    with upload_tab, st.form(f"{key}_upload_form", clear_on_submit=True, border=False):
        files = st.file_uploader(
            "Meeting recordings",
            type=list(ACCEPTED_EXTENSIONS),
            accept_multiple_files=True,
            max_upload_size=settings.max_audio_mb,
            help=f"Audio ({', '.join(ACCEPTED_EXTENSIONS)}) or the sound of an mp4/mov video; "
            f"up to {settings.max_audio_mb} MB each. Long meetings are fine.",
        )
        submitted = st.form_submit_button("Transcribe", type="primary", icon=":material/graphic_eq:")
    if submitted and not files:
        upload_tab.warning("Choose at least one recording first.")
    for file in files if submitted and files else []:
        with upload_tab, st.spinner(f"Checking {file.name}…"):
            _queued(
                run_action(
                    lambda file=file: submit_recording(  # type: ignore[misc]
                        actor=actor, file=file, filename=file.name, visibility=visibility
                    )
                )
            )

    with record_tab:
        recording = st.audio_input("Record a meeting or a voice note", key=f"{key}_recorder")
        name = st.text_input(
            "Name of the recording", value=f"Recording {datetime.now():%Y-%m-%d %H-%M}", key=f"{key}_recording_name"
        )
        if st.button("Transcribe this recording", disabled=recording is None, key=f"{key}_record_submit"):
            assert recording is not None
            with st.spinner("Saving the recording…"):
                _queued(
                    run_action(
                        lambda: submit_recording(
                            actor=actor, file=recording, filename=f"{name.strip() or 'Recording'}.wav",
                            visibility=visibility,
                        )
                    )
                )  # fmt: skip
