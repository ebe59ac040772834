"""Meeting minutes: structured data, Markdown, generation and the owner's edits.

Minutes are a frozen `Minutes` value (title, summary, decisions, action items with owner,
due date and the second they were said, open questions, topics), stored on the job as
JSON (`transcription_jobs.minutes`) next to their Markdown (`minutes_markdown`).

Generation:
- a provider that generates text gets the transcript map-reduced under a token budget:
  each window of timestamped lines (Settings.minutes_chunk_tokens per call) becomes
  partial minutes JSON, and partials are merged in groups that fit the same budget until
  one is left, so a meeting of any length is read in full and never truncated;
- the offline provider (generates_text False) gets extractive minutes built with
  core.ai.extractive, keeping the timestamp of every sentence they quote.

The model's JSON is validated and repaired (missing fields, wrong types, timestamps as
"h:mm:ss" or seconds); a window whose answer is not JSON at all is asked once more and then
summarised extractively, so one bad answer never fails a three-hour meeting.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import func, select, update

from core.access.rbac import Actor
from core.ai import extractive
from core.ai.base import AIProvider, Message, TranscriptPiece, UsageContext
from core.ai.hashing import STOPWORDS
from core.meetings.recording_access import load_managed_job, load_readable_job, may_manage_job
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermanentError
from core.platform.models import Document, TranscriptionJob

log = logging.getLogger(__name__)

MINUTES_SCHEMA_VERSION = 1
EXTRACTIVE_GENERATOR = "extractive"
MAX_MINUTES_MARKDOWN_CHARS = 200_000
_MAX_OUTPUT_TOKENS = 4096
_MESSAGE_OVERHEAD_TOKENS = 32  # role markers and separators the budget must leave room for
_MIN_WINDOW_TOKENS = 64


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class MinutesItem:
    """A decision or an open question, and the second of the meeting it was said at."""

    text: str
    timestamp: float | None = None


@dataclass(frozen=True)
class MinutesActionItem:
    """Work someone took on: what, who (None when unnamed), by when (as said) and when said."""

    task: str
    owner: str | None = None
    due: str | None = None
    timestamp: float | None = None


@dataclass(frozen=True)
class Minutes:
    """Structured minutes of one meeting. `generator` is the model name or "extractive"."""

    title: str
    summary: str
    decisions: tuple[MinutesItem, ...] = ()
    action_items: tuple[MinutesActionItem, ...] = ()
    open_questions: tuple[MinutesItem, ...] = ()
    topics: tuple[str, ...] = ()
    generator: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in transcription_jobs.minutes (timestamps in seconds)."""
        return {
            "version": MINUTES_SCHEMA_VERSION,
            "title": self.title,
            "summary": self.summary,
            "decisions": [{"text": d.text, "timestamp": d.timestamp} for d in self.decisions],
            "action_items": [
                {"task": a.task, "owner": a.owner, "due": a.due, "timestamp": a.timestamp} for a in self.action_items
            ],
            "open_questions": [{"text": q.text, "timestamp": q.timestamp} for q in self.open_questions],
            "topics": list(self.topics),
            "generator": self.generator,
        }

    def to_markdown(self) -> str:
        """Minutes as Markdown: title, then Summary, Decisions, Action items, Open questions and
        Topics sections; every item starts with its [h:mm:ss] timestamp when known."""
        lines = [f"# {self.title}", "", "## Summary", "", self.summary or "_No summary._", ""]
        lines += ["## Decisions", ""]
        lines += [f"- {_stamp(d.timestamp)}{d.text}" for d in self.decisions] or ["_None recorded._"]
        lines += ["", "## Action items", ""]
        for item in self.action_items:
            details = [f"**{item.owner}**" if item.owner else "_unassigned_"]
            if item.due:
                details.append(f"due {item.due}")
            lines.append(f"- [ ] {_stamp(item.timestamp)}{item.task} — {', '.join(details)}")
        if not self.action_items:
            lines.append("_None recorded._")
        lines += ["", "## Open questions", ""]
        lines += [f"- {_stamp(q.timestamp)}{q.text}" for q in self.open_questions] or ["_None recorded._"]
        lines += ["", "## Topics", ""]
        lines += [f"- {topic}" for topic in self.topics] or ["_None recorded._"]
        return "\n".join(lines).rstrip() + "\n"


