"""Exports: every transcript and minutes format parsed back by an independent reader,
bulk CSV and ZIP, and who may export what."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from typing import Any

import docx
import pytest
import srt
import webvtt

from core.meetings import write_minutes_for_recording
from core.meetings.exports import (
    export_minutes,
    export_recording,
    export_recordings_csv,
    export_recordings_zip,
    export_transcript,
    markdown_to_docx,
    srt_time,
    vtt_time,
)
from core.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tests.job_factory import insert_job, make_role

SEGMENTS = [
    {"start": 0.0, "end": 4.25, "text": "We decided to ship on Monday.", "speaker": "Bob"},
    {"start": 4.25, "end": 9.5, "text": "Alice will update the roadmap by Friday.", "speaker": "Carol"},
    {
        "start": 3662.345,
        "end": 3665.0,
        "text": "=SUM(A1:A9) is not a formula <b>here</b> & --> there",
        "speaker": "Dan",
    },
    {"start": 3665.0, "end": 3670.0, "text": "-1 point from me.\nSecond line.", "speaker": None},
]


@pytest.fixture
def job(member: Any) -> int:
    return insert_job(member, segments=SEGMENTS, filename="Weekly sync (final).m4a")


def test_transcript_txt_and_markdown(member: Any, job: int) -> None:
    name, mime, data = export_transcript(actor=member, job_id=job, fmt="txt")
    assert name == f"Weekly_sync_final-{job}.txt" and mime.startswith("text/plain")
    text = data.decode("utf-8")
    assert "[0:00:00] Bob: We decided to ship on Monday." in text
    assert "[1:01:02] Dan: =SUM(A1:A9) is not a formula" in text
    assert "[1:01:05] -1 point from me. Second line." in text

    name, mime, data = export_recording(actor=member, job_id=job, fmt="Markdown")
    assert name.endswith(".md") and mime.startswith("text/markdown")
    markdown = data.decode("utf-8")
    assert markdown.startswith("# Transcript: Weekly sync (final).m4a")
    assert "**[0:00:04]** **Carol:** Alice will update the roadmap by Friday." in markdown


def test_srt_parses_with_exact_times(member: Any, job: int) -> None:
    name, mime, data = export_transcript(actor=member, job_id=job, fmt="srt")
    assert name.endswith(".srt") and mime == "application/x-subrip"
    text = data.decode("utf-8")
    assert "01:01:02,345 --> 01:01:05,000" in text
    cues = list(srt.parse(text, ignore_errors=False))
    assert [c.index for c in cues] == [1, 2, 3, 4]
    assert [round(c.start.total_seconds(), 3) for c in cues] == [s["start"] for s in SEGMENTS]
    assert [round(c.end.total_seconds(), 3) for c in cues] == [s["end"] for s in SEGMENTS]
    assert cues[0].content == "Bob: We decided to ship on Monday."
    assert "-->" not in cues[2].content and cues[3].content == "-1 point from me. Second line."


def test_vtt_parses_with_voices_and_escaped_text(member: Any, job: int) -> None:
    name, mime, data = export_transcript(actor=member, job_id=job, fmt="vtt")
    assert name.endswith(".vtt") and mime.startswith("text/vtt")
    text = data.decode("utf-8")
    assert text.startswith("WEBVTT\n\n")
    assert "01:01:02.345 --> 01:01:05.000" in text
    cues = webvtt.from_buffer(io.StringIO(text)).captions
    assert [c.start for c in cues] == ["00:00:00.000", "00:00:04.250", "01:01:02.345", "01:01:05.000"]
    assert [c.voice for c in cues] == ["Bob", "Carol", "Dan", None]
    assert "&lt;b&gt;here&lt;/b&gt; &amp;" in cues[2].raw_text


def test_json_keeps_segments_and_text(member: Any, job: int) -> None:
    _, mime, data = export_transcript(actor=member, job_id=job, fmt="json")
    payload = json.loads(data)
    assert mime == "application/json" and payload["job_id"] == job
    assert [(s["start"], s["end"], s["speaker"]) for s in payload["segments"]] == [
        (s["start"], s["end"], s["speaker"]) for s in SEGMENTS
    ]
    assert payload["text"].startswith("We decided to ship on Monday.")


def test_docx_opens_with_python_docx(member: Any, job: int) -> None:
    name, mime, data = export_transcript(actor=member, job_id=job, fmt="docx")
    assert name.endswith(".docx") and "wordprocessingml" in mime
    document = docx.Document(io.BytesIO(data))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "Transcript: Weekly sync (final).m4a"
    assert "[0:00:04] Carol: Alice will update the roadmap by Friday." in texts
    bold = [r.text for p in document.paragraphs for r in p.runs if r.bold]
    assert "[1:01:02] " in bold and "Dan: " in bold


def test_minutes_export_as_markdown_and_docx(offline_provider: Any, member: Any, job: int) -> None:
    with pytest.raises(Conflict):
        export_minutes(actor=member, job_id=job, fmt="md")
    write_minutes_for_recording(job)

    name, mime, data = export_minutes(actor=member, job_id=job, fmt="md")
    assert name == f"Weekly_sync_final-{job}-minutes.md" and mime.startswith("text/markdown")
    assert "[0:00:00] We decided to ship on Monday." in data.decode("utf-8")

    name, _, data = export_recording(actor=member, job_id=job, fmt="minutes-docx")
    document = docx.Document(io.BytesIO(data))
    headings = [p.text for p in document.paragraphs if p.style is not None and p.style.name.startswith("Heading")]
    assert headings[:3] == ["Minutes: Weekly sync (final)", "Summary", "Decisions"]
    bullets = [p.text for p in document.paragraphs if p.style is not None and p.style.name == "List Bullet"]
    assert "[0:00:00] We decided to ship on Monday." in bullets
    assert any(b.startswith("[0:00:04] Alice will update the roadmap by Friday.") for b in bullets)


def test_markdown_to_docx_inline_styles() -> None:
    document = docx.Document(io.BytesIO(markdown_to_docx("# T\n\nSome **bold** and _it_ text\ncontinued.\n\n1. one\n")))
    paragraph = document.paragraphs[1]
    assert paragraph.text == "Some bold and it text continued."
    assert [r.text for r in paragraph.runs if r.bold] == ["bold"]
    assert [r.text for r in paragraph.runs if r.italic] == ["it"]
    assert document.paragraphs[2].style is not None and document.paragraphs[2].style.name == "List Number"


def test_subtitle_time_formats() -> None:
    assert srt_time(62.345) == "00:01:02,345"
    assert vtt_time(62.345) == "00:01:02.345"
    assert srt_time(0) == "00:00:00,000" and vtt_time(3599.9996) == "01:00:00.000"
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2},\d{3}", srt_time(7322.5))


def test_bulk_csv_one_row_per_segment_and_formula_safe(member: Any, make_user: Any, job: int) -> None:
    colleague = make_user()
    other = insert_job(colleague, segments=SEGMENTS[:2], filename="+cmd|calc.mp3")  # team-visible
    pending = insert_job(member, status="PROCESSING")

    name, mime, data = export_recordings_csv(actor=member, job_ids=[job, other, pending, job])
    assert name == "transcripts-3-recordings.csv" and mime.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == len(SEGMENTS) + 2
    assert list(rows[0]) == ["job", "file", "start", "end", "speaker", "text"]
    assert [r["job"] for r in rows] == [str(job)] * 4 + [str(other)] * 2
    assert rows[2]["start"] == "3662.345" and rows[2]["speaker"] == "Dan"
    assert rows[2]["text"].startswith("'=SUM(A1:A9)")
    assert rows[3]["text"] == "'-1 point from me. Second line."
    assert rows[4]["file"] == "'+cmd|calc.mp3"


def test_bulk_zip_contains_each_jobs_files(offline_provider: Any, member: Any, job: int) -> None:
    second = insert_job(member, segments=SEGMENTS[:1], filename="standup.wav")
    write_minutes_for_recording(job)

    name, mime, data = export_recordings_zip(actor=member, job_ids=[job, second], formats=["srt", "docx", "minutes"])
    assert mime == "application/zip" and name.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(
        [
            f"Weekly_sync_final-{job}.srt",
            f"Weekly_sync_final-{job}.docx",
            f"Weekly_sync_final-{job}-minutes.md",
            f"standup-{second}.srt",
            f"standup-{second}.docx",
            "SKIPPED.txt",
        ]
    )
    assert "no minutes yet" in archive.read("SKIPPED.txt").decode()
    assert len(list(srt.parse(archive.read(f"Weekly_sync_final-{job}.srt").decode()))) == len(SEGMENTS)
    docx.Document(io.BytesIO(archive.read(f"standup-{second}.docx")))


def test_export_needs_the_permission(make_user: Any, job: int) -> None:
    reader = make_user(make_role("read_transcripts"))
    with pytest.raises(PermissionDenied):
        export_recording(actor=reader, job_id=job, fmt="txt")
    with pytest.raises(PermissionDenied):
        export_recordings_csv(actor=reader, job_ids=[job])
    with pytest.raises(PermissionDenied):
        export_recordings_zip(actor=reader, job_ids=[job])


def test_only_jobs_the_actor_can_read_are_exported(member: Any, make_user: Any, admin: Any) -> None:
    colleague = make_user()
    private = insert_job(colleague, segments=SEGMENTS, visibility="private")
    team = insert_job(colleague, segments=SEGMENTS)
    exporter_without_read = make_user(make_role("export_transcripts"))

    with pytest.raises(NotFound):
        export_recording(actor=member, job_id=private, fmt="txt")
    with pytest.raises(NotFound):
        export_recordings_csv(actor=member, job_ids=[team, private])
    with pytest.raises(NotFound):
        export_recording(actor=exporter_without_read, job_id=team, fmt="txt")
    assert export_recording(actor=member, job_id=team, fmt="txt").data
    assert export_recording(actor=admin, job_id=private, fmt="srt").data
    assert export_recording(actor=colleague, job_id=private, fmt="vtt").data


def test_bad_requests(member: Any, job: int) -> None:
    with pytest.raises(InvalidInput):
        export_recording(actor=member, job_id=job, fmt="pdf")
    with pytest.raises(InvalidInput):
        export_transcript(actor=member, job_id=job, fmt="minutes-md")
    with pytest.raises(InvalidInput):
        export_recordings_csv(actor=member, job_ids=[])
    with pytest.raises(Conflict):
        export_recording(actor=member, job_id=insert_job(member, status="PENDING"), fmt="srt")
