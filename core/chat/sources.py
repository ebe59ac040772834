"""The numbered sources of an answer: what they are, how they are shown to the model, and
the citation check that keeps an answer's [n] marks, its stored text and its listed sources
in agreement (a [n] with no such source is removed; cited sources are renumbered 1..m in
order of first citation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.ai.base import AIProvider
from core.chat.corrections import TrustedCorrection
from core.chat.moments import without_repeated_minutes
from core.chat.retrieval import RetrievedChunk
from core.meetings.plain_text import plain_minutes_text
from core.platform.statuses import DocumentType
from core.platform.timecodes import short_clock

CORRECTION_LABEL = "Reviewed correction"


SourceKind = Literal["chunk", "correction"]


@dataclass(frozen=True)
class Source:
    """One source cited by an answer, as stored in chat_messages.sources (JSON)."""

    number: int
    kind: SourceKind
    label: str  # what the user reads: "handbook.pdf, page 4", "Reviewed correction", ...
    excerpt: str
    chunk_id: int | None = None
    document_id: int | None = None
    filename: str | None = None
    document_type: str | None = None
    page: int | None = None
    heading: str | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None
    transcription_job_id: int | None = None
    feedback_id: int | None = None
    speaker: str | None = None  # who said the quoted sentence (transcripts with named speakers)
    quote: str | None = None  # the sentence of the passage the answer took (core.chat.moments)

    @property
    def is_recording_moment(self) -> bool:
        """True for a transcript or minutes passage that can open the recording at a time."""
        return self.transcription_job_id is not None and self.start_seconds is not None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Source:
        known: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        known["number"] = int(known["number"] or 0)
        known["kind"] = known["kind"] or "chunk"
        known["label"] = known["label"] or known.get("filename") or "source"
        known["excerpt"] = known["excerpt"] or ""
        return cls(**known)


def chunk_label(chunk: RetrievedChunk) -> str:
    if chunk.transcription_job_id is not None and chunk.start_seconds is not None:
        return f"{chunk.filename} at {short_clock(chunk.start_seconds)}"
    if chunk.page is not None:
        return f"{chunk.filename}, page {chunk.page}"
    if chunk.heading:
        return f"{chunk.filename}, {chunk.heading}"
    return chunk.filename


def source_from_chunk(number: int, chunk: RetrievedChunk) -> Source:
    # Minutes indexed before they were plain text still carry tick boxes and bold marks.
    excerpt = plain_minutes_text(chunk.content) if chunk.document_type == DocumentType.MINUTES else chunk.content
    return Source(
        number=number,
        kind="chunk",
        label=chunk_label(chunk),
        excerpt=excerpt,
        chunk_id=chunk.chunk_id,
        document_id=chunk.document_id,
        filename=chunk.filename,
        document_type=chunk.document_type,
        page=chunk.page,
        heading=chunk.heading,
        start_seconds=chunk.start_seconds,
        end_seconds=chunk.end_seconds,
        transcription_job_id=chunk.transcription_job_id,
    )


def source_from_correction(number: int, correction: TrustedCorrection) -> Source:
    return Source(
        number=number,
        kind="correction",
        label=CORRECTION_LABEL,
        excerpt=correction.correction,
        feedback_id=correction.feedback_id,
    )


# ---------------------------------------------------------------------------------------
# Citation checking


_CITATION = re.compile(r"(\s*)\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_OPEN_CITATION = re.compile(r"\s*\[[\d,;\s]*$")
_TRAILING_SPACE = re.compile(r"\s+$")
_HOLD_LIMIT = 40  # an "[..." longer than this is not a citation: let it through


class CitationChecker:
    """Checks and renumbers [n] citations in text that arrives in pieces.

    Sources are numbered 1..`source_count` in the prompt. A citation of a number outside
    that range is removed (with the space before it); valid ones are renumbered 1..m in
    the order they are first cited, and [1, 2] becomes [1][2]. feed() returns the text
    that is safe to show now (an unfinished "[1" is held back until its "]" arrives);
    finish() returns the rest. `cited` lists the original numbers in their new order.
    """

    def __init__(self, source_count: int) -> None:
        self.source_count = source_count
        self.cited: list[int] = []
        self._new_number: dict[int, int] = {}
        self._held = ""

    def feed(self, text: str) -> str:
        buffer = self._held + text
        cut = len(buffer)
        open_citation = _OPEN_CITATION.search(buffer)
        if open_citation and len(buffer) - open_citation.start() <= _HOLD_LIMIT:
            cut = open_citation.start()
        else:
            trailing = _TRAILING_SPACE.search(buffer)
            if trailing:  # a dropped citation may follow: its space goes with it
                cut = trailing.start()
        self._held = buffer[cut:]
        return self._rewrite(buffer[:cut])

    def finish(self) -> str:
        rest, self._held = self._held, ""
        return self._rewrite(rest)

    def _rewrite(self, text: str) -> str:
        return _CITATION.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(2))]
        kept: list[int] = []
        for number in numbers:
            if 1 <= number <= self.source_count and number not in kept:
                kept.append(number)
        if not kept:
            return ""
        for number in kept:
            if number not in self._new_number:
                self.cited.append(number)
                self._new_number[number] = len(self.cited)
        return match.group(1) + "".join(f"[{self._new_number[n]}]" for n in kept)


def check_citations(text: str, sources: Sequence[Source]) -> tuple[str, list[Source]]:
    """`text` with invalid citations removed and valid ones renumbered, and the cited sources.

    Pure. The sources come back renumbered 1..m in order of first citation; uncited ones
    are left out.
    """
    checker = CitationChecker(len(sources))
    checked = checker.feed(text) + checker.finish()
    return checked, cited_sources(checker, sources)


def cited_sources(checker: CitationChecker, sources: Sequence[Source]) -> list[Source]:
    by_number = {source.number: source for source in sources}
    return [_renumber(by_number[old], new) for new, old in enumerate(checker.cited, start=1)]


def _renumber(source: Source, number: int) -> Source:
    data = source.__dict__ | {"number": number}
    return Source(**data)


# ---------------------------------------------------------------------------------------
# Prompt


# Every angle bracket in quoted text, and the characters that look like one, become HTML
# entities: no spelling of "</source>" (spaces, case, fullwidth or other look-alikes) can
# then close or open a delimiter, and models read the entities as the characters they are.
_ANGLE_BRACKETS = str.maketrans(
    {
        **dict.fromkeys("<＜﹤‹〈⟨❮˂〈", "&lt;"),
        **dict.fromkeys(">＞﹥›〉⟩❯˃〉", "&gt;"),
        "&": "&amp;",
        '"': "&quot;",
    }
)
CITATION_MARKS = re.compile(r"\s*\[\d{1,3}\]")


def _quote(text: str) -> str:
    """Source text made unable to close or open the delimiters around it: no angle bracket
    (or look-alike) and no double quote is left in it."""
    return text.translate(_ANGLE_BRACKETS)


def source_block(source: Source) -> str:
    """One numbered source between delimiters its own text cannot forge.

    The number also opens the text ("[3] ..."), the form models cite most reliably.
    """
    kind = CORRECTION_LABEL if source.kind == "correction" else (source.document_type or "document")
    title = _quote(source.label)
    opening = f'<source id="{source.number}" title="{title}" kind="{kind}">'
    return f"{opening}\n[{source.number}] {_quote(source.excerpt)}\n</source>"


def build_sources(
    chunks: Sequence[RetrievedChunk],
    corrections: Sequence[TrustedCorrection],
    *,
    provider: AIProvider,
    budget_tokens: int,
) -> list[Source]:
    """Number corrections first, then chunks in rank order, while they fit in `budget_tokens`.

    Minutes passages keep only what the transcript passages of the same meeting do not say
    already (core.chat.moments.without_repeated_minutes): one source per passage.

    The first source is always kept (cut to the budget if it alone is too long).
    """
    candidates: list[Source] = [source_from_correction(0, c) for c in corrections]
    candidates += without_repeated_minutes([source_from_chunk(0, chunk) for chunk in chunks])
    sources: list[Source] = []
    used = 0
    for candidate in candidates:
        cost = provider.count_tokens(candidate.excerpt) + 20
        if sources and used + cost > budget_tokens:
            break
        sources.append(_renumber(candidate, len(sources) + 1))
        used += cost
    return sources
