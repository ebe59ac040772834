"""The recording pipeline end to end on real audio: upload checks, the worker against the
fake OpenAI server and the offline Whisper, checkpoints and resume after a killed worker,
idempotent redelivery, failures and retries, visibility and deletion; plus the pure
stitching helpers."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core.access.rbac import Actor
from core.meetings import (
    delete_recording,
    get_recording,
    list_recordings,
    read_recording,
    retry_recording,
    transcribe_recording,
)
from core.meetings.stitching import StoredSegment, closing_words, drop_repeated_words, split_into_lanes, stitch_segments
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermanentError, PermissionDenied, ProviderError
from core.platform.models import AuditLog, Document, DocumentChunk, TranscriptionJob, TranscriptionSegment, UsageRecord
from core.platform.storage import get_storage
from tests import audio_samples
from tests.fake_openai import FakeOpenAI, restore_settings
from tests.job_factory import load_job
from tests.recording_fixtures import numbered_transcripts, submit

pytest_plugins = ["tests.recording_fixtures"]  # fake_api, offline, long_tones, meeting_wav

TRANSCRIPTIONS = "/v1/audio/transcriptions"
ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- pure helpers


def _piece(start: float, end: float, text: str, **extra: Any) -> dict[str, Any]:
    return {"start": start, "end": end, "text": text, "speaker": extra.get("speaker"), **extra}


def test_stitch_keeps_each_piece_once_on_the_global_clock() -> None:
    # Cut at 30 s, 2 s overlap: segment 0 heard 0-32 s, segment 1 heard 28-60 s.
    first = StoredSegment(0, 0.0, 30.0, "", (_piece(0, 12, "Hello all."), _piece(29.2, 31.9, "Next item")))
    second = StoredSegment(1, 30.0, 60.0, "", (_piece(29.2, 34.0, "Next item is hiring."), _piece(40, 50, "Done.")))
    lines = stitch_segments([second, first])
    assert [(line.start, line.text) for line in lines] == [
        (0, "Hello all."),
        (29.2, "Next item is hiring."),  # segment 0's copy had its midpoint after the cut
        (40, "Done."),
    ]


def test_stitch_drops_words_repeated_across_a_cut_and_invented_text() -> None:
    first = StoredSegment(0, 0.0, 30.0, "", (_piece(20, 29.9, "We will move the budg"),))
    second = StoredSegment(
        1,
        30.0,
        60.0,
        "",
        (
            _piece(30.1, 36, "We will move the budget to March.", speaker="A"),
            _piece(36, 44, "Thank you for watching.", no_speech_prob=0.93),
            _piece(44, 50, "Agreed.", speaker="B"),
        ),
    )
    lines = stitch_segments([first, second])
    assert [(line.text, line.speaker) for line in lines] == [
        ("We will move the budg", None),
        ("budget to March.", "A"),
        ("Agreed.", "B"),
    ]


def test_repeated_words_are_dropped_only_at_the_very_boundary() -> None:
    assert drop_repeated_words("so we agreed on the plan", "on the plan for May") == "for May"
    # Two shared words far from the end of the previous text are not an overlap.
    assert drop_repeated_words("Segment at 10 seconds.", "Segment at 0 seconds.") == "Segment at 0 seconds."
    assert drop_repeated_words("", "anything") == "anything"


def test_lanes_are_contiguous_and_balanced() -> None:
    assert split_into_lanes(list(range(10)), 4) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert split_into_lanes([1, 2], 4) == [[1], [2]]
    assert split_into_lanes([], 4) == []
    assert closing_words("one two three", limit=2) == "two three"
    assert closing_words("  ") is None


# --------------------------------------------------------------------------- fixtures


def _segment_rows(job_id: int) -> list[tuple[int, float, float]]:
    with session_scope() as session:
        return list(
            session.execute(
                select(
                    TranscriptionSegment.segment_index,
                    TranscriptionSegment.start_seconds,
                    TranscriptionSegment.end_seconds,
                )
                .where(TranscriptionSegment.job_id == job_id)
                .order_by(TranscriptionSegment.segment_index)
            ).tuples()
        )


def _documents(job_id: int) -> dict[str, tuple[str, int, int]]:
    """document_type -> (status, chunks, chunks with start and end seconds)."""
    with session_scope() as session:
        rows = session.execute(
            select(
                Document.document_type,
                Document.status,
                func.count(DocumentChunk.id),
                func.count(DocumentChunk.start_seconds) + 0 * func.count(DocumentChunk.end_seconds),
            )
            .outerjoin(DocumentChunk, DocumentChunk.document_id == Document.id)
            .where(Document.transcription_job_id == job_id)
            .group_by(Document.document_type, Document.status)
        ).all()
    return {r[0]: (r[1], int(r[2]), int(r[3])) for r in rows}


def _usage_rows(job_id: int) -> int:
    with session_scope() as session:
        return int(
            session.scalar(select(func.count(UsageRecord.id)).where(UsageRecord.transcription_job_id == job_id)) or 0
        )


# --------------------------------------------------------------------------- upload checks


def test_upload_refuses_damaged_non_audio_and_oversized_files_leaving_nothing(
    member: Actor, tmp_path: Path, redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files_before = {p for p in get_storage().root.rglob("*") if p.is_file()}  # type: ignore[attr-defined]

    def count_jobs() -> int:
        with session_scope() as session:
            return int(session.scalar(select(func.count()).where(TranscriptionJob.owner_id == member.id)) or 0)

    text = tmp_path / "agenda.mp3"
    text.write_text("Agenda: budget, hiring, roadmap.\n" * 50)
    with pytest.raises(InvalidInput, match=r"agenda\.mp3 is not a recording we can read"):
        submit(member, text)

    screen = audio_samples.video_only(tmp_path / "screen-share.mp4")
    with pytest.raises(InvalidInput, match=r"screen-share\.mp4 has no audio track we can read"):
        submit(member, screen)

    with pytest.raises(InvalidInput, match=r"slides\.pdf is not a supported recording"):
        submit(member, text, filename="slides.pdf")

    monkeypatch.setenv("QUORUM_MAX_AUDIO_MB", "1")
    restore_settings()
    try:
        big = tmp_path / "long.wav"
        big.write_bytes(b"\0" * (1024 * 1024 + 10))
        with pytest.raises(InvalidInput, match=r"long\.wav is 1 MB; recordings are limited to 1 MB"):
            submit(member, big)
    finally:
        monkeypatch.undo()
        restore_settings()

    assert count_jobs() == 0
    assert {p for p in get_storage().root.rglob("*") if p.is_file()} == files_before  # type: ignore[attr-defined]


def test_upload_needs_the_transcribe_permission(tmp_path: Path, meeting_wav: Path, database: str) -> None:
    reader = Actor(id=1, username="reader", role="viewer", permissions=frozenset({"read_transcripts"}))
    with pytest.raises(PermissionDenied, match="transcribe_audio"):
        submit(reader, meeting_wav)


# --------------------------------------------------------------------------- the pipeline


def test_pipeline_against_the_fake_server(
    fake_api: Callable[..., FakeOpenAI], member: Actor, admin: Actor, long_tones: Path
) -> None:
    fake = fake_api(transcription_segment_seconds=34, transcription_overlap_seconds=2, transcription_concurrency=2)
    seen = numbered_transcripts(fake)
    job_id = submit(member, long_tones, filename="Weekly standup.mp3")
    queued = list_recordings(actor=member, mine_only=True)[0]
    assert (queued.id, queued.status, queued.stage) == (job_id, "PENDING", "queued")
    assert queued.duration_seconds == pytest.approx(119, abs=2)

    transcribe_recording(job_id)

    job = load_job(job_id)
    assert (job.status, job.stage, job.progress, job.error) == ("COMPLETED", "done", 1.0, None)
    segments = _segment_rows(job_id)
    # 119 s with at most 30 s of its own audio per segment, cut at the pauses (every 7 s).
    assert len(segments) == len(seen) == 5
    assert [s[0] for s in segments] == list(range(5))
    assert all(b[1] == a[2] for a, b in itertools.pairwise(segments))
    # Every request stayed under the limits, and each lane's second request had a prompt.
    assert all(float(r["duration"]) <= 34.1 for r in seen)
    prompted = sorted(int(m.group(1)) for r in seen if (m := re.search(r"Request (\d+)", r.get("prompt", ""))))
    assert len(prompted) == len(seen) - 2  # two lanes: only each lane's first went without

    detail = get_recording(actor=member, job_id=job_id)
    assert detail.transcript_complete and detail.can_manage and detail.can_delete
    starts = [line.start for line in detail.lines]
    assert starts == sorted(starts) and starts[0] == 0.0 and starts[-1] > 90
    assert len({line.text for line in detail.lines}) == len(detail.lines)  # no text twice from the overlaps
    assert detail.summary.cost_usd == pytest.approx(0.006 * sum(float(r["duration"]) for r in seen) / 60, rel=0.05)

    assert job.minutes is not None and job.minutes_markdown
    docs = _documents(job_id)
    assert set(docs) == {"full_transcript", "meeting_minutes"}
    status, chunks, timed = docs["full_transcript"]
    assert status == "COMPLETED" and chunks >= 1 and timed == chunks
    assert read_recording(actor=admin, job_id=job_id).data == long_tones.read_bytes()


def test_offline_whisper_hears_the_key_words_once(
    offline: Callable[..., None], member: Actor, meeting_wav: Path
) -> None:
    """Real speech through local Whisper, split in several segments with overlaps."""
    offline(transcription_segment_seconds=12, transcription_overlap_seconds=1.5, transcription_concurrency=2)
    job_id = submit(member, meeting_wav, filename="planning.wav")
    transcribe_recording(job_id)

    job = load_job(job_id)
    assert job.status == "COMPLETED", job.error
    assert len(_segment_rows(job_id)) >= 3
    text = (job.transcript_text or "").lower()
    for word in ("budget", "thursday", "marketing", "friday", "engineers"):
        assert text.count(word) == 1, (word, text)
    assert job.provider == "offline" and job.minutes is not None
    documents = _documents(job_id)
    assert documents["full_transcript"][0] == "COMPLETED"
    # Minutes chunks carry the moments their items were said, like transcript chunks.
    minutes_status, _, minutes_timed = documents["meeting_minutes"]
    assert minutes_status == "COMPLETED" and minutes_timed >= 1


def test_a_killed_worker_is_resumed_at_the_first_missing_segment(
    fake_api: Callable[..., FakeOpenAI], member: Actor, long_tones: Path
) -> None:
    fake = fake_api(transcription_segment_seconds=34, transcription_overlap_seconds=1, transcription_concurrency=1)
    job_id = submit(member, long_tones)
    fake.delay_next(1000, 0.5, path=TRANSCRIPTIONS)

    code = f"from core.meetings.transcription import transcribe_recording; transcribe_recording({job_id})"
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while len(_segment_rows(job_id)) < 2:
            assert worker.poll() is None, "the worker ended before it could be killed"
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(timeout=30)
    done_before = _segment_rows(job_id)
    killed = load_job(job_id)
    assert killed.status == "PROCESSING" and killed.stage == "transcribing"

    # A redelivered message while the worker still looks alive does nothing.
    transcribe_recording(job_id)
    assert load_job(job_id).attempts == killed.attempts

    with session_scope() as session:  # the worker's heartbeat is now long gone
        session.execute(
            update(TranscriptionJob)
            .where(TranscriptionJob.id == job_id)
            .values(heartbeat_at=func.now() - func.make_interval(0, 0, 0, 0, 1))
        )
    time.sleep(1.0)  # the fake finishes the dead worker's request in flight (0.5 s delay) before the reset
    fake.reset()
    seen = numbered_transcripts(fake)
    transcribe_recording(job_id)

    job = load_job(job_id)
    assert job.status == "COMPLETED" and job.attempts == 2
    rows = _segment_rows(job_id)
    assert [r[0] for r in rows] == list(range(len(rows)))
    assert rows[: len(done_before)] == done_before
    assert len(seen) == len(rows) - len(done_before)  # only the missing segments were sent


def test_a_silent_recording_sends_nothing_and_completes_empty(
    fake_api: Callable[..., FakeOpenAI], member: Actor, tmp_path: Path
) -> None:
    """Whisper invents text on silence ("Thank you for watching"): silent segments are not sent."""
    fake = fake_api(transcription_segment_seconds=20)
    job_id = submit(member, audio_samples.silence(tmp_path / "muted call.wav", 45.0))
    transcribe_recording(job_id)
    job = load_job(job_id)
    assert (job.status, job.transcript_text, job.transcript_segments) == ("COMPLETED", "", [])
    assert len(_segment_rows(job_id)) == 3 and not fake.calls(TRANSCRIPTIONS)
    assert job.minutes is not None and "No speech" in (job.minutes_markdown or "")


def test_a_worker_whose_job_was_taken_over_stops_without_touching_it(
    fake_api: Callable[..., FakeOpenAI], member: Actor, long_tones: Path
) -> None:
    fake = fake_api(transcription_segment_seconds=16, transcription_concurrency=1)
    fake.delay_next(1000, 0.3, path=TRANSCRIPTIONS)
    job_id = submit(member, long_tones)
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(transcribe_recording, job_id)
        deadline = time.monotonic() + 30
        while not _segment_rows(job_id):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with session_scope() as session:  # another worker claimed it (as after a missed heartbeat)
            session.execute(
                update(TranscriptionJob)
                .where(TranscriptionJob.id == job_id)
                .values(attempts=TranscriptionJob.attempts + 1, stage="normalising")
            )
        assert running.result(timeout=30) is None  # it returns quietly: the job is not its own any more
    job = load_job(job_id)
    assert (job.status, job.stage, job.error, job.transcript_text) == ("PROCESSING", "normalising", None, None)
    assert len(_segment_rows(job_id)) <= 3  # it stopped after the request it had in flight


def test_a_redelivered_message_changes_nothing(
    fake_api: Callable[..., FakeOpenAI], member: Actor, long_tones: Path
) -> None:
    fake = fake_api(transcription_segment_seconds=60)
    job_id = submit(member, long_tones)
    transcribe_recording(job_id)
    before = (load_job(job_id), _segment_rows(job_id), _documents(job_id), _usage_rows(job_id), len(fake.requests))

    transcribe_recording(job_id)
    transcribe_recording(job_id)

    after = (load_job(job_id), _segment_rows(job_id), _documents(job_id), _usage_rows(job_id), len(fake.requests))
    assert after[0].completed_at == before[0].completed_at and after[0].attempts == 1
    assert after[1:] == before[1:]


def test_transient_failures_retry_then_fail_and_a_ui_retry_resumes(
    fake_api: Callable[..., FakeOpenAI], member: Actor, admin: Actor, long_tones: Path
) -> None:
    fake = fake_api(transcription_segment_seconds=34, transcription_concurrency=1, job_max_attempts=2)
    answered: list[int] = []

    def two_then_outage(request: dict[str, Any]) -> list[dict[str, Any]]:
        answered.append(1)
        if len(answered) == 2:
            fake.fail_next(100, 500, path=TRANSCRIPTIONS)
        return [{"start": 0.0, "end": float(request["duration"]), "text": f"Part {len(answered)}."}]

    fake.transcription_handler = two_then_outage
    job_id = submit(member, long_tones)

    with pytest.raises(ProviderError):
        transcribe_recording(job_id)
    job = load_job(job_id)
    assert job.status == "PENDING" and "Retrying automatically (attempt 1 of 2)" in (job.error or "")
    assert len(_segment_rows(job_id)) == 2

    with pytest.raises(PermanentError):
        transcribe_recording(job_id)
    failed = load_job(job_id)
    assert failed.status == "FAILED" and "Retrying" not in (failed.error or "") and failed.stage == "transcribing"
    with pytest.raises(Conflict, match="being transcribed right now"):
        _retry_while_running(member, job_id)

    fake.reset()
    fake.transcription_handler = two_then_outage  # the outage is over; answers continue the count
    summary = retry_recording(actor=member, job_id=job_id)
    assert (summary.status, summary.error, summary.attempts) == ("PENDING", None, 0)
    transcribe_recording(job_id)
    assert load_job(job_id).status == "COMPLETED"
    assert len(answered) == len(_segment_rows(job_id)) == 5  # nothing was transcribed twice
    with session_scope() as session:
        audit = session.scalar(
            select(AuditLog).where(AuditLog.action == "job.retry", AuditLog.target_id == str(job_id))
        )
        assert audit is not None and audit.actor_id == member.id


def _retry_while_running(actor: Actor, job_id: int) -> None:
    """Ask for a retry while a live worker holds the job; the job is FAILED again after."""
    with session_scope() as session:
        session.execute(
            update(TranscriptionJob)
            .where(TranscriptionJob.id == job_id)
            .values(status="PROCESSING", heartbeat_at=func.now())
        )
    try:
        retry_recording(actor=actor, job_id=job_id)
    finally:
        with session_scope() as session:
            session.execute(update(TranscriptionJob).where(TranscriptionJob.id == job_id).values(status="FAILED"))


def test_a_file_damaged_in_storage_fails_at_once_with_a_readable_error(
    fake_api: Callable[..., FakeOpenAI], member: Actor, long_tones: Path
) -> None:
    fake_api()
    job_id = submit(member, long_tones)
    get_storage().root.joinpath(load_job(job_id).storage_key).write_bytes(b"\0garbage" * 100)  # type: ignore[attr-defined]
    with pytest.raises(PermanentError, match="could not be decoded"):
        transcribe_recording(job_id)
    job = load_job(job_id)
    assert job.status == "FAILED" and job.attempts == 1
    assert (job.error or "").startswith("The recording could not be decoded")


def test_visibility_retry_rights_and_delete(
    fake_api: Callable[..., FakeOpenAI], make_user: Callable[..., Actor], admin: Actor, long_tones: Path
) -> None:
    fake_api(transcription_segment_seconds=200)
    owner, colleague = make_user(), make_user()
    private_id = submit(owner, long_tones, visibility="private")
    team_id = submit(owner, long_tones, visibility="team", again=True)

    assert {j.id for j in list_recordings(actor=colleague)} >= {team_id}
    assert private_id not in {j.id for j in list_recordings(actor=colleague)}
    with pytest.raises(NotFound):
        get_recording(actor=colleague, job_id=private_id)
    with pytest.raises(NotFound):
        read_recording(actor=colleague, job_id=private_id)
    assert get_recording(actor=admin, job_id=private_id).summary.owner_id == owner.id

    transcribe_recording(team_id)
    detail = get_recording(actor=colleague, job_id=team_id)
    assert not detail.can_manage and not detail.can_delete
    with pytest.raises(PermissionDenied):
        delete_recording(actor=colleague, job_id=team_id)
    with pytest.raises(PermissionDenied):
        retry_recording(actor=colleague, job_id=team_id)
    with pytest.raises(Conflict, match="already transcribed"):
        retry_recording(actor=owner, job_id=team_id)

    key = load_job(team_id).storage_key
    assert _documents(team_id)
    delete_recording(actor=owner, job_id=team_id)
    with session_scope() as session:
        assert session.get(TranscriptionJob, team_id) is None
        assert not session.scalars(select(Document.id).where(Document.transcription_job_id == team_id)).all()
        assert session.scalar(select(AuditLog.id).where(AuditLog.action == "recording.delete",
                                                        AuditLog.target_id == str(team_id)))  # fmt: skip
    assert not get_storage().exists(key)
    delete_recording(actor=admin, job_id=private_id)  # admins may delete anyone's
    with pytest.raises(NotFound):
        get_recording(actor=owner, job_id=private_id)
