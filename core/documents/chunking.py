"""Token-aware chunks with overlap, cut at sentence or paragraph ends, never inside a word.

Text is split into units: sentences and lines, each carrying the whitespace that precedes it
(so the tokens of the units add up to the tokens of the joined text). Units are packed
greedily up to ``chunk_size_tokens``; when a chunk is full it ends at the last paragraph
break if that keeps it at least ``PARAGRAPH_MIN_FILL`` full, else at the last sentence end.
The next chunk starts ``chunk_overlap_tokens`` earlier: with whole sentences when they fit,
else with the trailing words of the last sentence. A sentence longer than a chunk is cut at
word boundaries, and only a single "word" longer than a chunk (a URL, a base64 blob) is
cut between tokens.

Chunks never cross a Section, so each keeps its page number and heading path. Transcript
pieces keep their times: a chunk's start/end seconds are those of its first/last piece.
Tokens are counted with the embedding model's tokenizer (core.platform.tokens, offline tiktoken).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import tiktoken

from core.documents.extraction import Section
from core.platform.config import get_settings
from core.platform.tokens import encoding_for_model

PARAGRAPH_MIN_FILL = 0.6

# Units end after a sentence end (optionally closed by a quote or bracket) followed by a space
# or tab, and after every line break. Boundaries are marked with str.replace, which is several
# times faster than a regular expression over the text (this is the chunker's hot path).
_MARK = "\x00"
_SENTENCE_ENDS = tuple(
    end + closer + space for end in ".!?…" for closer in ("", '"', "'", "”", "’", ")", "]") for space in (" ", "\t")
)
_WORD = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Chunk:
    """One piece of a document to embed and search."""

    index: int
    text: str
    token_count: int
    page_number: int | None = None
    heading: str | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None


class TimedPiece(Protocol):
    """A stretch of transcript (core.ai.base.TranscriptPiece fits)."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...

    @property
    def text(self) -> str: ...


@dataclass
class _Units:
    """Parallel lists, one entry per unit: cheaper than an object per sentence."""

    texts: list[str]
    tokens: list[int]
    paragraph: list[bool]  # a paragraph break precedes this unit
    starts: list[float | None]
    ends: list[float | None]


