"""Access control against the README's role x permission table, with the real services.

1. The table under "## Roles and permissions" in README.md must agree with core.access.rbac.
2. Every service function that checks a permission (found by reading core/ for `require`
   calls, so a new one cannot be missed) is called as the seeded admin, the seeded user and a
   role holding every permission but the one the function needs; allowed or refused must
   match the table.
3. Nobody reads another user's chats or private documents and recordings through any
   service (search, chat, listing, download, export).
4. The sign-in cookie expires after settings.cookie_expiry_days, and an expired or forged
   one is refused (revocation: tests/reliability/test_security.py).
5. Uploaded files are never served with a content type a browser would run.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

import core.admin as admin_service
import core.chat as chat
import core.documents as documents
import core.meetings as meetings
from core.access import audit
from core.access.accounts import actor_from_user, hash_password
from core.access.rbac import ADMIN_ROLE, DEFAULT_ROLES, PERMISSIONS, USER_ROLE, Actor
from core.admin import analytics
from core.ai import usage
from core.chat import feedback, feedback_review
from core.chat.retrieval import explain_question, retrieve
from core.meetings import action_items, exports, minutes
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import NotFound, PermissionDenied, QuorumError
from core.platform.models import Document, MessageFeedback, Role, TranscriptionJob, User, UserSession
from core.platform.storage import get_storage
from tests.admin_data import make_chat, make_feedback, make_recording
from tests.conftest import unique
from tests.fake_openai import restore_settings
from tests.job_factory import make_role
from tests.reliability.processes import ROOT, PrivateQueue

CORE = ROOT / "core"
PASSWORD = "correct-horse-9"
SEGMENTS = [
    {"start": 0.0, "end": 4.0, "text": "We agreed to ship the release on Friday.", "speaker": "A"},
    {"start": 4.0, "end": 8.0, "text": "Dana will update the budget sheet by Monday.", "speaker": "B"},
]


# --------------------------------------------------------------------------- the README table


def readme_table() -> dict[str, dict[str, str]]:
    """permission -> {"admin": "yes"/"no", "user": ..., "what it allows": ...} from README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Roles and permissions\n", 1)
    assert len(section) == 2, 'README.md has no "## Roles and permissions" section'
    rows = [line.strip() for line in section[1].split("\n## ", 1)[0].splitlines() if line.strip().startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    header = cells[0]
    assert header == ["permission", "admin", "user", "what it allows"], header
    assert all(set(cell) <= set("-: ") for cell in cells[1]), "the second row must be the |---| separator"
    table: dict[str, dict[str, str]] = {}
    for row in cells[2:]:
        assert len(row) == len(header), row
        assert row[0] not in table, f"{row[0]} is listed twice"
        assert row[1] in ("yes", "no") and row[2] in ("yes", "no"), row
        table[row[0]] = dict(zip(header[1:], row[1:], strict=True))
    return table


TABLE = readme_table()


def granted(role: str) -> frozenset[str]:
    return frozenset(name for name, row in TABLE.items() if row[role] == "yes")


def test_the_readme_table_matches_the_code() -> None:
    assert list(TABLE) == list(PERMISSIONS), "one row per permission, in core.access.rbac.PERMISSIONS order"
    for name, row in TABLE.items():
        assert row["what it allows"] == PERMISSIONS[name], name
    for role in (ADMIN_ROLE, USER_ROLE):
        assert granted(role) == DEFAULT_ROLES[role][1], role


# --------------------------------------------------------------------------- who needs what (read from core/)


def _closure(name: str, direct: dict[str, set[frozenset[str]]], calls: dict[str, set[str]]) -> set[frozenset[str]]:
    """The requirements of `name` and of every same-module function it calls, transitively."""
    found: set[frozenset[str]] = set()
    todo, seen = [name], set()
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            found |= direct[current]
            todo += calls[current]
    return found


def _required_permissions() -> dict[str, frozenset[str]]:
    """ "package.function" (core.<package> names it) -> the permissions (any one suffices) its
    `require` calls need, following calls to other functions of the same module. Public
    functions only."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
        direct: dict[str, set[frozenset[str]]] = {name: set() for name in functions}
        calls: dict[str, set[str]] = {name: set() for name in functions}
        for name, node in functions.items():
            for call in ast.walk(node):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                    continue
                callee = call.func.id
                literals = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if callee in ("require", "_require_any") and literals:
                    direct[name].add(frozenset(literals))
                elif callee in functions:
                    calls[name].add(callee)
        for name in functions:
            if not name.startswith("_") and (requirement := _closure(name, direct, calls)):
                key = f"{path.parent.name if path.parent != CORE else path.stem}.{name}"
                assert len(requirement) == 1, f"{key} checks several permissions: {requirement}"
                assert key not in found, f"{key} is defined twice in its package"
                found[key] = next(iter(requirement))
    return found


# --------------------------------------------------------------------------- a small world


@dataclass
class World:
    admin: Actor
    user: Actor
    other: Actor  # a colleague (role user) who owns the team document and recording below
    user_role_id: int
    team_document: int
    team_token: str
    team_job: int
    recording_bytes: bytes
    custom: dict[frozenset[str], Actor] = field(default_factory=dict)

    def without(self, permissions: frozenset[str]) -> Actor:
        """A real user whose role grants every permission except `permissions`."""
        if permissions not in self.custom:
            role = make_role(*(set(PERMISSIONS) - permissions))
            self.custom[permissions] = _user(role)
        return self.custom[permissions]


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)  # bcrypt once: the walk makes dozens of users


def _user(role: str) -> Actor:
    """A new active user with `role` and the password PASSWORD."""
    name = unique("acc")
    with session_scope() as session:
        role_id = session.scalar(select(Role.id).where(Role.name == role))
        user = User(username=name, email=f"{name}@example.com", password_hash=_password_hash(), role_id=role_id)
        session.add(user)
        session.flush()
        return actor_from_user(session, user)


def _upload(name: str, data: bytes) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name  # type: ignore[attr-defined]
    stream.size = len(data)  # type: ignore[attr-defined]
    return stream


def _stored_recording(owner: Actor, data: bytes, **fields: Any) -> int:
    stored = get_storage().put(io.BytesIO(data), kind="recordings", suffix=".mp3")
    values: dict[str, Any] = {
        "status": "COMPLETED",
        "visibility": "team",
        "content_type": "audio/mpeg",
        "size_bytes": stored.size_bytes,
        "storage_key": stored.key,
        "transcript_segments": SEGMENTS,
        "transcript_text": " ".join(str(s["text"]) for s in SEGMENTS),
        "minutes_markdown": "# Decisions\n\n- Ship the release on Friday.\n",
        "duration_seconds": 8.0,
        **fields,
    }
    return make_recording(owner.id, **values)


def _indexed_document(owner: Actor, folder: Path, text: str, *, visibility: str = "team") -> int:
    """Uploaded through the CLI's path (indexed in this process: no queue, no worker)."""
    path = folder / f"{unique('notes')}.txt"
    path.write_text(text, encoding="utf-8")
    [result] = documents.ingest_paths(actor=owner, paths=[path], visibility=visibility, wait=True)
    assert result.status == "COMPLETED" and result.outcome.document_id is not None, result
    return result.outcome.document_id


@pytest.fixture(scope="module")
def recording_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests import audio_samples

    folder = tmp_path_factory.mktemp("access-audio")
    wav = audio_samples.speech(folder / "s.wav", "The release ships on Friday.")
    return audio_samples.convert(wav, folder / "s.mp3", "-b:a", "32k").read_bytes()


@pytest.fixture(scope="module")
def world(database: str, recording_bytes: bytes, tmp_path_factory: pytest.TempPathFactory) -> World:
    other = _user(USER_ROLE)
    token = unique("teamdoc")
    with session_scope() as session:
        user_role_id = session.scalar(select(Role.id).where(Role.name == USER_ROLE))
    assert user_role_id is not None
    folder = tmp_path_factory.mktemp("access-docs")
    return World(
        admin=_user(ADMIN_ROLE),
        user=_user(USER_ROLE),
        other=other,
        user_role_id=user_role_id,
        team_document=_indexed_document(other, folder, f"The {token} handbook explains the travel policy."),
        team_token=token,
        team_job=_stored_recording(other, recording_bytes),
        recording_bytes=recording_bytes,
    )


# --------------------------------------------------------------------------- the walk


Call = Callable[[Actor, World], object]


@dataclass(frozen=True)
class Probe:
    """One service function called as `actor`: returns when allowed, raises when refused.

    `needs`: the permissions of which any one allows it. `implied_by`: permissions that
    allow it too by design (holders of delete_documents see every document and recording).
    `denied`: how a refusal shows: PermissionDenied, or NotFound where what the actor may
    not see is reported as missing.
    """

    service: str
    needs: frozenset[str]
    call: Call
    implied_by: frozenset[str] = frozenset()
    denied: type[QuorumError] = PermissionDenied


def _fresh_user(world: World) -> int:
    return _user(USER_ROLE).id


def _fresh_role(world: World) -> int:
    name = make_role("use_chat")
    with session_scope() as session:
        role_id = session.scalar(select(Role.id).where(Role.name == name))
    assert role_id is not None
    return role_id


def _own_answer(actor: Actor) -> tuple[int, int]:
    chat_id, [answer] = make_chat(actor.id, [("What ships on Friday?", "The release ships on Friday.")])
    return chat_id, answer


def _colleague_document(world: World, **fields: Any) -> int:
    from tests.admin_data import make_document

    return make_document(world.other.id, visibility="team", **fields)


def _colleague_job(world: World, **fields: Any) -> int:
    return _stored_recording(world.other, world.recording_bytes, **fields)


def _seen(found: bool, what: str) -> None:
    if not found:
        raise NotFound(f"{what} is not visible")


def _submit_and_remove(actor: Actor, world: World) -> None:
    job = meetings.submit_recording(actor=actor, file=io.BytesIO(world.recording_bytes), filename="call.mp3")
    meetings.delete_recording(actor=actor, job_id=job.id)  # nothing left for a worker to run


READ_ALL = frozenset({"delete_documents"})  # core.meetings.recording_access.SEE_ALL_PRIVATE


def _probes() -> list[Probe]:
    quiet = audit.AuditFilters(action=unique("none"), limit=5)
    few = feedback_review.FeedbackFilters(limit=5)
    shared = {"implied_by": READ_ALL, "denied": NotFound}  # a colleague's team items: refusal is "not found"
    # (service, the permission(s) it needs, a call that returns when allowed, options)
    # fmt: off
    table: list[tuple[str, str | tuple[str, ...], Call, dict[str, Any]]] = [
        # Users and roles.
        ("admin.list_users", "manage_users", lambda a, w: admin_service.list_users(actor=a), {}),
        ("admin.create_user", "manage_users", lambda a, w: admin_service.create_user(
            actor=a, username=unique("new"), email=f"{unique('new')}@example.com", password=PASSWORD,
            role_id=w.user_role_id), {}),
        ("admin.change_user_role", "manage_users", lambda a, w: admin_service.change_user_role(
            actor=a, user_id=_fresh_user(w), role_id=w.user_role_id), {}),
        ("admin.set_user_active", "manage_users", lambda a, w: admin_service.set_user_active(
            actor=a, user_id=_fresh_user(w), active=False), {}),
        ("admin.reset_password", "manage_users",
            lambda a, w: admin_service.reset_password(actor=a, user_id=_fresh_user(w)), {}),
        ("admin.unlock_user", "manage_users",
            lambda a, w: admin_service.unlock_user(actor=a, user_id=_fresh_user(w)), {}),
        ("admin.delete_user", "delete_users",
            lambda a, w: admin_service.delete_user(actor=a, user_id=_fresh_user(w)), {}),
        ("admin.list_roles", ("manage_roles", "manage_users"), lambda a, w: admin_service.list_roles(actor=a), {}),
        ("admin.create_role", "manage_roles", lambda a, w: admin_service.create_role(
            actor=a, name=unique("role"), permissions=["use_chat"]), {}),
        ("admin.rename_role", "manage_roles", lambda a, w: admin_service.rename_role(
            actor=a, role_id=_fresh_role(w), name=unique("renamed")), {}),
        ("admin.delete_role", "manage_roles",
            lambda a, w: admin_service.delete_role(actor=a, role_id=_fresh_role(w)), {}),
        ("admin.set_role_permissions", "manage_roles", lambda a, w: admin_service.set_role_permissions(
            actor=a, role_id=_fresh_role(w), permissions=["use_chat", "read_documents"]), {}),
        ("admin.set_permission_matrix", "manage_roles", lambda a, w: admin_service.set_permission_matrix(
            actor=a, matrix={_fresh_role(w): ["read_documents"]}), {}),
        # Jobs, usage, audit log, feedback review.
        ("admin.list_jobs", "view_jobs", lambda a, w: admin_service.list_jobs(actor=a, limit=5), {}),
        ("admin.job_queue_depths", "view_jobs", lambda a, w: admin_service.job_queue_depths(actor=a), {}),
        ("admin.retry_job", "view_jobs", lambda a, w: admin_service.retry_job(
            actor=a, kind="indexing", job_id=_colleague_document(w, status="FAILED", error="boom")), {}),
        ("admin.usage_analytics", "view_jobs", lambda a, w: analytics.usage_analytics(actor=a), {}),
        ("ai.summarize_usage", "view_jobs", lambda a, w: usage.summarize_usage(actor=a), {}),
        ("chat.explain_question", "view_jobs", lambda a, w: _seen(
            "Execution Time" in explain_question(actor=a, query=w.team_token), "search plan"), {}),
        ("access.list_audit", "view_audit_log", lambda a, w: audit.list_audit(actor=a, filters=quiet), {}),
        ("access.audit_actions", "view_audit_log", lambda a, w: audit.audit_actions(actor=a), {}),
        ("access.export_audit_csv", "view_audit_log", lambda a, w: audit.export_audit_csv(actor=a, filters=quiet), {}),
        ("access.export_audit_xlsx", "view_audit_log",
            lambda a, w: audit.export_audit_xlsx(actor=a, filters=quiet), {}),
        ("chat.list_feedback", "review_feedback",
            lambda a, w: feedback_review.list_feedback(actor=a, filters=few), {}),
        ("chat.feedback_raters", "review_feedback",
            lambda a, w: feedback_review.feedback_raters(actor=a), {}),
        ("chat.review_feedback", "review_feedback", lambda a, w: feedback_review.review_feedback(
            actor=a, feedback_id=make_feedback(_own_answer(w.other)[1], w.other.id), status="rejected"), {}),
        ("chat.export_feedback_csv", "review_feedback",
            lambda a, w: feedback_review.export_feedback_csv(actor=a, filters=few), {}),
        ("chat.export_feedback_xlsx", "review_feedback",
            lambda a, w: feedback_review.export_feedback_xlsx(actor=a, filters=few), {}),
        # Chats and ratings of one's own answers.
        ("chat.create_chat", "use_chat", lambda a, w: chat.create_chat(actor=a), {}),
        ("chat.list_chats", "use_chat", lambda a, w: chat.list_chats(actor=a), {}),
        ("chat.rename_chat", "use_chat",
            lambda a, w: chat.rename_chat(actor=a, chat_id=_own_answer(a)[0], title="Renamed"), {}),
        ("chat.delete_chat", "use_chat", lambda a, w: chat.delete_chat(actor=a, chat_id=_own_answer(a)[0]), {}),
        ("chat.list_messages", "use_chat", lambda a, w: chat.list_messages(actor=a, chat_id=_own_answer(a)[0]), {}),
        ("chat.answer_question", "use_chat", lambda a, w: chat.answer_question(
            actor=a, chat_id=_own_answer(a)[0], question="And the budget?"), {}),
        ("chat.regenerate_last_answer", "use_chat",
            lambda a, w: chat.regenerate_last_answer(actor=a, chat_id=_own_answer(a)[0]), {}),
        ("chat.ask", "use_chat", lambda a, w: chat.ask(actor=a, question=f"What does the {w.team_token} say?"), {}),
        ("chat.rate_message", "use_chat",
            lambda a, w: feedback.rate_message(actor=a, message_id=_own_answer(a)[1], rating="good"), {}),
        ("chat.clear_rating", "use_chat",
            lambda a, w: feedback.clear_rating(actor=a, message_id=_own_answer(a)[1]), {}),
        # Documents: adding, and changing a colleague's.
        ("documents.upload_documents", "ingest_documents", lambda a, w: documents.upload_documents(
            actor=a, files=[_upload("memo.txt", unique("memo").encode())]), {}),
        ("documents.ingest_paths", "ingest_documents",
            lambda a, w: documents.ingest_paths(actor=a, paths=[ROOT / "README.md"], wait=False), {}),
        ("documents.delete_documents", "delete_documents", lambda a, w: _seen(
            documents.delete_documents(actor=a, document_ids=[_colleague_document(w)]) == 1, "document"), {}),
        ("documents.reindex_document", "delete_documents", lambda a, w: documents.reindex_document(
            actor=a, document_id=_colleague_document(w, status="COMPLETED")), {}),
        ("documents.retry_document", "delete_documents", lambda a, w: documents.retry_document(
            actor=a, document_id=_colleague_document(w, status="FAILED")), {}),
        # A colleague's team document and recording: listing, reading, searching.
        ("documents.list_documents", "read_documents", lambda a, w: _seen(
            w.team_document in {d.id for d in documents.list_documents(actor=a)}, "team document"), shared),
        ("documents.get_document", "read_documents",
            lambda a, w: documents.get_document(actor=a, document_id=w.team_document), shared),
        ("documents.document_chunks", "read_documents", lambda a, w: _seen(
            bool(documents.document_chunks(actor=a, document_id=w.team_document)), "chunks"), shared),
        ("documents.download_document", "read_documents",
            lambda a, w: documents.download_document(actor=a, document_id=w.team_document), shared),
        ("documents.list_uploaders", "read_documents",
            lambda a, w: _seen(w.other.id in dict(documents.list_uploaders(actor=a)), "uploader"), shared),
        ("chat.retrieve", "read_documents", lambda a, w: _seen(
            w.team_document in {c.document_id for c in retrieve(actor=a, query=w.team_token)}, "search hit"), shared),
        ("meetings.list_recordings", "read_transcripts", lambda a, w: _seen(
            w.team_job in {j.id for j in meetings.list_recordings(actor=a)}, "team recording"), shared),
        ("meetings.get_recording", "read_transcripts",
            lambda a, w: meetings.get_recording(actor=a, job_id=w.team_job), shared),
        ("meetings.get_recording_summary", "read_transcripts",
            lambda a, w: meetings.get_recording_summary(actor=a, job_id=w.team_job), shared),
        ("meetings.read_recording", "read_transcripts",
            lambda a, w: meetings.read_recording(actor=a, job_id=w.team_job), shared),
        ("meetings.get_minutes", "read_transcripts",
            lambda a, w: minutes.get_minutes(actor=a, job_id=w.team_job), shared),
        # Recordings: adding, and changing a colleague's; exports.
        ("meetings.submit_recording", "transcribe_audio", _submit_and_remove, {}),
        ("meetings.retry_recording", ("view_jobs", "delete_documents"), lambda a, w: meetings.retry_recording(
            actor=a, job_id=_colleague_job(w, status="FAILED", error="boom")), {}),
        ("meetings.delete_recording", "delete_documents",
            lambda a, w: meetings.delete_recording(actor=a, job_id=_colleague_job(w)), {}),
        ("meetings.update_minutes", "delete_documents", lambda a, w: minutes.update_minutes(
            actor=a, job_id=_colleague_job(w), markdown="# Edited\n\nShip it."), {}),
        ("meetings.regenerate_minutes", "delete_documents",
            lambda a, w: minutes.regenerate_minutes(actor=a, job_id=_colleague_job(w)), {}),
        ("meetings.export_recording", "export_transcripts",
            lambda a, w: exports.export_recording(actor=a, job_id=w.team_job, fmt="txt"), {}),
        ("meetings.export_transcript", "export_transcripts",
            lambda a, w: exports.export_transcript(actor=a, job_id=w.team_job, fmt="srt"), {}),
        ("meetings.export_minutes", "export_transcripts",
            lambda a, w: exports.export_minutes(actor=a, job_id=w.team_job, fmt="md"), {}),
        ("meetings.export_recordings_csv", "export_transcripts",
            lambda a, w: exports.export_recordings_csv(actor=a, job_ids=[w.team_job]), {}),
        ("meetings.export_recordings_zip", "export_transcripts",
            lambda a, w: exports.export_recordings_zip(actor=a, job_ids=[w.team_job]), {}),
        ("meetings.export_action_items", "export_transcripts", lambda a, w: action_items.export_action_items(
            actor=a, items=action_items.list_action_items(actor=a), fmt="csv"), {}),
    ]
    # fmt: on
    return [
        Probe(service, frozenset((needs,) if isinstance(needs, str) else needs), call, **options)
        for service, needs, call, options in table
    ]


PROBES = _probes()


def test_the_walk_covers_every_permission_and_every_function_that_checks_one() -> None:
    probed = {probe.service: probe.needs for probe in PROBES}
    required = _required_permissions()
    missing = sorted(set(required) - set(probed))
    assert not missing, f"service functions that check a permission but are not walked: {missing}"
    for service, needs in required.items():
        assert probed[service] == needs, f"{service} checks {sorted(needs)}, the walk expects {sorted(probed[service])}"
    assert {name for probe in PROBES for name in probe.needs} == set(PERMISSIONS)
    assert len(required) >= 40  # the scan itself works


def _outcome(probe: Probe, actor: Actor, world: World) -> str:
    try:
        probe.call(actor, world)
    except probe.denied:
        return "denied"
    return "allowed"


@pytest.mark.parametrize("probe", PROBES, ids=[probe.service for probe in PROBES])
def test_each_role_is_allowed_exactly_what_the_readme_says(
    probe: Probe, world: World, private_queue: PrivateQueue, offline_provider: Any
) -> None:
    for role, actor in ((ADMIN_ROLE, world.admin), (USER_ROLE, world.user)):
        assert actor.permissions == granted(role), f"the seeded {role} role differs from the README"
        expected = "allowed" if (probe.needs | probe.implied_by) & granted(role) else "denied"
        assert _outcome(probe, actor, world) == expected, f"{probe.service} as {role}"
    # Everything but what the table says it needs: refused, so that permission is the check.
    assert _outcome(probe, world.without(probe.needs | probe.implied_by), world) == "denied", probe.service


# --------------------------------------------------------------------------- one user's private things


def test_nobody_reads_another_users_chats_or_private_documents_and_recordings(
    private_queue: PrivateQueue, recording_bytes: bytes, offline_provider: Any, tmp_path: Path
) -> None:
    owner, colleague, admin = _user(USER_ROLE), _user(USER_ROLE), _user(ADMIN_ROLE)
    token = unique("secret")
    document_id = _indexed_document(
        owner, tmp_path, f"The {token} salary review lists every bonus.", visibility="private"
    )
    job_id = _stored_recording(owner, recording_bytes, visibility="private")
    chat_id, [answer_id] = make_chat(owner.id, [(f"What about {token}?", f"The {token} review is private.")])
    make_feedback(answer_id, owner.id, rating="bad", correction=f"{token} is confidential")

    def document_reads(actor: Actor) -> dict[str, Callable[[], object]]:
        return {
            "list": lambda: _seen(document_id in {d.id for d in documents.list_documents(actor=actor)}, "listing"),
            "get": lambda: documents.get_document(actor=actor, document_id=document_id),
            "chunks": lambda: documents.document_chunks(actor=actor, document_id=document_id),
            "download": lambda: documents.download_document(actor=actor, document_id=document_id),
            "search": lambda: _seen(document_id in {c.document_id for c in retrieve(actor=actor, query=token)}, "hit"),
            "answer": lambda: _seen(
                document_id in {s.document_id for s in chat.ask(actor=actor, question=f"{token} salary").sources},
                "cited",
            ),
        }

    def recording_reads(actor: Actor) -> dict[str, Callable[[], object]]:
        return {
            "list": lambda: _seen(job_id in {j.id for j in meetings.list_recordings(actor=actor)}, "listing"),
            "detail": lambda: meetings.get_recording(actor=actor, job_id=job_id),
            "audio": lambda: meetings.read_recording(actor=actor, job_id=job_id),
            "minutes": lambda: minutes.get_minutes(actor=actor, job_id=job_id),
            "export": lambda: exports.export_recording(actor=actor, job_id=job_id, fmt="json"),
            "export csv": lambda: exports.export_recordings_csv(actor=actor, job_ids=[job_id]),
            "export zip": lambda: exports.export_recordings_zip(actor=actor, job_ids=[job_id]),
        }

    def chat_reads(actor: Actor) -> dict[str, Callable[[], object]]:
        return {
            "list": lambda: _seen(chat_id in {c.id for c in chat.list_chats(actor=actor)}, "listing"),
            "messages": lambda: chat.list_messages(actor=actor, chat_id=chat_id),
            "rate": lambda: feedback.rate_message(actor=actor, message_id=answer_id, rating="good"),
            "rename": lambda: chat.rename_chat(actor=actor, chat_id=chat_id, title="mine now"),
            "ask in it": lambda: chat.answer_question(actor=actor, chat_id=chat_id, question="Tell me more"),
            "regenerate": lambda: chat.regenerate_last_answer(actor=actor, chat_id=chat_id),
            "delete": lambda: chat.delete_chat(actor=actor, chat_id=chat_id),
        }

    def refused(reads: dict[str, Callable[[], object]]) -> list[str]:
        names = []
        for name, read in reads.items():
            try:
                read()
            except NotFound:
                names.append(name)
        return names

    # The colleague, with the very same role, reaches none of it; nor do admins reach chats.
    assert refused(document_reads(colleague)) == list(document_reads(colleague))
    assert refused(recording_reads(colleague)) == list(recording_reads(colleague))
    assert refused(chat_reads(colleague)) == list(chat_reads(colleague))
    assert refused(chat_reads(admin)) == list(chat_reads(admin))
    feedback.clear_rating(actor=colleague, message_id=answer_id)  # only ever clears one's own rating
    with session_scope() as session:
        kept = session.scalars(select(MessageFeedback.correction).where(MessageFeedback.message_id == answer_id)).all()
    assert kept == [f"{token} is confidential"]
    # ...while the owner reaches all of it (so the refusals above are about who asks).
    read_by_owner = {**document_reads(owner), **recording_reads(owner)}
    assert refused(read_by_owner) == []
    assert refused({k: v for k, v in chat_reads(owner).items() if k != "delete"}) == []


# --------------------------------------------------------------------------- sign-in sessions


class _Cookies:
    """What a browser sends with its requests: here, just the cookies given."""

    def __init__(self, cookies: dict[str, str]) -> None:
        self.cookies = cookies
        self.headers: list[tuple[str, str]] = []
        self.remote_ip = "127.0.0.1"


@pytest.fixture
def short_sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    monkeypatch.setenv("QUORUM_COOKIE_EXPIRY_DAYS", "0.25")
    restore_settings()
    yield 0.25
    monkeypatch.undo()
    restore_settings()


def _app() -> Any:
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30)


