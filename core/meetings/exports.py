"""Exports of transcripts and minutes: one job in many formats, or many jobs at once.

Every function needs export_transcripts and exports only jobs the actor may read
(core.meetings.recording_access); a job they may not read is NotFound. Each returns an ExportFile
(filename, mime_type, data), a named tuple, so `name, mime, data = export_recording(...)` works.

Formats of one job (`export_recording`):
- transcript: txt, md, docx, srt (00:01:02,345), vtt (00:01:02.345), json
- minutes: minutes-md, minutes-docx (the owner's edit when there is one)
Many jobs: `export_recordings_csv` (one row per transcript segment: job, file, start, end,
speaker, text; cells safe against formula injection) and `export_recordings_zip` (each job's
files in the chosen formats).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any, NamedTuple

from docx import Document as DocxDocument
from docx.text.paragraph import Paragraph

from core.access.rbac import Actor, require
from core.ai.base import TranscriptPiece
from core.meetings.minutes_format import format_clock, pieces_from_segments
from core.meetings.recording_access import load_readable_recording
from core.meetings.speakers import named_segments
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput
from core.platform.tabular import to_csv_bytes

TRANSCRIPT_FORMATS = ("txt", "md", "docx", "srt", "vtt", "json")
MINUTES_FORMATS = ("minutes-md", "minutes-docx")
JOB_FORMATS = TRANSCRIPT_FORMATS + MINUTES_FORMATS
DEFAULT_ZIP_FORMATS = ("txt", "srt", "vtt", "json", "minutes-md")
CSV_COLUMNS = ("job", "file", "start", "end", "speaker", "text")
MAX_BULK_JOBS = 500

_FORMAT_ALIASES = {
    "text": "txt",
    "markdown": "md",
    "word": "docx",
    "webvtt": "vtt",
    "minutes": "minutes-md",
    "minutes-markdown": "minutes-md",
    "minutes_md": "minutes-md",
    "minutes_docx": "minutes-docx",
}
MIME_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "srt": "application/x-subrip",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
}


class ExportFile(NamedTuple):
    """One exported file: a safe file name, its MIME type and its bytes."""

    filename: str
    mime_type: str
    data: bytes


@dataclass(frozen=True)
class _JobSnapshot:
    """What an export needs from a job, read inside one session."""

    id: int
    filename: str
    status: str
    created_at: datetime
    duration_seconds: float | None
    language: str | None
    transcript_text: str | None
    pieces: tuple[TranscriptPiece, ...]
    has_transcript: bool
    minutes_markdown: str | None
    minutes_edited_at: datetime | None

    @property
    def stem(self) -> str:
        """A file-name stem safe on every OS: the upload's name and the job id."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(self.filename).stem).strip("._-")[:80]
        return f"{name or 'recording'}-{self.id}"


def normalise_format(fmt: str) -> str:
    """The canonical name of an export format ("Markdown" -> "md"). Raises InvalidInput."""
    key = fmt.strip().lower().lstrip(".")
    key = _FORMAT_ALIASES.get(key, key)
    if key not in JOB_FORMATS:
        raise InvalidInput(f"Unknown export format {fmt!r}. Choose one of: {', '.join(JOB_FORMATS)}.")
    return key


def _load(actor: Actor, job_ids: Sequence[int]) -> list[_JobSnapshot]:
    require(actor, "export_transcripts")
    snapshots = []
    with session_scope() as session:
        for job_id in job_ids:
            job = load_readable_recording(session, actor=actor, job_id=job_id)
            has_transcript = job.transcript_segments is not None or job.transcript_text is not None
            snapshots.append(
                _JobSnapshot(
                    id=job.id,
                    filename=job.filename,
                    status=job.status,
                    created_at=job.created_at,
                    duration_seconds=job.duration_seconds,
                    language=job.language,
                    transcript_text=job.transcript_text,
                    pieces=tuple(pieces_from_segments(named_segments(job))),
                    has_transcript=has_transcript,
                    minutes_markdown=job.minutes_markdown,
                    minutes_edited_at=job.minutes_edited_at,
                )
            )
    return snapshots


