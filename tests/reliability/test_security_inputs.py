"""Issue 13, points 5-7 and the Low list: a cap on every costly input, sign-in throttling,
and the smaller holes. Each test fails on the code before the fix.

Documents go through the real upload and indexing paths; messages go to the reliability
tests' private Redis (conftest.private_queue).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import delete, select

from core.access import sign_in_throttle
from core.access.accounts import actor_for_username, check_sign_in, record_failed_sign_in
from core.access.audit import AuditFilters, list_audit
from core.access.rbac import Actor
from core.access.sign_in_throttle import seconds_to_wait
from core.admin import list_jobs, set_role_permissions, set_user_active, unlock_user
from core.ai import get_provider, provider_status
from core.ai.base import UsageContext
from core.chat import answer_question, ask, create_chat, regenerate_last_answer
from core.chat.retrieval import retrieve
from core.documents import index_document, index_recording_documents, list_documents, upload_documents
from core.meetings import audio, get_recording_summary, submit_recording, transcribe_recording
from core.meetings.minutes import regenerate_minutes
from core.platform.config import Settings
from core.platform.db import session_scope
from core.platform.embedded import redis_url, stop_embedded_redis
from core.platform.errors import InvalidInput, PermanentError, PermissionDenied, ProviderError, QuotaExceeded
from core.platform.models import Document, Role, SignInThrottle, UsageRecord
from tests import audio_samples
from tests.admin_data import get_row
from tests.conftest import unique
from tests.doc_factory import make_pdf, make_pdf_bomb, make_xlsx_shared_string_bomb
from tests.fake_openai import restore_settings
from tests.job_factory import insert_job, make_role
from tests.reliability.processes import PrivateQueue
from tests.reliability.test_bad_input import Upload
from tests.test_auth_ui import PASSWORD, _app, _errors, _sign_in
from ui import auth_ui, session_keys

pytest_plugins = ["tests.recording_fixtures"]  # offline(**settings): QUORUM_ settings for one test


# --------------------------------------------------------------------------- 5. extraction caps


@pytest.fixture
def index_upload(
    make_user: Callable[..., Actor], private_queue: PrivateQueue, offline: Callable[..., None]
) -> Callable[[str, bytes], Document]:
    """index(filename, data) -> the document row after upload and one indexing run."""
    member = make_user()

    def index(filename: str, data: bytes) -> Document:
        [outcome] = upload_documents(actor=member, files=[Upload(filename, data)])
        assert outcome.status == "accepted" and outcome.document_id is not None, outcome.message
        index_document(outcome.document_id)
        return get_row(Document, outcome.document_id)

    return index


def test_a_pdf_bomb_stops_at_the_character_limit(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_characters=1_000_000)
    bomb = make_pdf_bomb(50)  # 9 KB that extract to 8.8 M characters
    assert len(bomb) < 16_000
    document = index_upload("bomb.pdf", bomb)
    assert document.status == "FAILED" and document.chunks_total == 0
    assert document.error == (
        "bomb.pdf holds more than 1,000,000 characters of text, the most Quorum indexes from one document "
        "(QUORUM_MAX_DOCUMENT_CHARACTERS). Split it into smaller files."
    )


def test_an_xlsx_shared_string_bomb_stops_at_the_character_limit(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_characters=1_000_000)
    document = index_upload("numbers.xlsx", make_xlsx_shared_string_bomb())  # 200 KB, 6.5 G characters
    assert document.status == "FAILED"
    assert document.error is not None and document.error.startswith(
        "numbers.xlsx holds more than 1,000,000 characters of text"
    )


def test_too_many_pages_are_refused_before_reading_them(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_pages=3)
    document = index_upload("book.pdf", make_pdf([f"Chapter {n} of the handbook." for n in range(4)]))
    assert document.status == "FAILED"
    assert document.error == (
        "book.pdf has 4 pages; Quorum indexes documents of up to 3 pages (QUORUM_MAX_DOCUMENT_PAGES). "
        "Split it into smaller files."
    )
    assert index_upload("leaflet.pdf", make_pdf(["One page", "Two", "Three"])).status == "COMPLETED"


def test_too_many_chunks_are_refused_before_any_embedding(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(max_document_chunks=3, chunk_size_tokens=50, chunk_overlap_tokens=5)
    text = " ".join(f"Paragraph {n} talks about the quarterly roadmap and its budget." for n in range(200))
    document = index_upload("long-notes.txt", text.encode())
    assert document.status == "FAILED" and document.chunks_done == 0
    assert document.error is not None
    assert document.error.startswith("long-notes.txt would make ")
    assert document.error.endswith(
        "search chunks, more than the 3 Quorum indexes from one document (QUORUM_MAX_DOCUMENT_CHUNKS). "
        "Split it into smaller files."
    )


def test_reading_is_stopped_at_the_deadline(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    # 2,000 pages of ~176k characters each: about half an hour of parsing on any machine.
    offline(extraction_timeout_seconds=1, max_document_characters=10**10, max_document_pages=10**6)
    document = index_upload("slow.pdf", make_pdf_bomb(2000))
    assert document.status == "FAILED"
    assert document.error == (
        "slow.pdf took longer than 1 s to read and was stopped (QUORUM_EXTRACTION_TIMEOUT_SECONDS). It may be "
        "built to overload document readers; save it again from the program that made it, or split it."
    )


def test_reading_is_held_to_its_memory_cap(
    index_upload: Callable[[str, bytes], Document], offline: Callable[..., None]
) -> None:
    offline(extraction_memory_mb=16, extraction_timeout_seconds=30)
    page = b"<html><body>" + b"<div><p>word and more words</p></div>" * 40_000 + b"</body></html>"  # 1.5 MB
    document = index_upload("page.html", page)
    assert document.status == "FAILED"
    # Out of memory the reader usually reports it; if even that fails, its exit is reported; a
    # reader that spins at its cap instead (seen under load) is stopped at the deadline.
    assert document.error in (
        "page.html needs more than 16 MB of memory to read and was stopped (QUORUM_EXTRACTION_MEMORY_MB). "
        "Split it into smaller files.",
        "page.html could not be read: the document reader stopped on it (out of memory or a crash).",
        "page.html took longer than 30 s to read and was stopped (QUORUM_EXTRACTION_TIMEOUT_SECONDS). "
        "It may be built to overload document readers; save it again from the program that made it, or split it.",
    ), document.error
    # The worker process itself is untouched and reads the next document normally.
    assert index_upload("fine.html", b"<html><body><p>Quarterly plan.</p></body></html>").status == "COMPLETED"


# --------------------------------------------------------------------------- 6. recording length and disk


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spoken")
    return audio_samples.speech(folder / "speech.wav", "The budget review moves to Thursday. Dana owns the report.")


def _audio_upload(path: Path, name: str | None = None) -> Upload:
    return Upload(name or path.name, path.read_bytes())


def test_the_worker_stops_decoding_at_the_maximum_length(
    make_user: Callable[..., Actor], private_queue: PrivateQueue, offline: Callable[..., None], spoken_wav: Path
) -> None:
    """The length probed at upload may lie (an MP3 without a header is estimated from its
    bitrate); the worker decodes no further than the maximum and fails the job there."""
    offline()
    member = make_user()
    job_id = submit_recording(actor=member, file=_audio_upload(spoken_wav), filename="standup.wav").id
    offline(max_recording_hours=1 / 1200)  # 3 s, as if the probe had been fooled
    with pytest.raises(PermanentError):
        transcribe_recording(job_id)
    job = get_recording_summary(actor=member, job_id=job_id)
    assert job.status == "FAILED"
    assert job.error == (
        "The recording is at least 4 s long; recordings are limited to 3 s (QUORUM_MAX_RECORDING_HOURS). "
        "Split it and upload the parts."
    )


def test_the_worker_checks_free_disk_before_normalising(
    make_user: Callable[..., Actor],
    private_queue: PrivateQueue,
    offline: Callable[..., None],
    spoken_wav: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline()
    member = make_user()
    job_id = submit_recording(actor=member, file=_audio_upload(spoken_wav), filename="standup.wav").id
    decoded: list[Path] = []
    monkeypatch.setattr(audio.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**9, 10**9, 10**6))
    monkeypatch.setattr(audio, "_run", _recording(audio._run, decoded))
    with pytest.raises(audio.NotEnoughDisk):
        transcribe_recording(job_id)
    job = get_recording_summary(actor=member, job_id=job_id)
    assert job.status == "PENDING"  # retried later: disk may be freed meanwhile
    assert job.error is not None and job.error.startswith("Not enough free disk space to prepare the recording: ")
    assert job.error.endswith("Retrying automatically (attempt 1 of 5).")
    assert decoded == []  # nothing was normalised


def _recording(run: Callable[..., Any], calls: list[Any]) -> Callable[..., Any]:
    def recorded(args: Sequence[str], **kwargs: Any) -> Any:
        calls.append(list(args))
        return run(args, **kwargs)

    return recorded


def test_a_recording_without_a_duration_is_measured_without_decoding_it_at_upload(
    make_user: Callable[..., Actor],
    private_queue: PrivateQueue,
    offline: Callable[..., None],
    spoken_wav: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline()
    member = make_user()
    webm = audio_samples.browser_webm(tmp_path / "recording.webm", spoken_wav)
    calls: list[list[str]] = []
    monkeypatch.setattr(audio, "_run", _recording(audio._run, calls))
    job = submit_recording(actor=member, file=_audio_upload(webm), filename="Recording.webm")
    assert job.duration_seconds == pytest.approx(float(_probe_seconds(spoken_wav)), abs=0.2)
    decodes = [args for args in calls if args[0] == "ffmpeg" and "copy" not in args]
    assert decodes and all("-t" in args for args in decodes), calls  # only the first seconds are decoded
    assert all(args[args.index("-f") + 1] == "matroska" for args in calls)  # read as what its name says

    offline(max_recording_hours=1 / 1200)
    with pytest.raises(InvalidInput, match=r"^Long\.webm is at least 4 s long; recordings are limited to 3 s"):
        submit_recording(actor=member, file=_audio_upload(webm), filename="Long.webm")


def _probe_seconds(path: Path) -> str:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


# --------------------------------------------------------------------------- 7. sign-in throttle and lock-out


@pytest.fixture
def sign_in_clock(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """No waits left from earlier tests, the throttle's clock frozen (no wait runs out
    mid-test on a slow machine); yields advance(seconds) to move that clock on."""
    with session_scope() as session:
        session.execute(delete(SignInThrottle))
    now = [datetime.now(UTC)]
    monkeypatch.setattr(sign_in_throttle, "_now", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    yield advance


def _from(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """The browser signing in now connects from `address`."""
    monkeypatch.setattr(auth_ui, "current_client_address", lambda: address)


def test_a_guesser_elsewhere_does_not_keep_the_user_out(
    member: Actor, sign_in_clock: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    _from(monkeypatch, "203.0.113.9")
    for _ in range(6):  # five free failures, the sixth starts a wait
        _sign_in(_app(), member.username, "wrong-password-1")
    # The guesser must wait, and learns nothing from trying the right password now.
    at = _sign_in(_app(), member.username, PASSWORD)
    assert session_keys.ACTOR not in at.session_state
    assert _errors(at) == "Too many failed sign-in attempts. Wait 1 second before trying again."
    at = _sign_in(_app(), member.username, "wrong-password-1")
    assert _errors(at) == "Too many failed sign-in attempts. Wait 1 second before trying again."

    _from(monkeypatch, "198.51.100.7")  # the real user, at their own desk
    at = _sign_in(_app(), member.username, PASSWORD)
    assert at.session_state[session_keys.ACTOR].username == member.username
    assert check_sign_in(member.username).actor is not None  # the account is not locked


def test_waits_double_with_each_failure_up_to_the_lockout_time(
    member: Actor, sign_in_clock: Callable[[float], None]
) -> None:
    waits = []
    for _ in range(20):
        message = record_failed_sign_in(member.username, address="203.0.113.10")
        waits.append(seconds_to_wait(username=member.username, address="203.0.113.10"))
        sign_in_clock(waits[-1])  # the guesser waits each wait out
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5:16] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
    assert waits[16:] == [900] * 4  # QUORUM_LOGIN_LOCKOUT_MINUTES
    assert message == "Too many failed sign-in attempts. Wait 15 minutes before trying again."


def test_password_spraying_from_one_address_is_throttled(
    make_user: Callable[..., Actor], sign_in_clock: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [make_user() for _ in range(4)]
    for number in range(20):  # QUORUM_LOGIN_ADDRESS_MAX_FAILURES, four tries per account
        record_failed_sign_in(users[number % 4].username, address="203.0.113.11")
    assert seconds_to_wait(username=users[0].username, address="203.0.113.11") == 0
    record_failed_sign_in(unique("nobody"), address="203.0.113.11")  # names that do not exist count too
    fresh = make_user()
    assert seconds_to_wait(username=fresh.username, address="203.0.113.11") == 1
    _from(monkeypatch, "203.0.113.11")
    at = _sign_in(_app(), fresh.username, PASSWORD)
    assert session_keys.ACTOR not in at.session_state and "Wait 1 second" in _errors(at)
    assert seconds_to_wait(username=fresh.username, address="198.51.100.8") == 0


def test_failed_sign_ins_are_audited_with_their_address(
    member: Actor, sign_in_clock: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = unique("nobody")
    _from(monkeypatch, "203.0.113.12")
    _sign_in(_app(), member.username, "wrong-password-1")
    _sign_in(_app(), stranger, "wrong-password-1")
    rows = list_audit(actor=_auditor(), filters=AuditFilters(action="auth.sign_in_refused", text="203.0.113.12"))
    assert {(row.actor_username, row.details["reason"], row.details["address"]) for row in rows} == {
        (member.username, "wrong password", "203.0.113.12"),
        (stranger, "unknown username", "203.0.113.12"),
    }


def _auditor() -> Actor:
    return Actor(id=0, username="auditor", role="admin", permissions=frozenset({"view_audit_log"}))


def test_a_locked_account_keeps_its_open_sessions(
    member: Actor, sign_in_clock: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    _from(monkeypatch, "198.51.100.9")
    at = _sign_in(_app(), member.username, PASSWORD)
    assert at.session_state[session_keys.ACTOR].username == member.username
    for number in range(50):  # QUORUM_LOGIN_ACCOUNT_MAX_FAILURES, from many places
        record_failed_sign_in(member.username, address=f"192.0.2.{number}")
    assert "locked" in (check_sign_in(member.username).refusal or "")
    at.run()  # the next click in the open session
    assert at.session_state[session_keys.ACTOR].username == member.username and not at.exception
    # New password sign-ins are refused until it expires or an admin unlocks it.
    assert "locked" in _errors(_sign_in(_app(), member.username, PASSWORD))


def test_usernames_are_case_insensitive(
    make_user: Callable[..., Actor], sign_in_clock: Callable[[float], None]
) -> None:
    name = unique("Dana.Mixed")
    user = make_user(username=name)
    for typed in (name, name.lower(), name.upper()):
        at = _sign_in(_app(), typed, PASSWORD)
        assert at.session_state[session_keys.ACTOR].username == name, typed
    assert actor_for_username(name.upper()).id == user.id


# --------------------------------------------------------------------------- Low: access details


def test_transcript_and_minutes_documents_also_need_read_transcripts(
    make_user: Callable[..., Actor], offline: Callable[..., None]
) -> None:
    offline()
    owner = make_user()
    token = unique("quokka")
    segments = [{"start": 0.0, "end": 6.0, "text": f"The {token} launch moves to May, said Dana."}]
    job_id = insert_job(owner, segments=segments, minutes_markdown=f"## Summary\n\nThe {token} launch moves to May.")
    index_recording_documents(job_id)
    reader = make_user(role=make_role("read_documents", "use_chat"))
    listener = make_user(role=make_role("read_documents", "read_transcripts", "use_chat"))

    def found(actor: Actor) -> set[str]:
        listed = {d.document_type for d in list_documents(actor=actor) if d.transcription_job_id == job_id}
        searched = {c.document_type for c in retrieve(actor=actor, query=f"{token} launch") if token in c.content}
        return listed | searched

    assert found(listener) == {"full_transcript", "meeting_minutes"}
    assert found(reader) == set()  # the recording itself is closed to them, so are its documents


def test_the_job_monitor_hides_names_of_uploads_the_viewer_cannot_open(
    make_user: Callable[..., Actor], private_queue: PrivateQueue, offline: Callable[..., None]
) -> None:
    offline(max_document_pages=1)
    owner = make_user()
    [outcome] = upload_documents(
        actor=owner, files=[Upload("layoffs-2027.pdf", make_pdf(["Plan A", "Plan B"]))], visibility="private"
    )
    assert outcome.document_id is not None
    index_document(outcome.document_id)  # fails: its error names the file
    recording = insert_job(owner, text="Private talk.", visibility="private", filename="merger-call.mp3")
    monitor = make_user(role=make_role("view_jobs"))
    rows = {(row.kind, row.id): row for row in list_jobs(actor=monitor)}
    document_row, recording_row = rows[("indexing", outcome.document_id)], rows[("transcription", recording)]
    assert document_row.name == "(a document you cannot open)" and recording_row.name == "(a recording you cannot open)"
    assert document_row.error is not None and document_row.error.startswith("(a document you cannot open) has 2 pages")
    assert document_row.owner == owner.username and document_row.status == "FAILED"  # the rest is still there
    admin_rows = {(row.kind, row.id): row for row in list_jobs(actor=make_user(role="admin"))}
    assert admin_rows[("indexing", outcome.document_id)].name == "layoffs-2027.pdf"


def test_unlock_and_taking_permissions_away_are_guarded_like_role_changes(make_user: Callable[..., Actor]) -> None:
    junior = make_user(role=make_role("manage_users", "manage_roles"))
    boss = make_user(role="admin", failed_login_count=3)
    with pytest.raises(PermissionDenied, match=r"You cannot unlock .*: they hold permissions you do not hold"):
        unlock_user(actor=junior, user_id=boss.id)
    auditors = make_role("view_audit_log", "view_jobs")
    with session_scope() as session:
        role_id = session.scalar(select(Role.id).where(Role.name == auditors))
    assert role_id is not None
    with pytest.raises(PermissionDenied, match=r"You cannot change the role .*: it grants permissions you do not hold"):
        set_role_permissions(actor=junior, role_id=role_id, permissions=["view_jobs"])
    admin = make_user(role="admin")
    assert set_role_permissions(actor=admin, role_id=role_id, permissions=["view_jobs"]).permissions == {"view_jobs"}
    assert unlock_user(actor=admin, user_id=boss.id).failed_login_count == 0


def test_the_ai_service_is_named_by_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://gateway-user:s3cret@llm.example.com:8443/v1?api-key=k3y")
    restore_settings()
    try:
        status = provider_status()
        assert status.startswith("OpenAI-compatible API at llm.example.com:8443,")
        monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway-user:s3cret@127.0.0.1:9/v1?api-key=k3y")
        monkeypatch.setenv("QUORUM_OPENAI_MAX_RETRIES", "0")
        restore_settings()
        with pytest.raises(ProviderError) as raised:
            get_provider().embed(["x"], usage=UsageContext(purpose="embedding"))
        message = str(raised.value)
        assert message.startswith("Could not reach the AI service at 127.0.0.1:9 (")
        assert not {"s3cret", "k3y", "gateway-user"} & set(re.findall(r"[\w-]+", message + status))
    finally:
        monkeypatch.undo()
        restore_settings()


def test_cli_actions_are_marked_as_cli_in_the_audit_log(admin: Actor, make_user: Callable[..., Actor]) -> None:
    target = make_user()
    via_cli = actor_for_username(admin.username.upper())
    assert via_cli.via == "cli"
    set_user_active(actor=via_cli, user_id=target.id, active=False)
    [row] = list_audit(actor=admin, filters=AuditFilters(action="user.disable", target_id=str(target.id)))
    assert row.actor_username == admin.username and row.details["via"] == "cli"
    set_user_active(actor=admin, user_id=target.id, active=True)
    [row] = list_audit(actor=admin, filters=AuditFilters(action="user.enable", target_id=str(target.id)))
    assert "via" not in row.details


def test_two_data_folders_never_share_an_embedded_redis(tmp_path: Path) -> None:
    port = _free_port()
    first = Settings(data_dir=tmp_path / "first", embedded_redis_port=port)
    second = Settings(data_dir=tmp_path / "second", embedded_redis_port=port)
    try:
        first_url = redis_url(first)
        redis.Redis.from_url(first_url).rpush("dramatiq:default", "a job of the first folder")
        second_url = redis_url(second)
        assert second_url != first_url and first_url == f"redis://127.0.0.1:{port}/0"
        assert redis.Redis.from_url(second_url).llen("dramatiq:default") == 0
        assert redis_url(first) == first_url and redis_url(second) == second_url  # each finds its own again
        stop_embedded_redis(second)
        assert redis.Redis.from_url(first_url).llen("dramatiq:default") == 1  # the first one still runs
    finally:
        stop_embedded_redis(second)
        stop_embedded_redis(first)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- Low: AI spend per user


def test_a_user_over_their_ai_budget_gets_a_clear_refusal(
    make_user: Callable[..., Actor],
    private_queue: PrivateQueue,
    offline: Callable[..., None],
    spoken_wav: Path,
) -> None:
    offline(user_ai_budget_usd="0.50", user_ai_budget_days=7)
    spender, other = make_user(), make_user()
    job_id = insert_job(spender, text="The budget review moved to Thursday.")
    with session_scope() as session:
        for cost in ("0.30", "0.25"):  # two earlier calls of theirs: $0.55
            session.add(
                UsageRecord(purpose="chat", provider="openai", model="gpt-4o-mini", cost_usd=cost, user_id=spender.id)
            )
    chat = create_chat(actor=spender)
    refused = (
        r"^You have used \$0\.55 of your \$0\.50 AI budget for the last 7 days, so Quorum cannot start more AI work"
    )
    attempts: list[Callable[[], object]] = [
        lambda: answer_question(actor=spender, chat_id=chat.id, question="When is the review?"),
        lambda: regenerate_last_answer(actor=spender, chat_id=chat.id),
        lambda: ask(actor=spender, question="When is the review?"),
        lambda: regenerate_minutes(actor=spender, job_id=job_id),
        lambda: upload_documents(actor=spender, files=[Upload("notes.txt", b"Quarterly notes.")]),
        lambda: submit_recording(actor=spender, file=_audio_upload(spoken_wav), filename="standup.wav"),
    ]
    for attempt in attempts:
        with pytest.raises(QuotaExceeded, match=refused):
            attempt()
    [outcome] = upload_documents(actor=other, files=[Upload("notes.txt", f"Notes {unique('n')}.".encode())])
    assert outcome.status == "accepted"  # the budget is per user
