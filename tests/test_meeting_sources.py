"""Meeting sources in answers: the quoted sentence's own second (checked with real espeak-ng
speech through the offline pipeline), who said it, one source per passage, minutes as
plain text; and duplicate recordings pointing to the first upload."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from core.access.rbac import Actor
from core.chat import Source, ask
from core.chat.moments import pin_moments, without_repeated_minutes
from core.chat.retrieval import RetrievalFilters
from core.meetings import list_recordings, transcribe_recording
from core.meetings.speakers import rename_speakers
from core.platform.db import session_scope
from core.platform.errors import DuplicateRecording
from tests import audio_samples
from tests.job_factory import insert_job, load_job
from tests.recording_fixtures import submit

pytest_plugins = ["tests.recording_fixtures"]

LINES = [
    "Good morning everyone, this is the quarterly planning meeting.",
    "We reviewed the travel costs and the hiring plan for next year.",
    "Alice will send the final budget report by Friday.",
    "Any questions before we finish?",
]
CITED = 2
PAUSE = 1.5


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


@pytest.fixture(scope="module")
def spoken_meeting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """espeak-ng speech of LINES with pauses; returns the file and when LINES[CITED] starts."""
    folder = tmp_path_factory.mktemp("spoken")
    parts: list[Path] = []
    cited_at = 0.0
    for number, line in enumerate(LINES):
        if parts:
            parts.append(audio_samples.silence(folder / f"pause{number}.wav", PAUSE))
        if number == CITED:
            cited_at = sum(_seconds(p) for p in parts)
        parts.append(audio_samples.speech(folder / f"line{number}.wav", line))
    return audio_samples.concat(folder / "planning.wav", parts), cited_at


def test_a_spoken_line_that_is_not_first_in_its_chunk_is_cited_at_its_own_second(
    offline: Callable[..., None], make_user: Callable[..., Actor], spoken_meeting: tuple[Path, float]
) -> None:
    offline()
    member = make_user()
    path, cited_at = spoken_meeting
    job_id = submit(member, path, filename="planning.wav")
    transcribe_recording(job_id)
    job = load_job(job_id)
    assert job.status == "COMPLETED", job.error
    assert cited_at > 8  # well after the start of the transcript's only chunk

    from core.documents import list_documents

    documents = [d.id for d in list_documents(actor=member) if d.transcription_job_id == job_id]
    answer = ask(
        actor=member,
        question="When will Alice send the final budget report?",
        filters=RetrievalFilters(document_ids=tuple(documents)),
    )
    assert "[ ]" not in answer.text and "**" not in answer.text
    transcript = [s for s in answer.sources if s.document_type == "full_transcript"]
    assert transcript, answer
    [source] = transcript
    assert source.quote is not None and "budget report" in source.quote.lower()
    assert source.start_seconds == pytest.approx(cited_at, abs=1.5), (source, cited_at)
    assert source.label.endswith(f"at {int(source.start_seconds or 0) // 60}:{int(source.start_seconds or 0) % 60:02d}")
    # One source per passage: the minutes' action item repeats the spoken line, so it is not listed.
    repeated = [s for s in answer.sources if s.document_type == "meeting_minutes" and "budget report" in s.excerpt]
    assert repeated == []


def test_the_moment_and_speaker_of_a_paraphrased_quote(member: Actor, redis_server: str) -> None:
    segments = [
        {"start": 0.0, "end": 6.0, "text": "Welcome. Today we plan the launch.", "speaker": "A"},
        {
            "start": 6.0,
            "end": 14.0,
            "text": "The venue is booked. I will send the final budget by Friday.",
            "speaker": "B",
        },
        {"start": 14.0, "end": 18.0, "text": "Great, thanks.", "speaker": "A"},
    ]
    job_id = insert_job(member, segments=segments, filename="launch.mp3")
    rename_speakers(actor=member, job_id=job_id, names={"B": "Bob"})
    excerpt = "A: Welcome. Today we plan the launch.\nBob: The venue is booked. I will send the final budget by Friday."
    source = Source(
        number=1,
        kind="chunk",
        label="launch transcript.txt at 0:00",
        excerpt=excerpt,
        document_type="full_transcript",
        filename="launch transcript.txt",
        start_seconds=0.0,
        end_seconds=18.0,
        transcription_job_id=job_id,
    )
    with session_scope() as session:
        [pinned] = pin_moments(session, "Bob sends the final budget on Friday [1].", [source])
    # The second sentence of the second piece: about halfway through 6..14 s.
    assert 8.0 < (pinned.start_seconds or 0) < 12.0
    assert pinned.speaker == "Bob" and pinned.label.startswith("launch transcript.txt at 0:")
    assert pinned.label.endswith(", Bob")
    with session_scope() as session:
        [unpinned] = pin_moments(session, "Nothing about it here [1].", [source])
    assert unpinned.start_seconds == 0.0


def test_minutes_lines_the_transcript_already_says_are_left_out() -> None:
    transcript = Source(
        number=1,
        kind="chunk",
        label="t",
        excerpt="A: Alice will send the final budget report by Friday.\nB: Fine.",
        document_type="full_transcript",
        transcription_job_id=7,
        start_seconds=0.0,
    )
    minutes = Source(
        number=2,
        kind="chunk",
        label="m",
        excerpt="- [0:00:13] Alice will send the final budget report by Friday. — Alice, due Friday\n"
        "- [0:01:00] Bob books the venue. — Bob",
        document_type="meeting_minutes",
        transcription_job_id=7,
        start_seconds=13.0,
    )
    only_repeats = Source(**{**minutes.__dict__, "excerpt": minutes.excerpt.splitlines()[0]})
    other_meeting = Source(**{**minutes.__dict__, "transcription_job_id": 8})
    cleaned = without_repeated_minutes([transcript, minutes, only_repeats, other_meeting])
    assert [s.excerpt for s in cleaned] == [
        transcript.excerpt,
        "- [0:01:00] Bob books the venue. — Bob",
        other_meeting.excerpt,
    ]


def test_the_same_recording_again_points_to_the_first(
    offline: Callable[..., None], make_user: Callable[..., Actor], spoken_meeting: tuple[Path, float]
) -> None:
    offline()
    owner, colleague = make_user(), make_user()
    path, _ = spoken_meeting
    first = submit(owner, path, filename="planning.wav")
    with pytest.raises(DuplicateRecording, match=r"already being transcribed as “planning\.wav”") as refused:
        submit(owner, path, filename="planning copy.wav")
    assert refused.value.job_id == first and refused.value.filename == "planning.wav"
    assert [job.id for job in list_recordings(actor=owner, mine_only=True)] == [first]  # nothing stored
    again = submit(owner, path, filename="planning copy.wav", again=True)  # an explicit choice
    assert again != first
    assert submit(colleague, path) not in (first, again)  # someone else's upload is their own