def format_clock(seconds: float | None) -> str:
    """Seconds as h:mm:ss (0:01:05); "" for None. Fractions are dropped, negatives read as 0."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _stamp(seconds: float | None) -> str:
    return f"[{format_clock(seconds)}] " if seconds is not None else ""


# --------------------------------------------------------------------------- JSON repair

_CLOCK = re.compile(r"^\[?\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d+))?\s*\]?$")
_SECONDS = re.compile(r"^\[?\s*(\d+(?:\.\d+)?)\s*s?(?:ec(?:ond)?s?)?\s*\]?$", re.IGNORECASE)
_NO_OWNER = frozenset({"", "none", "null", "n/a", "na", "unknown", "unassigned", "tbd", "nobody", "-"})


def parse_timestamp(value: object, *, max_seconds: float | None = None) -> float | None:
    """Seconds from a model's timestamp: a number, "h:mm:ss", "mm:ss", "[0:01:02]", "62s".

    None for anything else, for negatives, and for times past `max_seconds` (the model
    invented them).
    """
    seconds: float | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        clock = _CLOCK.match(text)
        plain = _SECONDS.match(text)
        if clock:
            hours, minutes, secs, fraction = clock.groups()
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + float(f"0.{fraction or 0}")
        elif plain:
            seconds = float(plain.group(1))
    if seconds is None or seconds != seconds or seconds < 0:  # NaN check without math
        return None
    if max_seconds is not None and seconds > max_seconds + 1.0:
        return None
    return seconds


def _as_text(value: object) -> str:
    """A clean one-paragraph string from whatever the model put there."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).strip()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        for key in ("text", "summary", "content", "description", "title", "name"):
            if key in value:
                return _as_text(value[key])
        return ""
    if isinstance(value, Iterable):
        return " ".join(part for part in (_as_text(v) for v in value) if part)
    return ""


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]  # one item where a list belonged


def _first(item: Mapping[str, Any], keys: Sequence[str]) -> object:
    for key in keys:
        if key in item and item[key] not in (None, ""):
            return item[key]
    return None


_TEXT_KEYS = ("text", "decision", "question", "task", "action", "item", "description", "summary", "title")
_TIME_KEYS = ("timestamp", "time", "start", "at", "ts", "when_said", "said_at", "seconds")


def _items(value: object, *, max_seconds: float | None) -> tuple[MinutesItem, ...]:
    found: list[MinutesItem] = []
    for raw in _as_list(value):
        if isinstance(raw, Mapping):
            text = _as_text(_first(raw, _TEXT_KEYS))
            timestamp = parse_timestamp(_first(raw, _TIME_KEYS), max_seconds=max_seconds)
        else:
            text, timestamp = _as_text(raw), None
        if text:
            found.append(MinutesItem(text=text, timestamp=timestamp))
    return tuple(found)


def _owner(value: object) -> str | None:
    text = _as_text(value)
    return None if text.lower() in _NO_OWNER else text


def _action_items(value: object, *, max_seconds: float | None) -> tuple[MinutesActionItem, ...]:
    found: list[MinutesActionItem] = []
    for raw in _as_list(value):
        if isinstance(raw, Mapping):
            task = _as_text(_first(raw, ("task", "action", "text", "item", "description", "title")))
            owner = _owner(_first(raw, ("owner", "assignee", "assigned_to", "who", "responsible", "person")))
            due = _owner(_first(raw, ("due", "due_date", "deadline", "by", "when")))
            timestamp = parse_timestamp(_first(raw, _TIME_KEYS), max_seconds=max_seconds)
        else:
            task, owner, due, timestamp = _as_text(raw), None, None, None
        if task:
            found.append(MinutesActionItem(task=task, owner=owner, due=due, timestamp=timestamp))
    return tuple(found)


def _topics(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in re.split(r"[,;\n]", value)]
    seen: dict[str, str] = {}
    for raw in _as_list(value):
        text = _as_text(raw)
        if text and text.lower() not in seen:
            seen[text.lower()] = text
    return tuple(seen.values())


