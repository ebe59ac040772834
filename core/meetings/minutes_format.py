"""The Minutes value, its stored JSON and Markdown, and repair of a model's minutes JSON.

Minutes are a frozen `Minutes` value (title, summary, decisions, action items with owner,
due date and the second they were said, open questions, topics), stored on the job as
JSON (`transcription_jobs.minutes`) next to their Markdown (`minutes_markdown`).

The model's JSON is validated and repaired (missing fields, wrong types, timestamps as
"h:mm:ss" or seconds). Pure functions, no database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.ai.base import TranscriptPiece

MINUTES_SCHEMA_VERSION = 1
EXTRACTIVE_GENERATOR = "extractive"


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
        lines += [f"- {clock_prefix(d.timestamp)}{d.text}" for d in self.decisions] or ["_None recorded._"]
        lines += ["", "## Action items", ""]
        for item in self.action_items:
            details = [f"**{item.owner}**" if item.owner else "_unassigned_"]
            if item.due:
                details.append(f"due {item.due}")
            # No tick box: whether an item is done lives in the Action items view, not here.
            lines.append(f"- {clock_prefix(item.timestamp)}{item.task} — {', '.join(details)}")
        if not self.action_items:
            lines.append("_None recorded._")
        lines += ["", "## Open questions", ""]
        lines += [f"- {clock_prefix(q.timestamp)}{q.text}" for q in self.open_questions] or ["_None recorded._"]
        lines += ["", "## Topics", ""]
        lines += [f"- {topic}" for topic in self.topics] or ["_None recorded._"]
        return "\n".join(lines).rstrip() + "\n"


def format_clock(seconds: float | None) -> str:
    """Seconds as h:mm:ss (0:01:05); "" for None. Fractions are dropped, negatives read as 0."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def clock_prefix(seconds: float | None) -> str:
    return f"[{format_clock(seconds)}] " if seconds is not None else ""


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


def as_text(value: object) -> str:
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
                return as_text(value[key])
        return ""
    if isinstance(value, Iterable):
        return " ".join(part for part in (as_text(v) for v in value) if part)
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
            text = as_text(_first(raw, _TEXT_KEYS))
            timestamp = parse_timestamp(_first(raw, _TIME_KEYS), max_seconds=max_seconds)
        else:
            text, timestamp = as_text(raw), None
        if text:
            found.append(MinutesItem(text=text, timestamp=timestamp))
    return tuple(found)


def _owner(value: object) -> str | None:
    text = as_text(value)
    return None if text.lower() in _NO_OWNER else text


def _action_items(value: object, *, max_seconds: float | None) -> tuple[MinutesActionItem, ...]:
    found: list[MinutesActionItem] = []
    for raw in _as_list(value):
        if isinstance(raw, Mapping):
            task = as_text(_first(raw, ("task", "action", "text", "item", "description", "title")))
            owner = _owner(_first(raw, ("owner", "assignee", "assigned_to", "who", "responsible", "person")))
            due = _owner(_first(raw, ("due", "due_date", "deadline", "by", "when")))
            timestamp = parse_timestamp(_first(raw, _TIME_KEYS), max_seconds=max_seconds)
        else:
            task, owner, due, timestamp = as_text(raw), None, None, None
        if task:
            found.append(MinutesActionItem(task=task, owner=owner, due=due, timestamp=timestamp))
    return tuple(found)


def _topics(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in re.split(r"[,;\n]", value)]
    seen: dict[str, str] = {}
    for raw in _as_list(value):
        text = as_text(raw)
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
        data = extract_json_object(data if isinstance(data, str) else data.decode("utf-8", "replace"))
    if not isinstance(data, Mapping):
        data = {}
    minutes_field = data.get("minutes")
    if isinstance(minutes_field, Mapping) and "summary" not in data:
        data = minutes_field  # {"minutes": {...}} wrapping
    title = as_text(data.get("title")) or fallback_title
    return Minutes(
        title=title[:200],
        summary=as_text(data.get("summary")),
        decisions=_items(data.get("decisions"), max_seconds=max_seconds),
        action_items=_action_items(data.get("action_items", data.get("actions")), max_seconds=max_seconds),
        open_questions=_items(data.get("open_questions", data.get("questions")), max_seconds=max_seconds),
        topics=_topics(data.get("topics")),
        generator=as_text(data.get("generator")) or generator,
    )


def extract_json_object(text: str) -> object:
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
            speaker = as_text(raw.get("speaker")) or None
            piece = TranscriptPiece(
                start=start, end=end if end is not None else start, text=str(raw.get("text") or ""), speaker=speaker
            )
        if piece.text.strip():
            result.append(piece)
    return result