def _visit_with(monkeypatch: pytest.MonkeyPatch, cookies: dict[str, str]) -> Any:
    """A fresh session of the real app whose browser sends `cookies`."""
    import streamlit.runtime.context as context

    monkeypatch.setattr(context, "_get_client_context", lambda: _Cookies(cookies))
    return _app().run()


def _signed_in(app: Any) -> bool:
    from ui import session_keys

    return bool(app.session_state[session_keys.ACTOR]) if session_keys.ACTOR in app.session_state else False


def test_the_sign_in_cookie_expires_as_configured_and_expired_or_forged_ones_are_refused(
    short_sessions: float, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.auth_ui

    member = _user(USER_ROLE)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(ui.auth_ui, "_cookie_component", lambda **call: sent.append(call))
    app = _app().run()
    inputs = {field.label: field for field in app.text_input}
    inputs["Username"].input(member.username)
    inputs["Password"].input(PASSWORD)
    app.button[0].click().run()
    assert _signed_in(app)

    settings = get_settings()
    [stored] = [call for call in sent if call["method"] == "set"]
    name, token = stored["cookie"], stored["value"]
    assert name == settings.cookie_name
    lifetime = timedelta(days=short_sessions)
    expected_end = datetime.now(UTC) + lifetime
    assert abs(datetime.fromisoformat(stored["options"]["expires"]) - expected_end) < timedelta(minutes=5)
    with session_scope() as session:
        row = session.scalar(select(UserSession).where(UserSession.user_id == member.id))
        assert row is not None and abs(row.expires_at - expected_end) < timedelta(minutes=5)

    # Coming back with the cookie signs in without a password...
    assert _signed_in(_visit_with(monkeypatch, {name: token}))

    # ...but not with one signed by anyone else, nor once it has expired.
    user_id, random_part, _ = token.split(".")
    forged = f"{user_id}.{random_part}.{'0' * 64}"
    other_user = f"{int(user_id) + 1}.{random_part}.{token.split('.')[2]}"
    for refused in (forged, other_user):
        app = _visit_with(monkeypatch, {name: refused})
        assert not _signed_in(app)
        assert "Username" in [field.label for field in app.text_input]
    with session_scope() as session:
        session.execute(
            update(UserSession)
            .where(UserSession.user_id == member.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    app = _visit_with(monkeypatch, {name: token})
    assert not _signed_in(app)
    assert "Username" in [field.label for field in app.text_input]


# --------------------------------------------------------------------------- inert downloads


ACTIVE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/javascript")


def test_uploads_are_never_served_with_an_active_content_type(
    private_queue: PrivateQueue, recording_bytes: bytes, make_user: Callable[..., Actor]
) -> None:
    member = make_user()
    token = unique("inert")
    uploads = {
        "page.html": f"<html><body><h1>{token}</h1><script>alert(1)</script></body></html>",
        "page.htm": f"<p>{token} <img src=x onerror=alert(1)></p>",
        "notes.md": f"# {token}\n\n<script>alert(1)</script>",
        "data.csv": f"name,notes\nann,{token}\n",
        "plain.txt": f"{token} <svg onload=alert(1)>",
    }
    outcomes = documents.upload_documents(
        actor=member, files=[_upload(name, text.encode()) for name, text in uploads.items()]
    )
    served = {}
    for outcome in outcomes:
        assert outcome.document_id is not None, outcome.message
        served[outcome.filename] = documents.download_document(actor=member, document_id=outcome.document_id)
    assert {name: file.content_type for name, file in served.items()} == {
        "page.html": "application/octet-stream",
        "page.htm": "application/octet-stream",
        "notes.md": "text/markdown; charset=utf-8",
        "data.csv": "text/csv; charset=utf-8",
        "plain.txt": "text/plain; charset=utf-8",
    }
    assert all(file.data == uploads[name].encode() for name, file in served.items())

    # Whatever type a row came to carry (an older version, a hand edit), it is not served as such.
    document_id = outcomes[0].document_id
    job_id = _stored_recording(member, recording_bytes, visibility="private")
    assert meetings.read_recording(actor=member, job_id=job_id).content_type == "audio/mpeg"
    for active in ACTIVE_TYPES:
        with session_scope() as session:
            session.execute(update(Document).where(Document.id == document_id).values(content_type=active))
            session.execute(update(TranscriptionJob).where(TranscriptionJob.id == job_id).values(content_type=active))
        assert documents.download_document(actor=member, document_id=document_id or 0).content_type == (
            "application/octet-stream"
        ), active
        assert meetings.read_recording(actor=member, job_id=job_id).content_type == "application/octet-stream"


def test_production_refuses_short_cookie_keys_and_a_process_will_not_start_on_defaults() -> None:
    """Extends tests/test_config_and_rbac.py: a key under 32 characters is refused too, and a
    real process started in production with the shipped defaults stops with the message."""
    import subprocess
    import sys

    from pydantic import ValidationError

    from core.platform.config import Settings

    with pytest.raises(ValidationError, match="32 random bytes"):
        Settings(environment="production", cookie_key="k" * 31, admin_password="Vq8-lantern-orbit")
    env = {
        "PATH": "/usr/bin:/bin",
        "QUORUM_ENVIRONMENT": "production",
        "QUORUM_DATA_DIR": str(ROOT / ".quorum-never-created"),
        "HOME": str(Path.home()),
    }
    result = subprocess.run(
        [sys.executable, "-c", "from core.platform.config import get_settings; get_settings()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "production needs QUORUM_COOKIE_KEY: a random secret of at least 32 bytes" in result.stderr
    assert not (ROOT / ".quorum-never-created").exists()
    assert re.search(r"ValidationError", result.stderr)
