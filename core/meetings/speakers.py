"""Speaker names of a recording: name the diarization labels once, see the names everywhere.

Transcription keeps the labels the model gave (gpt-4o-transcribe-diarize: "A", "B", ...) in
transcript_segments; the names live beside them in transcription_jobs.speaker_names
({label: name}), so a rename never rewrites the transcript and can be undone. Readers apply
the names with `apply_speaker_names` / `named_segments`: the transcript view, every export,
the minutes written from the transcript, and the indexed transcript.

A recording without labels (whisper-1, the offline model) can still be given one name under
the label UNLABELED ("*"): every line is then said by that person.

A rename also renames the owners of the recording's action items (minutes and the
action_items table) and re-indexes the transcript document, and the minutes document only
when an owner changed; unchanged chunks keep their vectors (core.documents.indexing).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import Actor
from core.ai.base import Message, UsageContext
from core.meetings.minutes_format import minutes_from_json
from core.meetings.recording_access import (
    load_managed_recording,
    load_readable_recording,
    may_manage_recording,
    recording_visible_clause,
)
from core.platform.db import session_scope
from core.platform.errors import InvalidInput
from core.platform.models import ActionItem, Document, TranscriptionJob, User
from core.platform.statuses import DocumentType

log = logging.getLogger(__name__)

UNLABELED = "*"  # the key that names every line of a recording without speaker labels
MAX_NAME_CHARS = 80
EXCERPTS_PER_SPEAKER = 3
_EXCERPT_CHARS = 160
_SUGGEST_BUDGET_TOKENS = 3000
_NAME = re.compile(r"^[^\W\d_][\w .'’-]*$")


@dataclass(frozen=True)
class Excerpt:
    """A line a speaker said, to tell speakers apart by what they said."""

    start: float
    text: str


@dataclass(frozen=True)
class SpeakerInfo:
    """One label of a recording: its name (None until named), how much they said, excerpts."""

    label: str
    name: str | None
    lines: int
    seconds: float
    excerpts: tuple[Excerpt, ...]

    @property
    def shown_as(self) -> str:
        """What the transcript shows for this speaker now."""
        return self.name or default_display(self.label)


@dataclass(frozen=True)
class SpeakersView:
    """The speakers of one recording. `diarized` is False when the transcript has no labels
    (then `speakers` holds the one UNLABELED entry that names the whole recording)."""

    job_id: int
    speakers: tuple[SpeakerInfo, ...]
    diarized: bool
    can_rename: bool


@dataclass(frozen=True)
class SpeakerSuggestion:
    """A name the transcript suggests for a label, with the words that suggest it."""

    label: str
    name: str
    evidence: str


def default_display(label: str) -> str:
    """How an unnamed label reads: "Speaker A"; the unlabeled recording reads "Speaker"."""
    return "Speaker" if label == UNLABELED else f"Speaker {label}"


def clean_name(name: str) -> str:
    """A speaker name as stored: one line, single spaces, at most MAX_NAME_CHARS.

    "" means "no name". Raises InvalidInput for text that is not a name (markup, digits first).
    """
    text = " ".join("".join(ch for ch in str(name) if ch.isprintable()).split())
    if not text:
        return ""
    if len(text) > MAX_NAME_CHARS:
        raise InvalidInput(f"Speaker names are limited to {MAX_NAME_CHARS} characters.")
    if not _NAME.match(text):
        raise InvalidInput(f"“{text}” does not look like a name: use letters, spaces, dots, hyphens or apostrophes.")
    return text


def apply_speaker_names(segments: Iterable[Any], names: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Transcript segment dicts with "speaker" set to the name given to its label. Pure.

    The label stays under "speaker_label". Unnamed labels stay as they are; with a name
    under UNLABELED every line without a label gets that name.
    """
    names = {str(k): str(v) for k, v in (names or {}).items() if str(v).strip()}
    named = []
    for item in segments:
        if not isinstance(item, Mapping):
            continue
        label = item.get("speaker") or None
        name = names.get(str(label)) if label else names.get(UNLABELED)
        named.append({**item, "speaker": name or label, "speaker_label": label})
    return named


def named_segments(job: TranscriptionJob) -> list[dict[str, Any]]:
    """The job's transcript segments with its speaker names applied (see apply_speaker_names)."""
    return apply_speaker_names(job.transcript_segments or [], job.speaker_names)


