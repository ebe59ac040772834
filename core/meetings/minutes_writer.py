"""Writing minutes from a transcript: map-reduce with a text model, extractive otherwise.

- a provider that generates text gets the transcript map-reduced under a token budget:
  each window of timestamped lines (Settings.minutes_chunk_tokens per call) becomes
  partial minutes JSON, and partials are merged in groups that fit the same budget until
  one is left, so a meeting of any length is read in full and never truncated;
- the offline provider (generates_text False) gets extractive minutes
  (core.meetings.minutes_extractive), keeping the timestamp of every sentence they quote.

A window whose answer is not JSON at all is asked once more and then summarised
extractively, so one bad answer never fails a three-hour meeting. No database access.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.ai.base import AIProvider, Message, TranscriptPiece, UsageContext
from core.meetings.minutes_extractive import extractive_minutes
from core.meetings.minutes_format import (
    EXTRACTIVE_GENERATOR,
    Minutes,
    MinutesActionItem,
    MinutesItem,
    format_clock,
    minutes_from_json,
    pieces_from_segments,
)
from core.platform.config import get_settings

log = logging.getLogger(__name__)

_MAX_OUTPUT_TOKENS = 4096
_MESSAGE_OVERHEAD_TOKENS = 32  # role markers and separators the budget must leave room for
_MIN_WINDOW_TOKENS = 64


@dataclass(frozen=True)
class _Line:
    start: float
    text: str
    tokens: int


def _transcript_lines(pieces: Sequence[TranscriptPiece], provider: AIProvider, budget: int) -> list[_Line]:
    """One "[h:mm:ss] Speaker: text" line per piece; a piece longer than `budget` tokens is cut
    at word boundaries into lines that fit, each with its interpolated start time."""
    lines: list[_Line] = []
    for piece in pieces:
        label = f"{piece.speaker}: " if piece.speaker else ""
        text = re.sub(r"\s+", " ", piece.text).strip()
        line = f"[{format_clock(piece.start)}] {label}{text}"
        tokens = provider.count_tokens(line)
        if tokens <= budget:
            lines.append(_Line(piece.start, line, tokens))
            continue
        words = text.split(" ")
        per_line = max(1, len(words) * budget // (tokens * 2))  # half a budget: headroom for long tokens
        duration = max(0.0, piece.end - piece.start)
        for index in range(0, len(words), per_line):
            start = piece.start + duration * index / len(words)
            part = f"[{format_clock(start)}] {label}{' '.join(words[index : index + per_line])}"
            lines.append(_Line(start, part, provider.count_tokens(part)))
    return lines


def _pack(sizes: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive groups of indexes whose sizes sum to at most `budget` (an item larger than
    the budget gets a group of its own)."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, size in enumerate(sizes):
        if current and used + size > budget:
            groups.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        groups.append(current)
    return groups


# --------------------------------------------------------------------------- map-reduce

_SCHEMA_TEXT = (
    '{"title": string, "summary": string, '
    '"decisions": [{"text": string, "timestamp": "h:mm:ss"}], '
    '"action_items": [{"task": string, "owner": string or null, "due": string or null, "timestamp": "h:mm:ss"}], '
    '"open_questions": [{"text": string, "timestamp": "h:mm:ss"}], '
    '"topics": [string]}'
)

MAP_PROMPT = (
    "You write meeting minutes. You receive one part of a meeting transcript; each line starts "
    "with its [h:mm:ss] timestamp and, when known, the speaker. Answer with one JSON object only:\n"
    f"{_SCHEMA_TEXT}\n"
    "Rules: the summary covers this part in a few sentences. List every decision, every action "
    "item (with the owner's name and the due date exactly as said, or null) and every question "
    "left open. Each item's timestamp is the [h:mm:ss] of the line where it was said. Topics are "
    "short noun phrases. Use only what the transcript says; never invent names, dates or facts."
)

REDUCE_PROMPT = (
    "You merge partial meeting minutes. You receive a JSON array of partial minutes, one per "
    "consecutive part of the same meeting, in order. Answer with one JSON object only:\n"
    f"{_SCHEMA_TEXT}\n"
    "Rules: write one coherent summary of all parts and one title for the meeting. Keep every "
    "decision, action item and open question with its owner, due date and timestamp unchanged; "
    "merge only items that say the same thing (keep the earliest timestamp) and drop an open "
    "question only when a later decision answers it. Merge the topics without repeats."
)


def _prompt_json(minutes: Minutes) -> dict[str, Any]:
    """Partial minutes as the reduce step shows them to the model (timestamps as h:mm:ss)."""
    data = minutes.to_json()
    for key in ("decisions", "action_items", "open_questions"):
        for item in data[key]:
            item["timestamp"] = format_clock(item["timestamp"]) or None
    data.pop("version")
    data.pop("generator")
    return data


def _window_budget(provider: AIProvider, prompt: str) -> int:
    """Tokens of transcript (or partial minutes) one call may carry: minutes_chunk_tokens,
    never more than the model's context leaves after the answer, minus the prompt."""
    settings = get_settings()
    total = min(settings.minutes_chunk_tokens, settings.chat_context_tokens - _MAX_OUTPUT_TOKENS)
    return max(_MIN_WINDOW_TOKENS, total - provider.count_tokens(prompt) - _MESSAGE_OVERHEAD_TOKENS)


