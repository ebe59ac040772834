"""Speaker names: named once, seen in the transcript, every export, the minutes' owners, the
action items and the indexed transcript; suggestions never applied; only changed chunks
embedded again. Real PostgreSQL, Redis, and the fake OpenAI server for the chat model."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from docx import Document as DocxDocument
from sqlalchemy import select

from core.access.rbac import Actor
from core.ai import get_provider
from core.documents import document_chunks, index_document, index_text_document
from core.meetings import get_recording
from core.meetings.action_item_sync import sync_action_items
from core.meetings.action_items import list_action_items
from core.meetings.exports import export_recording, export_recordings_csv
from core.meetings.minutes_format import Minutes, MinutesActionItem, minutes_from_json
from core.meetings.speakers import (
    UNLABELED,
    apply_speaker_names,
    get_speakers,
    known_speaker_names,
    rename_speakers,
    suggest_from_introductions,
    suggest_speaker_names,
)
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.models import Document
from tests.fake_openai import FakeOpenAI
from tests.job_factory import insert_job, load_job

pytest_plugins = ["tests.recording_fixtures"]

DIALOGUE = [
    {"start": 0.0, "end": 4.0, "text": "Hi all, I'm Alice and I run the budget.", "speaker": "A"},
    {"start": 4.0, "end": 8.0, "text": "Thanks, Alice. Let's start with travel costs.", "speaker": "B"},
    {"start": 8.0, "end": 13.0, "text": "Travel costs went up by ten percent this quarter.", "speaker": "A"},
    {"start": 13.0, "end": 18.0, "text": "I will send the final budget report by Friday.", "speaker": "A"},
    {"start": 18.0, "end": 22.0, "text": "Good, the hiring plan is next.", "speaker": "B"},
]


def _minutes_owned_by(owner: str) -> dict[str, Any]:
    return Minutes(
        title="Minutes: budget",
        summary="Budget review.",
        action_items=(MinutesActionItem("Send the final budget report", owner=owner, due="Friday", timestamp=13.0),),
        generator="extractive",
    ).to_json()


@pytest.fixture
def diarized_job(member: Actor, redis_server: str) -> int:
    minutes = _minutes_owned_by("A")
    markdown = minutes_from_json(minutes).to_markdown()
    job_id = insert_job(member, segments=DIALOGUE, filename="budget.mp3", minutes=minutes, minutes_markdown=markdown)
    sync_action_items(job_id)
    return job_id


def test_names_apply_to_labels_and_an_unlabeled_recording_takes_one_name() -> None:
    named = apply_speaker_names(DIALOGUE, {"A": "Alice"})
    assert [s["speaker"] for s in named] == ["Alice", "B", "Alice", "Alice", "B"]
    assert named[1]["speaker_label"] == "B"
    plain = [{"start": 0.0, "end": 1.0, "text": "Hello.", "speaker": None}]
    assert apply_speaker_names(plain, {UNLABELED: "Dana"})[0]["speaker"] == "Dana"
    assert apply_speaker_names(plain, {})[0]["speaker"] is None


def test_the_owner_sees_excerpts_and_a_rename_reaches_transcript_exports_minutes_and_items(
    member: Actor, diarized_job: int
) -> None:
    view = get_speakers(actor=member, job_id=diarized_job)
    assert view.diarized and view.can_rename
    alice, bob = view.speakers
    assert (alice.label, alice.lines, bob.label, bob.lines) == ("A", 3, "B", 2)
    assert 2 <= len(alice.excerpts) <= 3 and all(e.text for e in alice.excerpts)
    assert [i.owner for i in list_action_items(actor=member, job_id=diarized_job)] == ["A"]

    rename_speakers(actor=member, job_id=diarized_job, names={"A": "Alice Smith", "B": "Bob"})

    lines = get_recording(actor=member, job_id=diarized_job).lines
    assert [line.speaker for line in lines] == ["Alice Smith", "Bob", "Alice Smith", "Alice Smith", "Bob"]
    srt = export_recording(actor=member, job_id=diarized_job, fmt="srt").data.decode()
    assert "Alice Smith: I will send the final budget report by Friday." in srt
    vtt = export_recording(actor=member, job_id=diarized_job, fmt="vtt").data.decode()
    assert "<v Bob>Thanks, Alice." in vtt
    txt = export_recording(actor=member, job_id=diarized_job, fmt="txt").data.decode()
    assert "[0:00:04] Bob: Thanks, Alice." in txt
    payload = json.loads(export_recording(actor=member, job_id=diarized_job, fmt="json").data)
    assert payload["segments"][0]["speaker"] == "Alice Smith"
    docx = DocxDocument(io.BytesIO(export_recording(actor=member, job_id=diarized_job, fmt="docx").data))
    assert any("Bob:" in p.text for p in docx.paragraphs)
    csv = export_recordings_csv(actor=member, job_ids=[diarized_job]).data.decode("utf-8-sig")
    assert ",Alice Smith," in csv and ",Bob," in csv
    # The minutes' action-item owner and the followed action item carry the name.
    job = load_job(diarized_job)
    assert job.minutes is not None and job.minutes["action_items"][0]["owner"] == "Alice Smith"
    assert "**Alice Smith**" in (job.minutes_markdown or "")
    assert [i.owner for i in list_action_items(actor=member, job_id=diarized_job)] == ["Alice Smith"]

    # Renaming again renames what the first rename wrote; removing a name brings the label back.
    rename_speakers(actor=member, job_id=diarized_job, names={"A": "Alice"})
    assert [i.owner for i in list_action_items(actor=member, job_id=diarized_job)] == ["Alice"]
    rename_speakers(actor=member, job_id=diarized_job, names={"B": ""})
    assert [line.speaker for line in get_recording(actor=member, job_id=diarized_job).lines][:2] == ["Alice", "B"]


def test_rename_rights_and_bad_names(
    member: Actor, make_user: Callable[..., Actor], admin: Actor, diarized_job: int
) -> None:
    colleague = make_user()
    assert not get_speakers(actor=colleague, job_id=diarized_job).can_rename
    with pytest.raises(PermissionDenied):
        rename_speakers(actor=colleague, job_id=diarized_job, names={"A": "Mallory"})
    private = insert_job(member, segments=DIALOGUE, visibility="private")
    with pytest.raises(NotFound):
        rename_speakers(actor=colleague, job_id=private, names={"A": "Mallory"})
    with pytest.raises(InvalidInput, match="no speaker 'Z'"):
        rename_speakers(actor=member, job_id=diarized_job, names={"Z": "Zoe"})
    with pytest.raises(InvalidInput, match="does not look like a name"):
        rename_speakers(actor=member, job_id=diarized_job, names={"A": "![x](http://evil.example/a.png)"})
    rename_speakers(actor=admin, job_id=diarized_job, names={"A": "Alice"})  # admins may


def test_an_offline_transcript_without_labels_can_be_given_one_speaker(member: Actor, redis_server: str) -> None:
    segments = [{"start": float(i), "end": i + 1.0, "text": f"Line {i}.", "speaker": None} for i in range(4)]
    job_id = insert_job(member, segments=segments)
    view = get_speakers(actor=member, job_id=job_id)
    assert not view.diarized and [s.label for s in view.speakers] == [UNLABELED]
    rename_speakers(actor=member, job_id=job_id, names={UNLABELED: "Dana"})
    assert {line.speaker for line in get_recording(actor=member, job_id=job_id).lines} == {"Dana"}
    assert "<v Dana>Line 0." in export_recording(actor=member, job_id=job_id, fmt="vtt").data.decode()


def test_known_names_come_from_readable_recordings_and_people(
    member: Actor, make_user: Callable[..., Actor], redis_server: str
) -> None:
    other = make_user(display_name="Priya Raman")
    team = insert_job(other, segments=DIALOGUE)
    secret = insert_job(other, segments=DIALOGUE, visibility="private")
    rename_speakers(actor=other, job_id=team, names={"A": "Quentin Team"})
    rename_speakers(actor=other, job_id=secret, names={"A": "Ursula Secret"})
    names = known_speaker_names(actor=member)
    assert "Quentin Team" in names and "Priya Raman" in names
    assert "Ursula Secret" not in names
    assert "Ursula Secret" in known_speaker_names(actor=other)


def test_suggestions_from_introductions_offline_are_never_applied(member: Actor, diarized_job: int) -> None:
    suggestions = suggest_from_introductions(DIALOGUE)
    assert [(s.label, s.name) for s in suggestions] == [("A", "Alice")]
    found = suggest_speaker_names(actor=member, job_id=diarized_job)
    assert [(s.label, s.name) for s in found] == [("A", "Alice")]
    assert load_job(diarized_job).speaker_names == {}


def test_suggest_names_asks_the_chat_model_and_keeps_only_real_labels(
    fake_api: Callable[..., FakeOpenAI], member: Actor, diarized_job: int
) -> None:
    fake = fake_api()
    answer = {
        "speakers": [
            {"label": "A", "name": "Alice", "evidence": "I'm Alice"},
            {"label": "B", "name": "Bruno", "evidence": "Thanks, Alice"},
            {"label": "Q", "name": "Ghost", "evidence": "made up"},
            {"label": "B", "name": "<script>", "evidence": "bad"},
        ]
    }
    fake.chat_handler = lambda body: json.dumps(answer)
    found = suggest_speaker_names(actor=member, job_id=diarized_job)
    assert [(s.label, s.name) for s in found] == [("A", "Alice"), ("B", "Bruno")]
    [request] = fake.calls("/v1/chat/completions")
    assert "[A] Hi all, I'm Alice" in request.body["messages"][1]["content"]
    assert load_job(diarized_job).speaker_names == {}


def test_a_rename_embeds_only_the_chunks_whose_text_changed(
    member: Actor, redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two long halves: the first said only by A, the second only by B, so renaming B
    # changes only the chunks of the second half.
    segments = [
        {"start": i * 5.0, "end": i * 5.0 + 4.0, "text": f"Point {i} of the rollout.", "speaker": "AB"[i // 120]}
        for i in range(240)
    ]
    job_id = insert_job(member, segments=segments)
    document_id = index_text_document(job_id=job_id, document_type="full_transcript", index_now=True)
    assert document_id is not None
    before = document_chunks(actor=member, document_id=document_id)
    assert len(before) >= 4

    embedded: list[str] = []
    provider = get_provider()
    original = provider.embed

    def embed(texts: Any, *, usage: Any) -> list[list[float]]:
        embedded.extend(texts)
        return original(texts, usage=usage)

    monkeypatch.setattr(provider, "embed", embed)
    rename_speakers(actor=member, job_id=job_id, names={"B": "Bob"})
    index_document(document_id)  # what the queued message does in a worker

    after = document_chunks(actor=member, document_id=document_id)
    changed = [c for c in after if "Bob:" in c.content]
    assert changed and len(changed) < len(after)
    assert len(embedded) == len(changed)  # the chunks said only by A kept their vectors
    with session_scope() as session:
        status = session.scalar(select(Document.status).where(Document.id == document_id))
    assert status == "COMPLETED"


def test_bulk_zip_exports_carry_names_too(member: Actor, diarized_job: int) -> None:
    from core.meetings.exports import export_recordings_zip

    rename_speakers(actor=member, job_id=diarized_job, names={"A": "Alice"})
    archive = zipfile.ZipFile(io.BytesIO(export_recordings_zip(actor=member, job_ids=[diarized_job]).data))
    srt = next(name for name in archive.namelist() if name.endswith(".srt"))
    assert "Alice: Travel costs" in archive.read(srt).decode()