class Chunker:
    """Chunks text for one tokenizer, size and overlap. Pure; safe to reuse across documents."""

    def __init__(self, *, size: int | None = None, overlap: int | None = None, model: str | None = None) -> None:
        settings = get_settings()
        self.size = size if size is not None else settings.chunk_size_tokens
        self.overlap = overlap if overlap is not None else settings.chunk_overlap_tokens
        if self.size < 8:
            raise ValueError("chunk size must be at least 8 tokens")
        if not 0 <= self.overlap < self.size:
            raise ValueError("chunk overlap must be at least 0 and smaller than the chunk size")
        self.encoding: tiktoken.Encoding = encoding_for_model(model or settings.embedding_model)

    def count(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(text))

    # ------------------------------------------------------------ units

    def _add_unit(
        self, units: _Units, text: str, paragraph: bool, start: float | None = None, end: float | None = None
    ) -> None:
        tokens = self.count(text)
        if tokens <= self.size:
            units.texts.append(text)
            units.tokens.append(tokens)
            units.paragraph.append(paragraph)
            units.starts.append(start)
            units.ends.append(end)
            return
        # Longer than a chunk: split at words (times interpolated by character position).
        words = _WORD.findall(text)
        words[-1] += text[sum(map(len, words)) :]  # trailing whitespace stays with the last word
        position = 0
        length = max(len(text), 1)
        for number, word in enumerate(words):
            word_start: float | None = None
            word_end: float | None = None
            if start is not None and end is not None:
                word_start = start + (end - start) * position / length
                word_end = start + (end - start) * (position + len(word)) / length
            position += len(word)
            word_tokens = self.count(word)
            if word_tokens <= self.size:
                units.texts.append(word)
                units.tokens.append(word_tokens)
                units.paragraph.append(paragraph and number == 0)
                units.starts.append(word_start)
                units.ends.append(word_end)
            else:
                for piece in self._split_by_tokens(word):
                    units.texts.append(piece)
                    units.tokens.append(self.count(piece))
                    units.paragraph.append(False)
                    units.starts.append(word_start)
                    units.ends.append(word_end)

    def _split_by_tokens(self, word: str) -> list[str]:
        """Cut one enormous word between tokens, at character offsets (no bytes lost)."""
        ids = self.encoding.encode_ordinary(word)
        text, offsets = self.encoding.decode_with_offsets(ids)
        if text != word:  # tokens that split a character: fall back to characters
            step = self.size * 2
            return [word[i : i + step] for i in range(0, len(word), step)]
        cuts = [offsets[i] for i in range(0, len(ids), self.size)] + [len(word)]
        return [word[a:b] for a, b in itertools.pairwise(cuts) if word[a:b]]

    def _text_units(self, text: str, units: _Units) -> None:
        # A line break ends the unit before it and spaces start the unit after it: that is
        # how tiktoken groups them, so the units' token counts add up to the joined text's.
        if _MARK in text:
            text = text.replace(_MARK, "")
        for end in _SENTENCE_ENDS:
            if end in text:
                text = text.replace(end, end[:-1] + _MARK + end[-1])
        text = text.replace("\n", "\n" + _MARK)
        current: str | None = None
        paragraph = True  # the unit in `current` starts a paragraph
        blank_line = False  # a blank line was seen since `current` began
        for part in text.split(_MARK):
            if not part.strip():  # whitespace only: a blank line, stays with the unit before it
                if current is not None:
                    current += part
                blank_line = blank_line or "\n" in part
                continue
            if current is not None:
                self._add_unit(units, current, paragraph)
                paragraph = blank_line
            current, blank_line = part, False
        if current is not None:
            self._add_unit(units, current, paragraph)

    # ------------------------------------------------------------ packing

    def _exact_tokens(self, pieces: list[str], counts: list[int]) -> int:
        """Tokens of "".join(pieces).strip(), from the pieces' counts plus the two stripped ends."""
        if len(pieces) == 1:
            return self.count(pieces[0].strip())
        return self.count(pieces[0].lstrip()) + sum(counts[1:-1]) + self.count(pieces[-1].rstrip())

    def _pack(self, units: _Units) -> list[tuple[str, int, float | None, float | None]]:
        """Greedy packing with paragraph preference and token overlap. Returns (text, tokens, start, end)."""
        texts, tokens, paragraph = units.texts, units.tokens, units.paragraph
        count = len(texts)
        out: list[tuple[str, int, float | None, float | None]] = []
        carry_text, carry_tokens, carry_start = "", 0, None
        i = 0
        done = 0  # units before this index are already in a chunk
        while i < count:
            total = carry_tokens
            j = i
            while j < count and total + tokens[j] <= self.size:
                total += tokens[j]
                j += 1
            if j <= done:  # the overlap leaves no room for a new unit: start afresh after it
                i, carry_text, carry_tokens, carry_start = done, "", 0, None
                continue
            if j < count:
                # Full: end at the last paragraph break if the chunk stays reasonably full.
                filled = carry_tokens
                best = None
                for k in range(i, j):
                    if k > max(i, done) and paragraph[k] and filled >= PARAGRAPH_MIN_FILL * self.size:
                        best = k
                    filled += tokens[k]
                if best is not None:
                    j = best
            while True:
                pieces, counts = texts[i:j], tokens[i:j]
                if carry_text:
                    pieces, counts = [carry_text, *pieces], [carry_tokens, *counts]
                exact = self._exact_tokens(pieces, counts)
                # Stripping the edges can merge tokens differently; never exceed the size.
                if exact <= self.size or j - 1 <= max(i, done):
                    break
                j -= 1
            start = carry_start if carry_text else units.starts[i]
            out.append(("".join(pieces).strip(), exact, start, units.ends[j - 1]))
            done = j
            if j >= count:
                break
            i, carry_text, carry_tokens, carry_start = self._overlap(units, i, j)
        return out

    def _overlap(self, units: _Units, i: int, j: int) -> tuple[int, str, int, float | None]:
        """Where the next chunk starts: whole trailing units within the overlap, else a word tail."""
        if self.overlap == 0:
            return j, "", 0, None
        start = j
        used = 0
        while start - 1 > i and used + units.tokens[start - 1] <= self.overlap:
            start -= 1
            used += units.tokens[start]
        if start < j:
            return start, "", 0, None
        # The last unit alone is longer than the overlap: carry its trailing words.
        last = units.texts[j - 1]
        positions = [match.start() for match in _WORD.finditer(last)][1:]  # never the whole unit
        used = 0
        cut = len(last)
        for position in reversed(positions):
            word_tokens = self.count(last[position:cut])
            if used + word_tokens > self.overlap:
                break
            used += word_tokens
            cut = position
        if cut == len(last):
            return j, "", 0, None
        tail = last[cut:]
        return j, tail, self.count(tail), units.starts[j - 1]

    # ------------------------------------------------------------ public

    def chunk_sections(self, sections: Iterable[Section]) -> list[Chunk]:
        """Chunks of each Section in order, numbered from 0. Pure."""
        chunks: list[Chunk] = []
        for section in sections:
            units = _Units([], [], [], [], [])
            self._text_units(section.text, units)
            for text, tokens, _, _ in self._pack(units):
                if text:
                    chunks.append(Chunk(len(chunks), text, tokens, section.page_number, section.heading))
        return chunks

    def chunk_timed_pieces(self, pieces: Sequence[TimedPiece]) -> list[Chunk]:
        """Chunks of transcript pieces, one piece per line, with start/end seconds. Pure.

        A piece with a ``speaker`` attribute is written "speaker: text".
        """
        units = _Units([], [], [], [], [])
        for piece in pieces:
            text = " ".join(piece.text.split())
            if not text:
                continue
            speaker = getattr(piece, "speaker", None)
            if speaker:
                text = f"{speaker}: {text}"
            self._add_unit(units, text + "\n", False, float(piece.start), float(piece.end))
        chunks: list[Chunk] = []
        for text, tokens, start, end in self._pack(units):
            if text:
                chunks.append(Chunk(len(chunks), text, tokens, start_seconds=start, end_seconds=end))
        return chunks