def minutes_from_json(
    data: object, *, generator: str = "", fallback_title: str = "Meeting minutes", max_seconds: float | None = None
) -> Minutes:
    """Minutes from a JSON object, repairing what a model gets wrong instead of failing.

    Accepts a dict or its JSON text (code fences and prose around the object are ignored).
    Missing fields become empty; a string where a list belongs becomes a one-item list; a
    list where a string belongs is joined; items are read from common alternative keys
    (task/action/text, owner/assignee, due/deadline, timestamp/time/start); items without
    text are dropped. Raises ValueError only when `data` is text with no JSON object in it.
    """
    if isinstance(data, str | bytes):
        data = _extract_json_object(data if isinstance(data, str) else data.decode("utf-8", "replace"))
    if not isinstance(data, Mapping):
        data = {}
    minutes_field = data.get("minutes")
    if isinstance(minutes_field, Mapping) and "summary" not in data:
        data = minutes_field  # {"minutes": {...}} wrapping
    title = _as_text(data.get("title")) or fallback_title
    return Minutes(
        title=title[:200],
        summary=_as_text(data.get("summary")),
        decisions=_items(data.get("decisions"), max_seconds=max_seconds),
        action_items=_action_items(data.get("action_items", data.get("actions")), max_seconds=max_seconds),
        open_questions=_items(data.get("open_questions", data.get("questions")), max_seconds=max_seconds),
        topics=_topics(data.get("topics")),
        generator=_as_text(data.get("generator")) or generator,
    )


