"""The stored text of transcript and minutes documents: canonical JSON of sections or timed pieces."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.ai.base import TranscriptPiece
from core.documents.extraction import Section
from core.platform.errors import InvalidInput
from core.platform.timecodes import short_clock

TEXT_SOURCE_TYPE = "application/vnd.quorum.text+json"
TEXT_SOURCE_FORMAT = "quorum-text/1"


def parse_text_source(data: bytes) -> tuple[list[Section], list[TranscriptPiece]]:
    try:
        payload = json.loads(data)
        if payload.get("format") != TEXT_SOURCE_FORMAT:
            raise ValueError("unknown format")
        sections = [
            Section(text=item["text"], page_number=item.get("page_number"), heading=item.get("heading"))
            for item in payload.get("sections", [])
        ]
        pieces = [
            TranscriptPiece(
                start=float(item["start"]), end=float(item["end"]), text=item["text"], speaker=item.get("speaker")
            )
            for item in payload.get("pieces", [])
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput(f"The stored text of this document is damaged ({error}).") from None
    return sections, pieces


def text_source_bytes(title: str, items: Sequence[Any]) -> bytes:
    """Canonical JSON for sections or timed pieces (same content -> same bytes -> same sha256)."""
    payload: dict[str, Any] = {"format": TEXT_SOURCE_FORMAT, "title": title}
    if items and all(hasattr(item, "start") and hasattr(item, "end") for item in items):
        payload["pieces"] = [
            {
                "start": round(float(piece.start), 3),
                "end": round(float(piece.end), 3),
                "text": str(piece.text),
                "speaker": getattr(piece, "speaker", None),
            }
            for piece in items
            if str(piece.text).strip()
        ]
    else:
        payload["sections"] = [
            {"text": section.text, "page_number": section.page_number, "heading": section.heading}
            for section in items
            if section.text.strip()
        ]
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")


def render_pieces(pieces: Sequence[TranscriptPiece]) -> str:
    lines = []
    for piece in pieces:
        speaker = f"{piece.speaker}: " if piece.speaker else ""
        lines.append(f"[{short_clock(piece.start)}] {speaker}{piece.text}")
    return "\n".join(lines) + "\n"


def render_sections(sections: Sequence[Section]) -> str:
    parts = []
    heading: str | None = None
    for section in sections:
        if section.heading and section.heading != heading:
            parts.append(f"## {section.heading}")
            heading = section.heading
        parts.append(section.text)
    return "\n\n".join(parts) + "\n"