def chunk_sections(sections: Iterable[Section], *, size: int | None = None, overlap: int | None = None) -> list[Chunk]:
    """Chunk extracted Sections with the configured size and overlap (see Chunker)."""
    return Chunker(size=size, overlap=overlap).chunk_sections(sections)


def chunk_text(text: str, *, size: int | None = None, overlap: int | None = None) -> list[Chunk]:
    return chunk_sections([Section(text=text)], size=size, overlap=overlap)


def chunk_timed_pieces(
    pieces: Sequence[TimedPiece], *, size: int | None = None, overlap: int | None = None
) -> list[Chunk]:
    """Chunk a transcript's timestamped pieces; each chunk has start_seconds/end_seconds."""
    return Chunker(size=size, overlap=overlap).chunk_timed_pieces(pieces)


_SPOKEN_AT = re.compile(r"\[(?:(\d+):)?(\d{1,2}):(\d{2})\]")


def with_spoken_times(chunks: Sequence[Chunk]) -> list[Chunk]:
    """Give chunks without times the span of the ``[h:mm:ss]`` stamps written in them.

    Meeting minutes are indexed from their Markdown, where every decision, action item and
    question carries the moment it was said: this lets their chunks link to that moment in
    the recording like transcript chunks do. Chunks with no stamp keep no times. Pure.
    """
    timed = []
    for chunk in chunks:
        stamps = [
            int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
            for hours, minutes, seconds in _SPOKEN_AT.findall(chunk.text)
        ]
        if chunk.start_seconds is None and stamps:
            chunk = replace(chunk, start_seconds=float(min(stamps)), end_seconds=float(max(stamps)))
        timed.append(chunk)
    return timed