def _bulk_ids(job_ids: Sequence[int]) -> list[int]:
    ids = list(dict.fromkeys(int(job_id) for job_id in job_ids))
    if not ids:
        raise InvalidInput("Select at least one recording to export.")
    if len(ids) > MAX_BULK_JOBS:
        raise InvalidInput(f"Export at most {MAX_BULK_JOBS} recordings at a time.")
    return ids


# --------------------------------------------------------------------------- one job


def export_recording(*, actor: Actor, job_id: int, fmt: str) -> ExportFile:
    """One job as `fmt` (see JOB_FORMATS; "markdown", "minutes", ... are accepted). Read-only.

    Raises PermissionDenied without export_transcripts, NotFound when the actor may not
    read the job, InvalidInput for an unknown format, Conflict when the job has no
    transcript (or, for minutes, no minutes) yet.
    """
    key = normalise_format(fmt)
    (job,) = _load(actor, [job_id])
    return _render(job, key)


def export_transcript(*, actor: Actor, job_id: int, fmt: str) -> ExportFile:
    """The transcript as txt, md, docx, srt, vtt or json. Read-only; raises as export_recording."""
    key = normalise_format(fmt)
    if key not in TRANSCRIPT_FORMATS:
        raise InvalidInput(f"Transcripts export as {', '.join(TRANSCRIPT_FORMATS)}.")
    return export_recording(actor=actor, job_id=job_id, fmt=key)


def export_minutes(*, actor: Actor, job_id: int, fmt: str = "md") -> ExportFile:
    """The minutes as Markdown ("md") or Word ("docx"). Read-only; raises as export_recording."""
    key = normalise_format(fmt if fmt.startswith("minutes") else f"minutes-{fmt.strip().lower()}")
    return export_recording(actor=actor, job_id=job_id, fmt=key)


def _render(job: _JobSnapshot, key: str) -> ExportFile:
    if key in MINUTES_FORMATS:
        if not job.minutes_markdown:
            raise Conflict(f"Recording {job.id} ({job.filename}) has no minutes yet.")
        if key == "minutes-md":
            return ExportFile(f"{job.stem}-minutes.md", MIME_TYPES["md"], job.minutes_markdown.encode("utf-8"))
        return ExportFile(f"{job.stem}-minutes.docx", MIME_TYPES["docx"], markdown_to_docx(job.minutes_markdown))
    if not job.has_transcript:
        raise Conflict(f"Recording {job.id} ({job.filename}) has no transcript yet (status {job.status}).")
    renderers = {
        "txt": transcript_txt,
        "md": transcript_markdown,
        "srt": transcript_srt,
        "vtt": transcript_vtt,
        "json": transcript_json,
        "docx": transcript_docx,
    }
    data = renderers[key](job)
    return ExportFile(f"{job.stem}.{key}", MIME_TYPES[key], data)


def _header_facts(job: _JobSnapshot) -> list[str]:
    facts = [f"Recorded file: {job.filename}", f"Created: {job.created_at:%Y-%m-%d %H:%M} UTC"]
    if job.duration_seconds is not None:
        facts.append(f"Duration: {format_clock(job.duration_seconds)}")
    if job.language:
        facts.append(f"Language: {job.language}")
    return facts


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _speaker_prefix(piece: TranscriptPiece) -> str:
    return f"{_one_line(piece.speaker)}: " if piece.speaker else ""


def transcript_txt(job: _JobSnapshot) -> bytes:
    """Plain text: a short header, then one "[h:mm:ss] Speaker: text" line per segment."""
    lines = [f"Transcript: {job.filename}", *_header_facts(job), ""]
    if job.pieces:
        lines += [f"[{format_clock(p.start)}] {_speaker_prefix(p)}{_one_line(p.text)}" for p in job.pieces]
    elif job.transcript_text:
        lines.append(job.transcript_text.strip())
    return ("\n".join(lines).rstrip() + "\n").encode("utf-8")


def transcript_markdown(job: _JobSnapshot) -> bytes:
    """Markdown: a title, the facts as a list, then one paragraph per segment."""
    lines = [f"# Transcript: {job.filename}", "", *(f"- {fact}" for fact in _header_facts(job)), ""]
    for piece in job.pieces:
        speaker = f"**{_one_line(piece.speaker)}:** " if piece.speaker else ""
        lines += [f"**[{format_clock(piece.start)}]** {speaker}{_one_line(piece.text)}", ""]
    if not job.pieces and job.transcript_text:
        lines.append(job.transcript_text.strip())
    return ("\n".join(lines).rstrip() + "\n").encode("utf-8")