def _extract_json_object(text: str) -> object:
    """The first JSON object in `text`, tolerating ```json fences and surrounding prose."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("no JSON object in the model's answer")


# --------------------------------------------------------------------------- pieces


def pieces_from_segments(pieces: Iterable[TranscriptPiece | Mapping[str, Any]]) -> list[TranscriptPiece]:
    """Transcript pieces, in order, from TranscriptPiece values or the job's stored segment
    dicts ({start, end, text, speaker}; times in seconds or "h:mm:ss"). Pieces without
    text are dropped; a missing end becomes the start. Pure."""
    result: list[TranscriptPiece] = []
    for raw in pieces:
        if isinstance(raw, TranscriptPiece):
            piece = raw
        else:
            start = parse_timestamp(raw.get("start")) or 0.0
            end = parse_timestamp(raw.get("end"))
            speaker = _as_text(raw.get("speaker")) or None
            piece = TranscriptPiece(
                start=start, end=end if end is not None else start, text=str(raw.get("text") or ""), speaker=speaker
            )
        if piece.text.strip():
            result.append(piece)
    return result


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


# --------------------------------------------------------------------------- extractive

_TOPIC_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]")
_FILLER_WORDS = """going think know like just really right well get got gonna wanna want need needs let lets say said
    thing things stuff lot kind sort sure good great yes yeah mean actually maybe something anything everything
    will can could would make made look looks see come go goes one two also still even back way time today
    tomorrow week monday tuesday wednesday thursday friday saturday sunday us ok okay hey hi hello thanks thank
    guys everyone anyone someone people pretty much many little bit quite probably definitely basically
    decided decide agreed agree send sent update discuss discussed talk talked start started finish done ship
    use using work working take put give keep try call tell ask feel move welcome meeting morning afternoon evening
    let's we'll i'll it's that's don't
    item items next step steps action actions agenda point points first second third last new same other end
    day days month months year years hour hours minute minutes follow fits fit leave
    thousand thousands hundred hundreds million millions billion percent dollars dollar euros euro"""
_FILLER = frozenset(_FILLER_WORDS.split())


@dataclass(frozen=True)
class _Sentence:
    text: str
    start: float
    speaker: str | None


def _timed_sentences(pieces: Sequence[TranscriptPiece]) -> list[_Sentence]:
    """Sentences of the transcript, each with the time it started and its speaker.

    Consecutive pieces of one speaker are joined first, so a sentence Whisper cut in two is
    whole again; the start is interpolated within the piece where the sentence begins.
    """
    sentences: list[_Sentence] = []
    turn: list[TranscriptPiece] = []

    def flush() -> None:
        if not turn:
            return
        texts = [re.sub(r"\s+", " ", p.text).strip() for p in turn]
        joined = " ".join(texts)
        offsets: list[int] = []
        position = 0
        for text in texts:
            offsets.append(position)
            position += len(text) + 1
        cursor = 0
        for sentence in extractive.split_sentences("\n".join(texts)):
            found = joined.find(sentence, cursor)
            if found < 0:
                found = joined.find(sentence[:24], cursor)
            at = found if found >= 0 else cursor
            index = max(i for i, offset in enumerate(offsets) if offset <= at) if offsets else 0
            piece = turn[index]
            fraction = (at - offsets[index]) / max(1, len(texts[index]))
            start = piece.start + max(0.0, piece.end - piece.start) * min(1.0, fraction)
            sentences.append(_Sentence(sentence, round(start, 3), piece.speaker))
            if found >= 0:
                cursor = found + len(sentence)
        turn.clear()

    for piece in pieces:
        if turn and piece.speaker != turn[-1].speaker:
            flush()
        turn.append(piece)
    flush()
    return sentences


def _is_open_question(sentence: str) -> bool:
    words = _TOPIC_WORD.findall(sentence)
    meaningful = [w for w in words if w.lower() not in STOPWORDS and w.lower() not in _FILLER]
    return sentence.rstrip().endswith("?") and len(words) >= 3 and bool(meaningful)


def _key_phrases(
    sentences: Sequence[str], *, salient: Set[int] = frozenset(), names: Set[str] = frozenset(), limit: int = 8
) -> list[str]:
    """The most frequent content bigrams and words (bigrams count double), without overlap,
    ties by first mention, each in its most common spelling ("Q3 budget").

    Words in `salient` sentences (decisions, action items, questions) count one and a half;
    people's `names` (lower case) are not topics. Short meetings (under 200 content words)
    may use words said once; longer ones need two mentions; beyond three, a topic list never
    exceeds one phrase per 15 content words.
    """
    unigrams: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    weight: defaultdict[str, float] = defaultdict(float)
    spelling: dict[str, Counter[str]] = {}
    first_seen: dict[str, int] = {}
    total = 0
    for index, sentence in enumerate(sentences):
        bonus = 1.5 if index in salient else 1.0
        words = [w.replace("’", "'") for w in _TOPIC_WORD.findall(sentence)]
        keep = [w if _is_topic_word(w.lower()) and w.lower() not in names else "" for w in words]
        for word in keep:
            if word:
                total += 1
                unigrams[word.lower()] += 1
                weight[word.lower()] += bonus
                spelling.setdefault(word.lower(), Counter())[word] += 1
                first_seen.setdefault(word.lower(), total)
        for a, b in itertools.pairwise(keep):
            if a and b and a.lower() != b.lower():
                phrase = f"{a.lower()} {b.lower()}"
                bigrams[phrase] += 1
                weight[phrase] += 2.0 * bonus
                first_seen.setdefault(phrase, total)
    minimum = 2 if total >= 200 else 1
    candidates = [(weight[phrase], phrase) for phrase, count in bigrams.items() if count >= 2]
    candidates += [(weight[word], word) for word, count in unigrams.items() if count >= minimum]
    chosen: list[str] = []
    used_words: set[str] = set()
    for _, phrase in sorted(candidates, key=lambda c: (-c[0], first_seen[c[1]])):
        parts = phrase.split()
        if used_words.intersection(parts):
            continue
        chosen.append(" ".join(spelling[p].most_common(1)[0][0] for p in parts))
        used_words.update(parts)
        if len(chosen) >= min(limit, max(3, total // 15)):
            break
    return chosen


def _is_topic_word(word: str) -> bool:
    return len(word) > 2 and word not in STOPWORDS and word not in _FILLER and not word.isdigit()


def extractive_minutes(pieces: Sequence[TranscriptPiece], *, title: str = "Meeting minutes") -> Minutes:
    """Minutes quoted from the transcript, without a language model. Pure and deterministic.

    Summary: the most central sentences (3 to 10, more for longer meetings). Decisions and
    action items: sentences with decision or commitment cues (core.ai.extractive), the owner
    named in the sentence or, for "I will ...", the speaker, and the deadline as said.
    Open questions: substantive questions, at most 10. Topics: frequent key phrases.
    Every item carries the second its sentence began.
    """
    timed = _timed_sentences(pieces)
    texts = [s.text for s in timed]
    scores = extractive.rank_sentences(texts)
    summary_size = min(10, max(3, 3 + len(texts) // 60))
    best = sorted(range(len(texts)), key=lambda i: (-scores[i], i))[:summary_size]
    summary = " ".join(texts[i] for i in sorted(best))

    decisions: list[MinutesItem] = []
    actions: list[MinutesActionItem] = []
    questions: list[tuple[float, int]] = []
    marked: set[int] = set()  # indexes of decisions and action items
    seen: set[str] = set()
    for index, sentence in enumerate(timed):
        key = sentence.text.lower()
        if key in seen:
            continue
        seen.add(key)
        if extractive.is_decision(sentence.text):
            decisions.append(MinutesItem(sentence.text, sentence.start))
            marked.add(index)
        item = extractive.action_item(sentence.text)
        if item is not None:
            marked.add(index)
            owner = item.owner
            if owner is None and sentence.speaker and re.match(r"\s*I\b", sentence.text):
                owner = sentence.speaker
            actions.append(MinutesActionItem(task=item.text, owner=owner, due=item.due, timestamp=sentence.start))
        elif _is_open_question(sentence.text):
            questions.append((scores[index], index))
    kept_questions = sorted(index for _, index in sorted(questions, key=lambda q: (-q[0], q[1]))[:10])

    salient = marked | set(kept_questions)
    names = {a.owner.lower() for a in actions if a.owner} | {s.speaker.lower() for s in timed if s.speaker}
    topics = _key_phrases(texts, salient=salient, names=names)
    return Minutes(
        title=title,
        summary=summary,
        decisions=tuple(decisions),
        action_items=tuple(actions),
        open_questions=tuple(MinutesItem(timed[i].text, timed[i].start) for i in kept_questions),
        topics=tuple(topics),
        generator=EXTRACTIVE_GENERATOR,
    )


# --------------------------------------------------------------------------- entry points


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


@dataclass(frozen=True)
class MinutesView:
    """The minutes of one job as the page shows them. `markdown` is what people read: the
    owner's edit when there is one (`edited_at` set), else the generated minutes."""

    job_id: int
    filename: str
    status: str
    minutes: Minutes | None
    markdown: str | None
    edited_at: datetime | None
    can_edit: bool = False

    @property
    def is_edited(self) -> bool:
        return self.edited_at is not None


