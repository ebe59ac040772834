"""Naming the speakers of a recording: excerpts of each, names from the directory, and
suggestions to accept. A piece of the Transcripts & Minutes page. UI only."""

from __future__ import annotations

import streamlit as st

from core.access import Actor
from core.meetings import (
    SpeakerInfo,
    SpeakersView,
    default_display,
    get_speakers,
    known_speaker_names,
    rename_speakers,
    suggest_speaker_names,
)
from ui import session_keys
from ui.common import flash_and_rerun, format_seconds, plain, run_action


def _name_key(job_id: int, label: str) -> str:
    return f"speaker_name_{job_id}_{label}"


def _accept(job_id: int, label: str, name: str) -> None:
    """on_click of Accept: fill the name field (a widget's value may only change before it is drawn)."""
    st.session_state[_name_key(job_id, label)] = name


def _describe(speaker: SpeakerInfo) -> str:
    said = f"{speaker.lines} line{'s' if speaker.lines != 1 else ''}, {format_seconds(speaker.seconds)}"
    return f"**{plain(speaker.shown_as)}** · {said}"


def _render_suggestions(view: SpeakersView) -> None:
    suggestions = st.session_state.get(session_keys.SPEAKER_SUGGESTIONS, {}).get(view.job_id)
    if suggestions is None:
        return
    if not suggestions:
        st.info("The transcript does not say who the speakers are (no introductions or names found).")
        return
    st.caption("Suggestions from the transcript. Nothing is saved until you accept a name and press Save names.")
    for label, name, evidence in suggestions:
        text, accept = st.columns([5, 1], vertical_alignment="center")
        text.markdown(f"{plain(default_display(label))} → **{plain(name)}**  \n_{plain(evidence)}_")
        accept.button(
            "Accept",
            key=f"accept_speaker_{view.job_id}_{label}",
            on_click=_accept,
            args=(view.job_id, label, name),
            icon=":material/check:",
        )


def render_speakers(actor: Actor, job_id: int) -> None:
    """The Speakers tab: who spoke how much, with excerpts; the owner names them."""
    view = run_action(lambda: get_speakers(actor=actor, job_id=job_id)).value
    if view is None:
        return
    if not view.diarized:
        st.caption(
            "This transcript does not tell speakers apart (only the gpt-4o-transcribe-diarize model does). "
            "You can still name the speaker: every line is then theirs, in the transcript, exports and search."
        )
    if view.can_rename and view.diarized:
        if st.button("Suggest names", icon=":material/auto_awesome:", key=f"suggest_speakers_{job_id}"):
            with st.spinner("Reading the transcript for names…"):
                found = run_action(lambda: suggest_speaker_names(actor=actor, job_id=job_id)).value
            if found is not None:
                stored = st.session_state.setdefault(session_keys.SPEAKER_SUGGESTIONS, {})
                stored[job_id] = [(s.label, s.name, s.evidence) for s in found]
        _render_suggestions(view)

    known = run_action(lambda: known_speaker_names(actor=actor)).value or []
    names: dict[str, str | None] = {}
    with st.form(f"speaker_names_{job_id}", border=False):
        for speaker in view.speakers:
            with st.container(border=True):
                st.markdown(_describe(speaker))
                for excerpt in speaker.excerpts:
                    st.caption(f"{format_seconds(excerpt.start)} · {plain(excerpt.text)}")
                key = _name_key(job_id, speaker.label)
                # The field's value lives in session state (so Accept can fill it); no index then.
                current = st.session_state.setdefault(key, speaker.name)
                options = sorted({*known, *([current] if current else [])}, key=str.casefold)
                names[speaker.label] = st.selectbox(
                    f"Name of {default_display(speaker.label)}",
                    options,
                    index=None,
                    placeholder="Type a name or choose a known one",
                    accept_new_options=True,
                    key=key,
                    disabled=not view.can_rename,
                )
        saved = st.form_submit_button(
            "Save names", type="primary", icon=":material/save:", disabled=not view.can_rename
        )
    if not view.can_rename:
        st.caption("Only the owner of this recording or an admin can name its speakers.")
    if saved:
        wanted = {label: (name or "") for label, name in names.items()}
        if run_action(lambda: rename_speakers(actor=actor, job_id=job_id, names=wanted)).ok:
            st.session_state.get(session_keys.SPEAKER_SUGGESTIONS, {}).pop(job_id, None)
            flash_and_rerun("Speaker names saved: the transcript, exports, minutes owners and search now use them.")