def _ask_for_minutes(
    provider: AIProvider,
    *,
    system: str,
    user: str,
    usage: UsageContext,
    max_seconds: float | None,
    fallback_title: str,
) -> Minutes | None:
    """One JSON-mode call, asked twice if the answer holds no JSON object; None after that."""
    messages = [Message(role="system", content=system), Message(role="user", content=user)]
    for attempt in (1, 2):
        completion = provider.complete(messages, usage=usage, max_tokens=_MAX_OUTPUT_TOKENS, json_mode=True)
        try:
            return minutes_from_json(
                completion.text, generator=completion.model, fallback_title=fallback_title, max_seconds=max_seconds
            )
        except ValueError:
            log.warning("minutes: attempt %d got no JSON object from %s", attempt, completion.model)
    return None


def _map_reduce_minutes(
    pieces: Sequence[TranscriptPiece], *, provider: AIProvider, usage: UsageContext, title: str
) -> Minutes:
    max_seconds = max((p.end for p in pieces), default=0.0)
    budget = _window_budget(provider, MAP_PROMPT)
    lines = _transcript_lines(pieces, provider, budget)
    windows = _pack([line.tokens + 1 for line in lines], budget)
    log.info("minutes: %d transcript lines in %d windows of <= %d tokens", len(lines), len(windows), budget)

    partials: list[Minutes] = []
    for number, window in enumerate(windows, start=1):
        text = "\n".join(lines[i].text for i in window)
        partial = _ask_for_minutes(
            provider, system=MAP_PROMPT, user=text, usage=usage, max_seconds=max_seconds, fallback_title=title
        )
        if partial is None:
            log.warning(
                "minutes: window %d of %d summarised extractively after two unusable answers", number, len(windows)
            )
            window_start = lines[window[0]].start
            window_end = lines[window[-1] + 1].start if window[-1] + 1 < len(lines) else max_seconds + 1
            partial = extractive_minutes([p for p in pieces if window_start <= p.start < window_end], title=title)
        partials.append(partial)

    reduce_budget = _window_budget(provider, REDUCE_PROMPT)
    while len(partials) > 1:
        payloads = [json.dumps(_prompt_json(p), ensure_ascii=False) for p in partials]
        groups = _pack([provider.count_tokens(p) + 2 for p in payloads], reduce_budget)
        if all(len(group) == 1 for group in groups):
            # Each partial fills a window alone: merge pairs without the model, losing nothing.
            groups = [list(range(i, min(i + 2, len(partials)))) for i in range(0, len(partials), 2)]
            partials = [merge_minutes([partials[i] for i in group], title=title) for group in groups]
            continue
        merged: list[Minutes] = []
        for group in groups:
            if len(group) == 1:
                merged.append(partials[group[0]])
                continue
            user = "[" + ",\n".join(payloads[i] for i in group) + "]"
            result = _ask_for_minutes(
                provider, system=REDUCE_PROMPT, user=user, usage=usage, max_seconds=max_seconds, fallback_title=title
            )
            merged.append(result if result is not None else merge_minutes([partials[i] for i in group], title=title))
        partials = merged
    return _chronological(partials[0])


def merge_minutes(parts: Sequence[Minutes], *, title: str) -> Minutes:
    """Minutes of consecutive parts joined without a model: summaries one after another,
    every item kept once (by text, case-insensitive), topics without repeats. Pure."""

    def unique(items: Iterable[Any], key: Any) -> tuple[Any, ...]:
        seen: set[str] = set()
        kept = []
        for item in items:
            k = key(item).lower()
            if k not in seen:
                seen.add(k)
                kept.append(item)
        return tuple(kept)

    return Minutes(
        title=next((p.title for p in parts if p.title and p.title != title), title),
        summary="\n\n".join(p.summary for p in parts if p.summary),
        decisions=unique((d for p in parts for d in p.decisions), lambda d: d.text),
        action_items=unique((a for p in parts for a in p.action_items), lambda a: a.task),
        open_questions=unique((q for p in parts for q in p.open_questions), lambda q: q.text),
        topics=unique((t for p in parts for t in p.topics), lambda t: t),
        generator=next((p.generator for p in parts if p.generator), ""),
    )


def _chronological(minutes: Minutes) -> Minutes:
    """Items in the order they were said; items without a timestamp keep their place at the end."""

    def order(item: MinutesItem | MinutesActionItem) -> float:
        return item.timestamp if item.timestamp is not None else float("inf")

    return Minutes(
        title=minutes.title,
        summary=minutes.summary,
        decisions=tuple(sorted(minutes.decisions, key=order)),
        action_items=tuple(sorted(minutes.action_items, key=order)),
        open_questions=tuple(sorted(minutes.open_questions, key=order)),
        topics=minutes.topics,
        generator=minutes.generator,
    )


def generate_minutes(
    pieces: Sequence[TranscriptPiece | Mapping[str, Any]],
    *,
    provider: AIProvider,
    usage: UsageContext,
    title: str = "Meeting minutes",
) -> Minutes:
    """Minutes of a whole transcript; `pieces` are timed pieces ({start, end, text, speaker}).

    With a provider that generates text: map-reduce under Settings.minutes_chunk_tokens per
    call, every piece read (never truncated); calls are recorded under `usage`. Otherwise
    extractive minutes. `title` is used when the model gives none. No database access.
    Raises ProviderError when the provider fails (the caller retries the job).
    """
    timed = pieces_from_segments(pieces)
    if not timed:
        return Minutes(title=title, summary="No speech was found in this recording.", generator=EXTRACTIVE_GENERATOR)
    if not provider.generates_text:
        return extractive_minutes(timed, title=title)
    return _map_reduce_minutes(timed, provider=provider, usage=usage, title=title)
