"""One transcript from checkpointed segments, and the previous-segment prompt. Pure functions.

Piece times are made global by adding the segment's real cut position. A
piece belongs to the segment whose own stretch holds its midpoint, which drops the pieces
heard twice in the overlap; words still repeated across a boundary (a sentence cut in the
middle) are dropped from the later piece. Pieces with a high no_speech_prob (Whisper
inventing text on silence) are dropped. Speaker labels are kept as the model gives them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

NO_SPEECH_THRESHOLD = 0.6  # pieces Whisper itself thinks are probably not speech
_PROMPT_WORDS = 60  # whisper-1 reads at most 224 prompt tokens; the closing sentences are what helps
_DEDUPE_WORDS = 40  # how far either side of a boundary repeated words are looked for
_MIN_REPEAT_WORDS = 2


T = TypeVar("T")


@dataclass(frozen=True)
class TranscriptLine:
    """A timestamped line of the transcript; seconds from the start of the recording."""

    start: float
    end: float
    text: str
    speaker: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "speaker": self.speaker}


@dataclass(frozen=True)
class StoredSegment:
    """A transcribed segment as checkpointed: its own stretch [start, end) and its pieces
    (dicts with global start, end, text, speaker, no_speech_prob)."""

    index: int
    start: float
    end: float
    text: str
    pieces: tuple[dict[str, Any], ...] = ()


_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[tuple[str, int]]:
    """(normalised word, index of the whitespace token it came from) for each word in `text`."""
    result = []
    for position, token in enumerate(text.split()):
        normalised = "".join(_WORD.findall(token.lower()))
        if normalised:
            result.append((normalised, position))
    return result


def drop_repeated_words(previous: str, text: str) -> str:
    """`text` without its opening words when they repeat the closing words of `previous`.

    The overlap makes both neighbours hear the words around a cut: the longest run of at
    least two words that ends `previous` (give or take one word the cut garbled) and
    starts `text` (likewise) is removed from `text`. Pure.
    """
    tail = _words(previous)[-_DEDUPE_WORDS:]
    head = _words(text)[:_DEDUPE_WORDS]
    if not tail or not head:
        return text
    matcher = difflib.SequenceMatcher(None, [w for w, _ in tail], [w for w, _ in head], autojunk=False)
    match = matcher.find_longest_match(0, len(tail), 0, len(head))
    if match.size < _MIN_REPEAT_WORDS or match.a + match.size < len(tail) - 1 or match.b > 1:
        return text
    tokens = text.split()
    last_repeated = head[match.b + match.size - 1][1]
    return " ".join(tokens[last_repeated + 1 :])


def stitch_segments(segments: Sequence[StoredSegment], *, overlap_seconds: float = 2.0) -> list[TranscriptLine]:
    """One timestamped transcript from checkpointed segments, in order. Pure.

    Keeps each piece in the segment whose own stretch holds its midpoint (the first and
    last segments own everything before and after them), drops pieces with
    no_speech_prob over NO_SPEECH_THRESHOLD, and removes words repeated across a boundary
    from a segment's first piece when it starts within `overlap_seconds` of the cut.
    """
    ordered = sorted(segments, key=lambda s: s.index)
    lines: list[TranscriptLine] = []
    for position, segment in enumerate(ordered):
        low = segment.start if position > 0 else float("-inf")
        high = segment.end if position < len(ordered) - 1 else float("inf")
        at_boundary = position > 0
        for piece in segment.pieces:
            text = str(piece.get("text") or "").strip()
            no_speech = piece.get("no_speech_prob")
            if not text or (no_speech is not None and float(no_speech) > NO_SPEECH_THRESHOLD):
                continue
            start, end = float(piece.get("start") or 0.0), float(piece.get("end") or 0.0)
            if not low <= (start + end) / 2 < high:
                continue
            if at_boundary and lines and start < segment.start + overlap_seconds:
                text = drop_repeated_words(lines[-1].text, text).strip()
                if not text:
                    continue
            at_boundary = False
            if lines and start < lines[-1].start:
                start = lines[-1].start
            lines.append(TranscriptLine(start=start, end=max(end, start), text=text, speaker=piece.get("speaker")))
    return lines


def transcript_text(lines: Sequence[TranscriptLine]) -> str:
    """Plain text of a transcript: one line per piece, "Speaker: " in front when known."""
    return "\n".join(f"{line.speaker}: {line.text}" if line.speaker else line.text for line in lines)


def closing_words(text: str | None, limit: int = _PROMPT_WORDS) -> str | None:
    """The last `limit` words of `text`, as the prompt for the segment that follows."""
    words = (text or "").split()
    return " ".join(words[-limit:]) if words else None


def split_into_lanes(items: Sequence[T], count: int) -> list[list[T]]:
    """`items` in at most `count` contiguous runs whose lengths differ by at most one."""
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    lanes, position = [], 0
    for lane in range(count):
        length = size + (1 if lane < extra else 0)
        lanes.append(list(items[position : position + length]))
        position += length
    return [lane for lane in lanes if lane]
