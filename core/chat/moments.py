"""Meeting sources that open the right second, and one source per passage.

A transcript chunk spans minutes of a meeting and several speakers, so its start is rarely
the moment an answer quotes. `pin_moments` runs once an answer is written: for every cited
transcript or minutes source it finds the sentence the answer took from it (the answer's
sentences that cite it, matched by shared words) and moves the source's start to that
sentence: for a transcript, the sentence's start within its timed piece, with the speaker
who said it; for minutes, the [h:mm:ss] stamp of the line.

`without_repeated_minutes` runs before the prompt: a minutes line that says what a transcript
passage of the same meeting among the sources already says (an extractive summary sentence,
an action item taken from the transcript) is left out of the minutes source, and a minutes
source left with nothing of its own is dropped. So the same sentence is never cited twice,
and minutes stay when they add something (a summary, an item said elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ai import extractive
from core.meetings.speakers import named_segments
from core.platform.models import TranscriptionJob
from core.platform.statuses import DocumentType
from core.platform.timecodes import short_clock

if TYPE_CHECKING:
    from core.chat.sources import Source

_STAMP = re.compile(r"\[(?:(\d+):)?(\d{1,2}):(\d{2})\]\s*")
_CITED = re.compile(r"\[(\d{1,3})\]")
_DETAILS = re.compile(r"\s+[—–]\s+[^—–]*$")  # " — Alice, due Friday" after a minutes action item
_BULLET = re.compile(r"^\s*[-*+]\s+")
_LEADING_CITATIONS = re.compile(r"^\s*(?:\[\d{1,3}\]\s*)+")
_REPEATED_SHARE = 0.8  # of a minutes sentence's words found in one transcript passage
_MEETING_TYPES = ("full_transcript", "meeting_minutes")


def _stamp_seconds(match: re.Match[str]) -> float:
    hours, minutes, seconds = match.groups()
    return float(int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds))


def _words(text: str) -> set[str]:
    return set(extractive.content_words(text))


# --------------------------------------------------------------------------- clean sources


def _repeats(sentence: str, passages: Sequence[set[str]]) -> bool:
    words = _words(_DETAILS.sub("", _STAMP.sub("", sentence)))
    if len(words) < 2:
        return False
    return any(len(words & passage) >= _REPEATED_SHARE * len(words) for passage in passages)


def _own_lines(excerpt: str, passages: Sequence[set[str]]) -> str:
    """The minutes excerpt without the sentences a transcript passage already holds (an
    action item's " — owner, due" tail goes with its sentence)."""
    kept_lines = []
    for line in excerpt.splitlines():
        bullet = _BULLET.match(line)
        prefix = bullet.group(0) if bullet else ""
        details = _DETAILS.search(line)
        body = line[len(prefix) : details.start() if details else len(line)]
        sentences = extractive.split_sentences(body)
        kept = [s for s in sentences if not _repeats(s, passages)]
        if len(kept) == len(sentences):
            kept_lines.append(line)
        elif kept:
            kept_lines.append(prefix + " ".join(kept) + (details.group(0) if details else ""))
    return "\n".join(kept_lines).strip()


def without_repeated_minutes(sources: Sequence[Source]) -> list[Source]:
    """`sources` with minutes passages cut down to what the transcript passages of the same
    meeting among them do not already say; a minutes source with nothing left is dropped. Pure."""
    passages: dict[int, list[set[str]]] = {}
    for source in sources:
        if source.document_type == DocumentType.TRANSCRIPT and source.transcription_job_id is not None:
            passages.setdefault(source.transcription_job_id, []).append(_words(source.excerpt))
    cleaned: list[Source] = []
    for source in sources:
        job_passages = passages.get(source.transcription_job_id or -1)
        if source.document_type != "meeting_minutes" or not job_passages:
            cleaned.append(source)
            continue
        own = _own_lines(source.excerpt, job_passages)
        if len(_words(own)) >= 2:
            cleaned.append(replace(source, excerpt=own) if own != source.excerpt else source)
    return cleaned


# --------------------------------------------------------------------------- moments


def _citing_text(answer: str, number: int) -> str:
    """The sentences (or bullet lines) of `answer` that cite [number], citations removed.

    A citation the sentence splitter set apart ("... by Friday. [1]") belongs to the
    sentence before it.
    """
    found = []
    for line in answer.splitlines():
        previous = ""
        for sentence in extractive.split_sentences(line) or [line]:
            leading = _LEADING_CITATIONS.match(sentence)
            if leading and previous and any(int(n) == number for n in _CITED.findall(leading.group(0))):
                found.append(previous)  # "... Friday. [1]": the mark closes the sentence before
            rest = sentence[leading.end() :] if leading else sentence
            text = _CITED.sub("", rest).strip()
            if text and any(int(n) == number for n in _CITED.findall(rest)):
                found.append(text)
            previous = text or previous
    return " ".join(found)


def _timed_sentences(segments: Sequence[Mapping[str, Any]], start: float, end: float) -> list[tuple[str, float, Any]]:
    """(sentence, when it starts, speaker) of the pieces said between start and end; a
    sentence's start is interpolated by its position in the piece's text."""
    found = []
    for item in segments:
        piece_start, piece_end = float(item.get("start") or 0.0), float(item.get("end") or 0.0)
        if not start - 0.5 <= piece_start <= end + 0.5:
            continue
        text = " ".join(str(item.get("text") or "").split())
        cursor = 0
        for sentence in extractive.split_sentences(text) or [text]:
            at = text.find(sentence[:40], cursor)
            at = cursor if at < 0 else at
            fraction = at / max(1, len(text))
            found.append((sentence, piece_start + max(0.0, piece_end - piece_start) * fraction, item.get("speaker")))
            cursor = at + len(sentence)
    return found


def _best(query: str, sentences: Sequence[str]) -> int | None:
    scores = extractive.overlap_scores(query, sentences)
    if not scores or max(scores) <= 0:
        return None
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _pin_transcript(source: Source, query: str, segments: Sequence[Mapping[str, Any]]) -> Source:
    start = source.start_seconds or 0.0
    candidates = _timed_sentences(segments, start, source.end_seconds or start)
    best = _best(query, [c[0] for c in candidates])
    if best is None:
        return source
    sentence, moment, speaker = candidates[best]
    moment = round(max(start, moment), 2)
    label = f"{source.filename} at {short_clock(moment)}" + (f", {speaker}" if speaker else "")
    return replace(source, start_seconds=moment, label=label, speaker=speaker or None, quote=sentence)


def _pin_minutes(source: Source, query: str) -> Source:
    candidates: list[tuple[str, float]] = []
    for line in source.excerpt.splitlines():
        stamp = _STAMP.search(line)
        if stamp:
            candidates.append((_BULLET.sub("", line[stamp.end() :]).strip(), _stamp_seconds(stamp)))
    best = _best(query, [c[0] for c in candidates])
    if best is None:
        return source
    sentence, moment = candidates[best]
    return replace(source, start_seconds=moment, label=f"{source.filename} at {short_clock(moment)}", quote=sentence)


def pin_moments(session: Session, answer: str, sources: Sequence[Source]) -> list[Source]:
    """Cited transcript and minutes sources moved to the moment of the sentence the answer
    quotes from them (see the module docstring). Reads the cited recordings' transcripts;
    does not commit. Sources whose quote cannot be found keep the passage's start."""
    wanted = {
        s.transcription_job_id
        for s in sources
        if s.document_type == DocumentType.TRANSCRIPT
        and s.transcription_job_id is not None
        and s.start_seconds is not None
    }
    segments: dict[int, list[dict[str, Any]]] = {}
    if wanted:
        for job in session.scalars(select(TranscriptionJob).where(TranscriptionJob.id.in_(wanted))):
            segments[job.id] = named_segments(job)
    pinned = []
    for source in sources:
        if source.document_type not in _MEETING_TYPES or source.transcription_job_id is None:
            pinned.append(source)
            continue
        query = _citing_text(answer, source.number)
        if not query.strip():
            pinned.append(source)
        elif source.document_type == DocumentType.TRANSCRIPT and source.transcription_job_id in segments:
            pinned.append(_pin_transcript(source, query, segments[source.transcription_job_id]))
        elif source.document_type == DocumentType.MINUTES:
            pinned.append(_pin_minutes(source, query))
        else:
            pinned.append(source)
    return pinned