def _title_for(filename: str) -> str:
    stem = PurePath(filename).stem.replace("_", " ").replace("-", " ").strip()
    return f"Minutes: {stem}" if stem else "Meeting minutes"


def _view(job: TranscriptionJob, actor: Actor | None) -> MinutesView:
    minutes = minutes_from_json(job.minutes, fallback_title=_title_for(job.filename)) if job.minutes else None
    can_edit = actor is not None and may_manage_job(actor, job)
    return MinutesView(
        job_id=job.id,
        filename=job.filename,
        status=job.status,
        minutes=minutes,
        markdown=job.minutes_markdown,
        edited_at=job.minutes_edited_at,
        can_edit=can_edit,
    )


def _job_pieces(job: TranscriptionJob) -> list[TranscriptPiece]:
    pieces = pieces_from_segments(job.transcript_segments or [])
    if not pieces and job.transcript_text and job.transcript_text.strip():
        pieces = [TranscriptPiece(start=0.0, end=job.duration_seconds or 0.0, text=job.transcript_text)]
    return pieces


def write_minutes_for_job(job_id: int, *, regenerate: bool = False, requested_by: int | None = None) -> None:
    """Generate and store the minutes of a transcribed job (worker entry point).

    Idempotent: returns without calling the AI when the job already has minutes, unless
    `regenerate`. A human edit is never overwritten except by an explicit regenerate, which
    replaces it. The AI calls run outside any transaction; the write is one conditional
    UPDATE, so a redelivered message or a concurrent edit cannot be clobbered.
    AI usage is recorded under purpose "minutes" for `requested_by` (default: the owner).
    Raises NotFound for an unknown job, PermanentError when it has no transcript yet,
    Conflict when the minutes were edited while a regenerate was running, ProviderError
    when the provider fails.
    """
    from core.ai import get_provider

    with session_scope() as session:
        job = session.get(TranscriptionJob, job_id)
        if job is None:
            raise NotFound(f"Recording {job_id} was not found.")
        if (job.minutes is not None or job.minutes_edited_at is not None) and not regenerate:
            log.info("minutes: job %s already has minutes (generated or edited); skipped", job_id)
            return
        if job.transcript_segments is None and job.transcript_text is None:
            raise PermanentError(f"Recording {job_id} has no transcript yet, so it has no minutes to write.")
        pieces = _job_pieces(job)
        seen_edit = job.minutes_edited_at
        owner_id = job.owner_id
        title = _title_for(job.filename)

    usage = UsageContext(purpose="minutes", user_id=requested_by or owner_id, transcription_job_id=job_id)
    minutes = generate_minutes(pieces, provider=get_provider(), usage=usage, title=title)

    conditions = [TranscriptionJob.id == job_id]
    if regenerate:
        conditions.append(TranscriptionJob.minutes_edited_at.is_not_distinct_from(seen_edit))
    else:
        # JSON null or SQL NULL: the ORM writes None into a JSONB column as JSON null.
        no_minutes = func.coalesce(func.jsonb_typeof(TranscriptionJob.minutes), "null") == "null"
        conditions += [no_minutes, TranscriptionJob.minutes_edited_at.is_(None)]
    with session_scope() as session:
        written = session.execute(
            update(TranscriptionJob)
            .where(*conditions)
            .values(minutes=minutes.to_json(), minutes_markdown=minutes.to_markdown(), minutes_edited_at=None)
            .returning(TranscriptionJob.id)
        ).first()
    if written is None and regenerate:
        raise Conflict("The minutes were edited while they were being regenerated; the edit was kept.")
    if written is None:
        log.info("minutes: job %s got minutes from another worker meanwhile; kept those", job_id)
    else:
        log.info("minutes: job %s written by %s", job_id, minutes.generator)