def _subtitle_time(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_time(seconds: float) -> str:
    """SubRip time: 00:01:02,345."""
    return _subtitle_time(seconds, ",")


def vtt_time(seconds: float) -> str:
    """WebVTT time: 00:01:02.345."""
    return _subtitle_time(seconds, ".")


def _cue_times(piece: TranscriptPiece) -> tuple[float, float]:
    return piece.start, max(piece.start, piece.end)


def transcript_srt(job: _JobSnapshot) -> bytes:
    """SubRip: numbered cues, "HH:MM:SS,mmm --> HH:MM:SS,mmm", the speaker before the text."""
    blocks = []
    for number, piece in enumerate(job.pieces, start=1):
        start, end = _cue_times(piece)
        text = (_speaker_prefix(piece) + _one_line(piece.text)).replace("-->", "->")
        blocks.append(f"{number}\n{srt_time(start)} --> {srt_time(end)}\n{text}\n")
    return "\n".join(blocks).encode("utf-8")


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def transcript_vtt(job: _JobSnapshot) -> bytes:
    """WebVTT: "WEBVTT", then cues "HH:MM:SS.mmm --> HH:MM:SS.mmm" with <v Speaker> voice tags."""
    blocks = ["WEBVTT\n"]
    for piece in job.pieces:
        start, end = _cue_times(piece)
        text = _vtt_escape(_one_line(piece.text)).replace("-->", "->")
        if piece.speaker:
            text = f"<v {_vtt_escape(_one_line(piece.speaker))}>{text}"
        blocks.append(f"{vtt_time(start)} --> {vtt_time(end)}\n{text}\n")
    return "\n".join(blocks).encode("utf-8")


def transcript_json(job: _JobSnapshot) -> bytes:
    """JSON: the job's facts, the full text and the segments (seconds, speaker, text)."""
    segments = [{"start": p.start, "end": p.end, "speaker": p.speaker, "text": p.text.strip()} for p in job.pieces]
    text = job.transcript_text if job.transcript_text is not None else " ".join(p.text.strip() for p in job.pieces)
    payload: dict[str, Any] = {
        "job_id": job.id,
        "filename": job.filename,
        "created_at": job.created_at.isoformat(),
        "duration_seconds": job.duration_seconds,
        "language": job.language,
        "text": text,
        "segments": segments,
    }
    return json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8")


def transcript_docx(job: _JobSnapshot) -> bytes:
    """Word: a title, the facts, then one paragraph per segment with a bold time and speaker."""
    document = DocxDocument()
    document.core_properties.title = f"Transcript: {job.filename}"
    document.add_heading(f"Transcript: {job.filename}", level=1)
    for fact in _header_facts(job):
        document.add_paragraph(fact)
    for piece in job.pieces:
        paragraph = document.add_paragraph()
        paragraph.add_run(f"[{format_clock(piece.start)}] ").bold = True
        if piece.speaker:
            paragraph.add_run(f"{_one_line(piece.speaker)}: ").bold = True
        paragraph.add_run(_xml_safe(_one_line(piece.text)))
    if not job.pieces and job.transcript_text:
        document.add_paragraph(_xml_safe(job.transcript_text.strip()))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_safe(text: str) -> str:
    """Text Word's XML can hold (control characters removed)."""
    return _XML_INVALID.sub("", text)


# --------------------------------------------------------------------------- Markdown -> Word

_INLINE = re.compile(r"(\*\*[^*]+\*\*|__[^_]+__|`[^`]+`|\*[^*\s][^*]*\*|_[^_\s][^_]*_)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_CHECKBOX = re.compile(r"^\s*[-*+]\s+\[([ xX])\]\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")


def _add_inline(paragraph: Paragraph, text: str) -> None:
    """Runs for **bold**, *italic* / _italic_ and `code` spans; everything else plain."""
    for part in _INLINE.split(_xml_safe(text)):
        if not part:
            continue
        if (part.startswith("**") and part.endswith("**")) or (part.startswith("__") and part.endswith("__")):
            paragraph.add_run(part[2:-2]).bold = True
        elif part.startswith("`") and part.endswith("`"):
            paragraph.add_run(part[1:-1]).font.name = "Consolas"
        elif len(part) > 2 and part[0] in "*_" and part[-1] == part[0]:
            paragraph.add_run(part[1:-1]).italic = True
        else:
            paragraph.add_run(part)


def markdown_to_docx(markdown: str) -> bytes:
    """A Word document from the Markdown minutes: headings, bullet, numbered and checkbox
    lists, paragraphs, and bold/italic/code spans. Other Markdown stays as text. Pure."""
    document = DocxDocument()
    paragraph_lines: list[str] = []

    def flush() -> None:
        if paragraph_lines:
            _add_inline(document.add_paragraph(), " ".join(paragraph_lines))
            paragraph_lines.clear()

    for raw in markdown.splitlines():
        line = raw.rstrip()
        heading = _HEADING.match(line)
        checkbox = _CHECKBOX.match(line)
        bullet = _BULLET.match(line)
        numbered = _NUMBERED.match(line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            level = len(heading.group(1))
            text = heading.group(2).strip()
            if level == 1 and not document.core_properties.title:
                document.core_properties.title = text[:200]
            document.add_heading(_xml_safe(text), level=level)
        elif checkbox:
            flush()
            mark = "☑ " if checkbox.group(1).lower() == "x" else "☐ "
            _add_inline(document.add_paragraph(style="List Bullet"), mark + checkbox.group(2))
        elif bullet:
            flush()
            _add_inline(document.add_paragraph(style="List Bullet"), bullet.group(1))
        elif numbered:
            flush()
            _add_inline(document.add_paragraph(style="List Number"), numbered.group(1))
        else:
            paragraph_lines.append(line.strip())
    flush()
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- many jobs


def export_recordings_csv(*, actor: Actor, job_ids: Sequence[int]) -> ExportFile:
    """One CSV row per transcript segment of the selected jobs: job, file, start, end
    (seconds), speaker, text. Jobs without a transcript yet add no rows. Read-only.

    Raises PermissionDenied without export_transcripts, NotFound when any selected job is
    not readable, InvalidInput for an empty or too large selection (MAX_BULK_JOBS).
    """
    jobs = _load(actor, _bulk_ids(job_ids))
    rows = [
        {
            "job": job.id,
            "file": job.filename,
            "start": round(piece.start, 3),
            "end": round(max(piece.start, piece.end), 3),
            "speaker": piece.speaker or "",
            "text": _one_line(piece.text),
        }
        for job in jobs
        for piece in job.pieces
    ]
    name = f"transcripts-{jobs[0].stem}.csv" if len(jobs) == 1 else f"transcripts-{len(jobs)}-recordings.csv"
    return ExportFile(name, MIME_TYPES["csv"], to_csv_bytes(rows, CSV_COLUMNS))


def export_recordings_zip(
    *, actor: Actor, job_ids: Sequence[int], formats: Sequence[str] = DEFAULT_ZIP_FORMATS
) -> ExportFile:
    """A ZIP with each selected job's files in `formats` (see JOB_FORMATS). Read-only.

    Files a job cannot give yet (no transcript, no minutes) are left out and listed in
    SKIPPED.txt inside the archive. Raises as export_recordings_csv, and InvalidInput for an
    unknown format.
    """
    keys = list(dict.fromkeys(normalise_format(fmt) for fmt in formats))
    if not keys:
        raise InvalidInput("Choose at least one format to put in the ZIP.")
    jobs = _load(actor, _bulk_ids(job_ids))
    skipped: list[str] = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for job in jobs:
            for key in keys:
                try:
                    exported = _render(job, key)
                except Conflict as error:
                    skipped.append(f"{key}: {error}")
                    continue
                archive.writestr(exported.filename, exported.data)
        if skipped:
            archive.writestr("SKIPPED.txt", "\n".join(skipped) + "\n")
    name = f"{jobs[0].stem}.zip" if len(jobs) == 1 else f"transcripts-{len(jobs)}-recordings.zip"
    return ExportFile(name, MIME_TYPES["zip"], buffer.getvalue())