def _labels(segments: Sequence[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for item in segments:
        if isinstance(item, Mapping) and item.get("speaker"):
            seen.setdefault(str(item["speaker"]), None)
    return list(seen)


def _excerpts(lines: Sequence[Mapping[str, Any]]) -> tuple[Excerpt, ...]:
    """The longest line of each third of a speaker's lines: distinct moments, in order."""
    if not lines:
        return ()
    parts = min(EXCERPTS_PER_SPEAKER, len(lines))
    chosen = []
    for part in range(parts):
        window = lines[part * len(lines) // parts : (part + 1) * len(lines) // parts]
        best = max(window, key=lambda line: len(str(line.get("text") or "")))
        text = " ".join(str(best.get("text") or "").split())
        if len(text) > _EXCERPT_CHARS:
            text = text[: _EXCERPT_CHARS - 1].rsplit(" ", 1)[0] + "…"
        chosen.append(Excerpt(start=float(best.get("start") or 0.0), text=text))
    return tuple(chosen)


def _speaker_infos(job: TranscriptionJob) -> tuple[tuple[SpeakerInfo, ...], bool]:
    segments = [s for s in job.transcript_segments or [] if isinstance(s, Mapping) and str(s.get("text") or "").strip()]
    names = {str(k): str(v) for k, v in (job.speaker_names or {}).items()}
    labels = _labels(segments)
    diarized = bool(labels)
    infos = []
    for label in labels or [UNLABELED]:
        said = [s for s in segments if (s.get("speaker") or UNLABELED) == label] if diarized else segments
        seconds = sum(max(0.0, float(s.get("end") or 0.0) - float(s.get("start") or 0.0)) for s in said)
        infos.append(
            SpeakerInfo(
                label=label,
                name=names.get(label) or None,
                lines=len(said),
                seconds=round(seconds, 1),
                excerpts=_excerpts(said),
            )
        )
    return tuple(infos), diarized


def get_speakers(*, actor: Actor, job_id: int) -> SpeakersView:
    """The speakers of a recording with excerpts of each. Read-only. Raises NotFound."""
    with session_scope() as session:
        job = load_readable_recording(session, actor=actor, job_id=job_id)
        speakers, diarized = _speaker_infos(job)
        return SpeakersView(
            job_id=job.id, speakers=speakers, diarized=diarized, can_rename=may_manage_recording(actor, job)
        )


def known_speaker_names(*, actor: Actor) -> list[str]:
    """The directory of names to complete from: speaker names of every recording the actor
    may read, and the display names of active users, sorted case-insensitively. Read-only."""
    with session_scope() as session:
        pairs = func.jsonb_each_text(TranscriptionJob.speaker_names).table_valued("key", "value").lateral()
        used = session.scalars(
            select(pairs.c.value).select_from(TranscriptionJob).join(pairs, pairs.c.key.is_not(None))
            .where(recording_visible_clause(actor))
            .distinct()
        ).all()  # fmt: skip
        people = session.scalars(
            select(User.display_name).where(User.is_active.is_(True), User.display_name != "")
        ).all()
    names = {" ".join(str(n).split()) for n in [*used, *people] if str(n).strip()}
    return sorted(names, key=str.casefold)


# --------------------------------------------------------------------------- rename


def _renamed_owner(owner: str | None, renames: Mapping[str, str]) -> str | None:
    if not owner:
        return owner
    return renames.get(owner.strip().casefold(), owner)


def _owner_renames(job: TranscriptionJob, old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    """{what an owner may read now (casefolded): what it should read}, for every label whose
    shown name changes: its old name, the bare label and "Speaker X" all become the new one."""
    renames: dict[str, str] = {}
    for label in set(old) | set(new):
        before = old.get(label) or default_display(label)
        after = new.get(label) or default_display(label)
        if before == after:
            continue
        for spelling in {before, default_display(label), label if label != UNLABELED else before}:
            renames[spelling.casefold()] = after
    return renames


def _rename_minutes_owners(job: TranscriptionJob, renames: Mapping[str, str]) -> bool:
    """Rename action-item owners in the job's minutes (JSON, and the Markdown). True if changed."""
    if not renames or not isinstance(job.minutes, Mapping):
        return False
    data = json.loads(json.dumps(job.minutes))
    changed = False
    for item in data.get("action_items") or []:
        if isinstance(item, dict):
            renamed = _renamed_owner(item.get("owner"), renames)
            if renamed != item.get("owner"):
                item["owner"], changed = renamed, True
    if not changed:
        return False
    job.minutes = data
    if job.minutes_edited_at is None:
        title = data.get("title") or "Meeting minutes"
        job.minutes_markdown = minutes_from_json(data, fallback_title=title).to_markdown()
    elif job.minutes_markdown:
        markdown = job.minutes_markdown
        for before, after in renames.items():
            markdown = re.sub(rf"\*\*{re.escape(before)}\*\*", f"**{after}**", markdown, flags=re.IGNORECASE)
        job.minutes_markdown = markdown
    return True


def _rename_action_item_owners(session: Session, job_id: int, renames: Mapping[str, str]) -> int:
    count = 0
    for before, after in renames.items():
        result = session.execute(
            update(ActionItem)
            .where(ActionItem.transcription_job_id == job_id, func.lower(ActionItem.owner) == before.lower())
            .values(owner=after, updated_at=func.now())
        )
        count += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return count


def rename_speakers(*, actor: Actor, job_id: int, names: Mapping[str, str]) -> SpeakersView:
    """Give the recording's speaker labels names ({label: name}; "" removes a name).

    Owner or admin (as for editing the minutes). Labels not in `names` keep their name. The
    action-item owners that read as a renamed speaker are renamed too. Commits with an audit
    row, then queues re-indexing of the transcript, and of the minutes when an owner changed
    (unchanged text is not indexed again). Raises NotFound, PermissionDenied, InvalidInput
    (unknown label, a name that is not a name).
    """
    cleaned = {str(label): clean_name(name) for label, name in names.items()}
    with session_scope() as session:
        job = load_managed_recording(session, actor=actor, job_id=job_id, for_update=True)
        infos, _ = _speaker_infos(job)
        known = {info.label for info in infos}
        unknown = sorted(set(cleaned) - known)
        if unknown:
            raise InvalidInput(f"This recording has no speaker {', '.join(map(repr, unknown))}.")
        old = {str(k): str(v) for k, v in (job.speaker_names or {}).items() if str(v)}
        new = {**old, **cleaned}
        new = {label: name for label, name in new.items() if name}
        if new == old:
            return get_speakers_in(session, actor, job)
        renames = _owner_renames(job, old, new)
        job.speaker_names = new
        minutes_changed = _rename_minutes_owners(job, renames)
        items_renamed = _rename_action_item_owners(session, job_id, renames)
        record_audit(
            session,
            actor=actor,
            action="recording.speakers",
            target_type="transcription",
            target_id=job_id,
            details={"before": old, "after": new, "action_items_renamed": items_renamed},
        )
        session.flush()
        view = get_speakers_in(session, actor, job)
        indexed = set(
            session.scalars(select(Document.document_type).where(Document.transcription_job_id == job_id)).all()
        )
    _reindex(job_id, indexed, minutes_changed=minutes_changed)
    return view


def get_speakers_in(session: Session, actor: Actor, job: TranscriptionJob) -> SpeakersView:
    speakers, diarized = _speaker_infos(job)
    return SpeakersView(
        job_id=job.id, speakers=speakers, diarized=diarized, can_rename=may_manage_recording(actor, job)
    )


def _reindex(job_id: int, indexed: set[str], *, minutes_changed: bool) -> None:
    """Queue the job's documents whose text a rename changed (only those already indexed:
    the transcription pipeline indexes the others when it finishes)."""
    from core.documents.from_recordings import index_text_document  # late: documents pulls in the AI stack

    if "full_transcript" in indexed:
        index_text_document(job_id=job_id, document_type=DocumentType.TRANSCRIPT)
    if minutes_changed and "meeting_minutes" in indexed:
        index_text_document(job_id=job_id, document_type=DocumentType.MINUTES)


# --------------------------------------------------------------------------- suggestions

SUGGEST_PROMPT = (
    "You identify the speakers of a meeting transcript. Each line starts with the speaker's "
    "label in square brackets. Infer each label's real name only from what is said: "
    'introductions ("I\'m Dana"), people addressing each other ("Thanks, Dana" answered by '
    "the next speaker), or sign-offs. Answer with one JSON object only: "
    '{"speakers": [{"label": string, "name": string, "evidence": string}]} where evidence '
    "quotes the words that show it. Leave out every label whose name the transcript does not show."
)
_INTRODUCTION = re.compile(
    r"\b(?:I'm|I am|my name is|this is|it's)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)\b"
    r"|^([A-Z][a-z]+)\s+here\b"
)
_ADDRESSING = re.compile(r"\b(?:thanks|thank you|over to you|go ahead|welcome)[,]?\s+([A-Z][a-z]+)\b", re.IGNORECASE)
_NOT_NAMES = frozenset(
    {"Here", "There", "Going", "Sorry", "Happy", "Glad", "Just", "Not", "Also", "Still", "Really"}
    | {"Everyone", "Everybody", "All", "Team", "Good", "Great", "Okay", "Back", "Done", "Ready"}
)


def _plausible(name: str) -> bool:
    try:
        cleaned = clean_name(name)
    except InvalidInput:
        return False
    return bool(cleaned) and cleaned.split()[0] not in _NOT_NAMES and len(cleaned) <= 40


def suggest_from_introductions(segments: Sequence[Mapping[str, Any]]) -> list[SpeakerSuggestion]:
    """Names said in introductions ("I'm Dana") by a label, or said to the next speaker
    ("Thanks, Dana"). The first clue per label wins; no name for two labels. Pure."""
    found: dict[str, SpeakerSuggestion] = {}
    lines = [s for s in segments if s.get("speaker") and str(s.get("text") or "").strip()]
    for position, line in enumerate(lines):
        label, text = str(line["speaker"]), " ".join(str(line["text"]).split())
        for match in _INTRODUCTION.finditer(text):
            name = match.group(1) or match.group(2)
            if name and _plausible(name) and label not in found:
                found[label] = SpeakerSuggestion(label, name, text)
        following = next((n for n in lines[position + 1 :] if n["speaker"] != label), None)
        for match in _ADDRESSING.finditer(text):
            name = match.group(1)
            if following is not None and _plausible(name) and str(following["speaker"]) not in found:
                found[str(following["speaker"])] = SpeakerSuggestion(str(following["speaker"]), name, text)
    taken: dict[str, str] = {}
    unique = []
    for suggestion in found.values():
        if taken.setdefault(suggestion.name.casefold(), suggestion.label) == suggestion.label:
            unique.append(suggestion)
    return unique


def _suggest_with_model(job_id: int, segments: Sequence[Mapping[str, Any]], actor: Actor) -> list[SpeakerSuggestion]:
    from core.ai import get_provider

    provider = get_provider()
    labels = set(_labels(segments))
    lines, used = [], provider.count_tokens(SUGGEST_PROMPT)
    for item in segments:  # introductions come first: the opening of the meeting is what counts
        line = f"[{item.get('speaker') or '?'}] {' '.join(str(item.get('text') or '').split())}"
        used += provider.count_tokens(line) + 1
        if used > _SUGGEST_BUDGET_TOKENS:
            break
        lines.append(line)
    usage = UsageContext(purpose="minutes", user_id=actor.id, transcription_job_id=job_id)
    completion = provider.complete(
        [Message(role="system", content=SUGGEST_PROMPT), Message(role="user", content="\n".join(lines))],
        usage=usage,
        max_tokens=600,
        json_mode=True,
    )
    try:
        data = json.loads(completion.text)
    except json.JSONDecodeError:
        log.warning("speaker suggestions: the model's answer was not JSON")
        return []
    suggestions = []
    for raw in data.get("speakers") or [] if isinstance(data, dict) else []:
        if not isinstance(raw, dict):
            continue
        label, name = str(raw.get("label") or "").strip("[] "), str(raw.get("name") or "")
        if label in labels and _plausible(name):
            evidence = " ".join(str(raw.get("evidence") or "").split())[:200]
            suggestions.append(SpeakerSuggestion(label, clean_name(name), evidence))
    return suggestions


def suggest_speaker_names(*, actor: Actor, job_id: int) -> list[SpeakerSuggestion]:
    """Names for the recording's labels as the transcript suggests them, for the owner to
    accept or not: nothing is stored. With a chat model it reads the opening of the meeting
    (recorded in the usage ledger); offline, introductions and addressing are matched.
    Owner or admin. Raises NotFound, PermissionDenied, ProviderError.
    """
    with session_scope() as session:
        job = load_managed_recording(session, actor=actor, job_id=job_id)
        segments = [s for s in job.transcript_segments or [] if isinstance(s, Mapping)]
    if not _labels(segments):
        return []
    from core.ai import get_provider

    if get_provider().generates_text:
        suggestions = _suggest_with_model(job_id, segments, actor)
        if suggestions:
            return suggestions
    return suggest_from_introductions(segments)


__all__ = [
    "UNLABELED",
    "Excerpt",
    "SpeakerInfo",
    "SpeakerSuggestion",
    "SpeakersView",
    "apply_speaker_names",
    "default_display",
    "get_speakers",
    "known_speaker_names",
    "named_segments",
    "rename_speakers",
    "suggest_from_introductions",
    "suggest_speaker_names",
]