def get_minutes(*, actor: Actor, job_id: int) -> MinutesView:
    """The job's minutes for `actor`. Read-only. Raises NotFound when the actor may not
    read the job (core.meetings.recording_access); `minutes` and `markdown` are None until written."""
    with session_scope() as session:
        job = load_readable_job(session, actor=actor, job_id=job_id)
        return _view(job, actor)


def regenerate_minutes(*, actor: Actor, job_id: int) -> MinutesView:
    """Write the minutes again from the stored transcript (no re-transcription), replacing
    any edit, then re-index the job's meeting_minutes document when there is one.

    Owner or admin. Commits. Raises NotFound, PermissionDenied, Conflict (no transcript
    yet, or edited meanwhile), ProviderError.
    """
    with session_scope() as session:
        job = load_managed_job(session, actor=actor, job_id=job_id)
        if job.transcript_segments is None and job.transcript_text is None:
            raise Conflict("This recording has no transcript yet; minutes can be written once it is transcribed.")
    write_minutes_for_job(job_id, regenerate=True, requested_by=actor.id)
    _reindex_minutes_document(job_id)
    return get_minutes(actor=actor, job_id=job_id)


def update_minutes(*, actor: Actor, job_id: int, markdown: str) -> MinutesView:
    """Keep the owner's edited minutes (Markdown) and re-index them for search.

    The edit is stored in minutes_markdown with minutes_edited_at; the structured minutes
    stay as generated. Owner or admin. Commits. Raises InvalidInput (empty or over
    MAX_MINUTES_MARKDOWN_CHARS), NotFound, PermissionDenied.
    """
    text = markdown.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput("The minutes cannot be empty. Regenerate them instead to start again.")
    if len(text) > MAX_MINUTES_MARKDOWN_CHARS:
        raise InvalidInput(f"Minutes are limited to {MAX_MINUTES_MARKDOWN_CHARS:,} characters.")
    with session_scope() as session:
        job = load_managed_job(session, actor=actor, job_id=job_id, for_update=True)
        job.minutes_markdown = text + "\n"
        job.minutes_edited_at = datetime.now(UTC)
        session.flush()
        view = _view(job, actor)
    _reindex_minutes_document(job_id)
    return view


def _reindex_minutes_document(job_id: int) -> None:
    """Refresh the job's meeting_minutes document from minutes_markdown, when it has one.

    core.documents.indexing stores the new text and enqueues its indexing (old chunks stay
    searchable until the swap); a job whose minutes were never indexed is left to the
    transcription pipeline, which indexes them on completion.
    """
    with session_scope() as session:
        document_id = session.scalar(
            select(Document.id).where(
                Document.transcription_job_id == job_id, Document.document_type == "meeting_minutes"
            )
        )
    if document_id is None:
        return
    from core.documents.indexing import index_text_document  # late: documents pulls in the AI and queue stack

    index_text_document(job_id=job_id, document_type="meeting_minutes")


__all__ = [
    "Minutes",
    "MinutesActionItem",
    "MinutesItem",
    "MinutesView",
    "extractive_minutes",
    "format_clock",
    "generate_minutes",
    "get_minutes",
    "merge_minutes",
    "minutes_from_json",
    "parse_timestamp",
    "pieces_from_segments",
    "regenerate_minutes",
    "update_minutes",
    "write_minutes_for_job",
]
