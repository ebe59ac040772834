"""core.admin against the real database: permissions, lock-out protection, audit, deletion rule."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import core.admin as svc
from core.access.accounts import check_sign_in, verify_password
from core.access.rbac import ADMIN_ROLE, PERMISSIONS, USER_ROLE, Actor
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.platform.models import (
    AuditLog,
    Chat,
    ChatMessage,
    Document,
    MessageFeedback,
    Role,
    TranscriptionJob,
    UsageRecord,
    User,
)
from core.platform.storage import get_storage
from tests.admin_data import (
    audit_actions_for,
    get_row,
    make_chat,
    make_document,
    make_feedback,
    make_recording,
    only_manager,
)
from tests.conftest import unique

ALL = frozenset(PERMISSIONS)


def _without(actor: Actor, permission: str) -> Actor:
    """The same user holding every permission except one."""
    return Actor(id=actor.id, username=actor.username, role="test", permissions=ALL - {permission})


def _role_id(name: str) -> int:
    with session_scope() as session:
        role_id = session.scalar(select(Role.id).where(Role.name == name))
        assert role_id is not None
        return role_id


def _audit_count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count(AuditLog.id))) or 0)


# ------------------------------------------------------------------ each action needs its permission


def _actions(admin_actor: Actor, target: Actor) -> list[tuple[str, Callable[[Actor], Any]]]:
    user_role = _role_id(USER_ROLE)
    spare_role = svc.create_role(actor=admin_actor, name=unique("spare"), permissions={"use_chat"})
    return [
        ("manage_users", lambda a: svc.list_users(actor=a)),
        (
            "manage_users",
            lambda a: svc.create_user(
                actor=a,
                username=unique("new"),
                email=f"{unique('e')}@example.com",
                password="pass-word-1",
                role_id=user_role,
            ),
        ),
        ("manage_users", lambda a: svc.change_user_role(actor=a, user_id=target.id, role_id=spare_role.id)),
        ("manage_users", lambda a: svc.set_user_active(actor=a, user_id=target.id, active=False)),
        ("manage_users", lambda a: svc.reset_password(actor=a, user_id=target.id)),
        ("manage_users", lambda a: svc.unlock_user(actor=a, user_id=target.id)),
        ("manage_roles", lambda a: svc.create_role(actor=a, name=unique("role"))),
        ("manage_roles", lambda a: svc.rename_role(actor=a, role_id=spare_role.id, name=unique("renamed"))),
        (
            "manage_roles",
            lambda a: svc.set_role_permissions(
                actor=a, role_id=spare_role.id, permissions={"use_chat", "read_documents"}
            ),
        ),
        ("view_jobs", lambda a: svc.list_jobs(actor=a)),
        ("view_jobs", lambda a: svc.job_queue_depths(actor=a)),
        ("delete_users", lambda a: svc.delete_user(actor=a, user_id=target.id)),
    ]


def test_each_admin_action_is_refused_without_its_permission_and_allowed_with_it(
    admin: Actor, make_user: Callable[..., Actor], redis_server: str
) -> None:
    target = make_user(USER_ROLE)
    actions = _actions(admin, target)
    for permission, action in actions:
        before = _audit_count()
        with pytest.raises(PermissionDenied):
            action(_without(admin, permission))
        assert _audit_count() == before, f"a refused {permission} action wrote an audit row"
    for _permission, action in actions:
        action(admin)  # allowed with every permission, including this one
    assert get_row(User, target.id) is None  # the last action deleted the target


def test_a_member_can_do_none_of_it(member: Actor, admin: Actor) -> None:
    for call in (
        lambda: svc.list_users(actor=member),
        lambda: svc.list_roles(actor=member),
        lambda: svc.create_role(actor=member, name=unique("r")),
        lambda: svc.delete_user(actor=member, user_id=admin.id),
        lambda: svc.list_jobs(actor=member),
        lambda: svc.retry_job(actor=member, kind="transcription", job_id=1),
    ):
        with pytest.raises(PermissionDenied):
            call()


def test_list_roles_needs_manage_roles_or_manage_users(admin: Actor) -> None:
    only_users = Actor(id=admin.id, username=admin.username, role="x", permissions=frozenset({"manage_users"}))
    only_roles = Actor(id=admin.id, username=admin.username, role="x", permissions=frozenset({"manage_roles"}))
    assert {r.name for r in svc.list_roles(actor=only_users)} >= {ADMIN_ROLE, USER_ROLE}
    assert {r.name for r in svc.list_roles(actor=only_roles)} >= {ADMIN_ROLE, USER_ROLE}
    neither = Actor(id=admin.id, username=admin.username, role="x", permissions=ALL - {"manage_users", "manage_roles"})
    with pytest.raises(PermissionDenied):
        svc.list_roles(actor=neither)


# ------------------------------------------------------------------ users


def test_create_user_signs_in_and_is_audited(admin: Actor) -> None:
    name = unique("alice")
    created = svc.create_user(
        actor=admin,
        username=name,
        email=f"{name}@Example.com",
        password="s3cret-pass",
        role_id=_role_id(USER_ROLE),
        display_name="Alice",
    )
    assert created.username == name and created.email == f"{name}@example.com" and created.role_name == USER_ROLE
    assert check_sign_in(name).actor is not None
    assert ("user.create", admin.username) in audit_actions_for("user", created.id)
    with pytest.raises(Conflict):
        svc.create_user(
            actor=admin, username=name, email=f"x{name}@example.com", password="s3cret-pass", role_id=created.role_id
        )
    with pytest.raises(InvalidInput):
        svc.create_user(
            actor=admin, username=unique("b"), email=f"{unique('b')}@example.com", password="short", role_id=1
        )


def test_disable_enable_reset_and_unlock(admin: Actor, member: Actor) -> None:
    disabled = svc.set_user_active(actor=admin, user_id=member.id, active=False)
    assert not disabled.is_active
    assert check_sign_in(member.username).actor is None
    assert svc.set_user_active(actor=admin, user_id=member.id, active=True).is_active
    assert check_sign_in(member.username).actor is not None

    with session_scope() as session:
        user = session.get(User, member.id)
        assert user is not None
        user.failed_login_count = 3
        user.locked_until = datetime.now(UTC) + timedelta(minutes=10)
    locked = next(u for u in svc.list_users(actor=admin) if u.id == member.id)
    assert locked.locked and locked.failed_login_count == 3
    assert check_sign_in(member.username).actor is None
    unlocked = svc.unlock_user(actor=admin, user_id=member.id)
    assert not unlocked.locked and unlocked.failed_login_count == 0
    assert check_sign_in(member.username).actor is not None

    password = svc.reset_password(actor=admin, user_id=member.id)
    chosen = svc.reset_password(actor=admin, user_id=member.id, new_password="brand-new-pass-2")
    assert chosen == "brand-new-pass-2" and password != chosen
    with session_scope() as session:
        user = session.get(User, member.id)
        assert user is not None and verify_password(chosen, user.password_hash)
        assert user.password_changed_at is not None
    with pytest.raises(InvalidInput):
        svc.reset_password(actor=admin, user_id=member.id, new_password="weak")

    actions = [action for action, _ in audit_actions_for("user", member.id)]
    assert actions == [
        "user.disable",
        "user.enable",
        "user.unlock",
        "user.password_reset",
        "user.password_reset",
    ]
    with session_scope() as session:
        details = session.scalars(
            select(AuditLog.details).where(
                AuditLog.target_id == str(member.id), AuditLog.action == "user.password_reset"
            )
        ).all()
    assert all("password" not in str(value).replace("password_reset", "") for value in details)


def test_nobody_disables_or_deletes_themselves(admin: Actor, make_user: Callable[..., Actor]) -> None:
    make_user(ADMIN_ROLE)  # another admin exists, so only the self rule can refuse
    with pytest.raises(Conflict, match="your own"):
        svc.set_user_active(actor=admin, user_id=admin.id, active=False)
    with pytest.raises(Conflict, match="your own"):
        svc.delete_user(actor=admin, user_id=admin.id)
    assert get_row(User, admin.id).is_active


def test_no_privilege_escalation(admin: Actor, make_user: Callable[..., Actor]) -> None:
    helpdesk_role = svc.create_role(actor=admin, name=unique("helpdesk"), permissions={"manage_users", "use_chat"})
    helper = make_user(helpdesk_role.name)
    chat_only = svc.create_role(actor=admin, name=unique("chat"), permissions={"use_chat"})
    member = make_user(chat_only.name)
    with pytest.raises(PermissionDenied, match="do not hold"):
        svc.change_user_role(actor=helper, user_id=helper.id, role_id=_role_id(ADMIN_ROLE))
    with pytest.raises(PermissionDenied, match="do not hold"):
        svc.reset_password(actor=helper, user_id=admin.id)
    with pytest.raises(PermissionDenied):
        svc.create_role(actor=helper, name=unique("x"))
    with pytest.raises(PermissionDenied, match="do not hold"):
        svc.change_user_role(actor=helper, user_id=member.id, role_id=_role_id(USER_ROLE))
    # Users with no more permissions than the helper holds are fine to manage.
    assert not svc.set_user_active(actor=helper, user_id=member.id, active=False).is_active
    assert svc.reset_password(actor=helper, user_id=member.id, new_password="helped-again-3") == "helped-again-3"


# ------------------------------------------------------------------ lock-out protection


def test_the_last_admin_cannot_demote_themselves(admin: Actor) -> None:
    with only_manager(admin.id), pytest.raises(Conflict, match="manage users and roles"):
        svc.change_user_role(actor=admin, user_id=admin.id, role_id=_role_id(USER_ROLE))
    assert get_row(User, admin.id).role_id == _role_id(ADMIN_ROLE)


def test_the_last_admin_cannot_be_disabled_or_deleted(admin: Actor, member: Actor) -> None:
    # A session opened before its user was demoted still carries every permission: the
    # database state, not the caller's permissions, decides.
    stale = Actor(id=member.id, username=member.username, role=ADMIN_ROLE, permissions=ALL)
    with only_manager(admin.id):
        with pytest.raises(Conflict, match="manage users and roles"):
            svc.set_user_active(actor=stale, user_id=admin.id, active=False)
        with pytest.raises(Conflict, match="manage users and roles"):
            svc.delete_user(actor=stale, user_id=admin.id)
        with pytest.raises(Conflict, match="manage users and roles"):
            svc.change_user_role(actor=stale, user_id=admin.id, role_id=_role_id(USER_ROLE))
    row = get_row(User, admin.id)
    assert row is not None and row.is_active and row.role_id == _role_id(ADMIN_ROLE)
    assert audit_actions_for("user", admin.id) == []


def test_matrix_edit_cannot_take_manage_roles_from_the_only_role_that_has_it(
    admin: Actor, make_user: Callable[..., Actor]
) -> None:
    boss_role = svc.create_role(actor=admin, name=unique("boss"), permissions=ALL)
    boss = make_user(boss_role.name)
    with only_manager(boss.id):
        with pytest.raises(Conflict, match="manage users and roles"):
            svc.set_role_permissions(actor=boss, role_id=boss_role.id, permissions=ALL - {"manage_roles"})
        with pytest.raises(Conflict):
            svc.set_permission_matrix(
                actor=boss, matrix={boss_role.id: ALL - {"manage_users"}, _role_id(USER_ROLE): {"use_chat"}}
            )
    roles = {r.id: r for r in svc.list_roles(actor=admin)}
    assert roles[boss_role.id].permissions == ALL
    assert "read_documents" in roles[_role_id(USER_ROLE)].permissions  # all or nothing
    # With another manager active the same edit goes through.
    edited = svc.set_role_permissions(actor=boss, role_id=boss_role.id, permissions=ALL - {"manage_roles"})
    assert "manage_roles" not in edited.permissions
    assert audit_actions_for("role", boss_role.id)[-1] == ("role.permissions_set", boss.username)


def test_demoting_one_of_two_admins_is_allowed(admin: Actor, make_user: Callable[..., Actor]) -> None:
    other = make_user(ADMIN_ROLE)
    with only_manager(admin.id):
        pass  # only to show the fixture restores: both are active again below
    assert get_row(User, other.id).is_active
    demoted = svc.change_user_role(actor=admin, user_id=other.id, role_id=_role_id(USER_ROLE))
    assert demoted.role_name == USER_ROLE
    assert audit_actions_for("user", other.id) == [("user.role_change", admin.username)]


def test_the_admin_role_row_of_the_matrix_is_fixed(admin: Actor) -> None:
    with pytest.raises(InvalidInput, match="admin role"):
        svc.set_role_permissions(actor=admin, role_id=_role_id(ADMIN_ROLE), permissions=ALL - {"delete_users"})
    with pytest.raises(InvalidInput, match="Unknown permissions"):
        svc.set_role_permissions(actor=admin, role_id=_role_id(USER_ROLE), permissions={"fly"})


# ------------------------------------------------------------------ roles


def test_role_create_rename_delete(admin: Actor, make_user: Callable[..., Actor]) -> None:
    name = unique("analyst")
    role = svc.create_role(actor=admin, name=name, description="reads", permissions={"read_documents"})
    assert role.permissions == {"read_documents"} and role.user_count == 0 and not role.built_in
    with pytest.raises(Conflict):
        svc.create_role(actor=admin, name=name.upper())
    renamed = svc.rename_role(actor=admin, role_id=role.id, name=name + "x", description="reads more")
    assert renamed.name == name + "x" and renamed.description == "reads more"

    holder = make_user(renamed.name)
    with pytest.raises(Conflict, match="still assigned to 1 user"):
        svc.delete_role(actor=admin, role_id=role.id)
    svc.change_user_role(actor=admin, user_id=holder.id, role_id=_role_id(USER_ROLE))
    svc.delete_role(actor=admin, role_id=role.id)
    assert role.id not in {r.id for r in svc.list_roles(actor=admin)}
    with pytest.raises(NotFound):
        svc.delete_role(actor=admin, role_id=role.id)
    assert [a for a, _ in audit_actions_for("role", role.id)] == ["role.create", "role.rename", "role.delete"]


def test_built_in_roles_keep_their_names_and_stay(admin: Actor) -> None:
    with pytest.raises(InvalidInput):
        svc.rename_role(actor=admin, role_id=_role_id(USER_ROLE), name=unique("member"))
    with pytest.raises(Conflict):
        svc.delete_role(actor=admin, role_id=_role_id(ADMIN_ROLE))
    same = svc.rename_role(actor=admin, role_id=_role_id(USER_ROLE), name=USER_ROLE)
    assert same.name == USER_ROLE and same.built_in


# ------------------------------------------------------------------ deleting a user


def _stored(kind: str, data: bytes) -> str:
    return get_storage().put(io.BytesIO(data), kind=kind, suffix=".txt").key


def test_deleting_a_user_removes_private_data_and_keeps_team_work(
    admin: Actor, make_user: Callable[..., Actor]
) -> None:
    leaver = make_user(USER_ROLE)
    colleague = make_user(USER_ROLE)
    storage = get_storage()

    chat_id, (answer_id,) = make_chat(leaver.id, [("What did we decide?", "To ship on Friday.")])
    own_feedback = make_feedback(answer_id, leaver.id, rating="good")
    colleague_chat, (colleague_answer,) = make_chat(colleague.id, [("Budget?", "Ten.")])
    feedback_given_elsewhere = make_feedback(colleague_answer, leaver.id, rating="bad", correction="Twelve.")
    reviewed = make_feedback(colleague_answer, colleague.id, rating="bad")
    with session_scope() as session:
        row = session.get(MessageFeedback, reviewed)
        assert row is not None
        row.reviewer_id = leaver.id

    private_key = _stored("documents", b"private notes")
    team_key = _stored("documents", b"team handbook")
    private_document = make_document(leaver.id, visibility="private", storage_key=private_key)
    team_document = make_document(leaver.id, visibility="team", storage_key=team_key)
    private_audio_key = _stored("audio", b"fake audio")
    private_recording = make_recording(leaver.id, visibility="private", storage_key=private_audio_key)
    derived = make_document(
        leaver.id, visibility="private", document_type="full_transcript", transcription_job_id=private_recording
    )
    team_recording = make_recording(leaver.id, visibility="team")
    with session_scope() as session:
        session.add(UsageRecord(purpose="chat", provider="offline", model="m", user_id=leaver.id))

    result = svc.delete_user(actor=admin, user_id=leaver.id)

    assert result.username == leaver.username
    assert (result.chats_deleted, result.private_documents_deleted, result.private_recordings_deleted) == (1, 1, 1)
    assert (result.team_documents_kept, result.team_recordings_kept) == (1, 1)
    assert result.files_deleted == 2
    with session_scope() as session:
        assert session.get(User, leaver.id) is None
        assert session.get(Chat, chat_id) is None
        assert session.scalar(select(func.count()).where(ChatMessage.chat_id == chat_id)) == 0
        for feedback_id in (own_feedback, feedback_given_elsewhere):
            assert session.get(MessageFeedback, feedback_id) is None
        kept_review = session.get(MessageFeedback, reviewed)
        assert kept_review is not None and kept_review.reviewer_id is None
        assert session.get(Chat, colleague_chat) is not None
        for gone in (private_document, derived):
            assert session.get(Document, gone) is None
        assert session.get(TranscriptionJob, private_recording) is None
        kept_document = session.get(Document, team_document)
        kept_recording = session.get(TranscriptionJob, team_recording)
        assert kept_document is not None and kept_document.uploaded_by is None
        assert kept_recording is not None and kept_recording.owner_id is None
        assert session.scalar(select(func.count()).where(UsageRecord.user_id == leaver.id)) == 0
    assert not storage.exists(private_key) and not storage.exists(private_audio_key)
    assert storage.exists(team_key)

    owners = {(job.kind, job.id): job.owner for job in svc.list_jobs(actor=admin)}
    assert owners[("indexing", team_document)] == svc.DELETED_USER_LABEL
    assert owners[("transcription", team_recording)] == svc.DELETED_USER_LABEL
    assert audit_actions_for("user", leaver.id)[-1] == ("user.delete", admin.username)
    with session_scope() as session:
        details = session.scalar(
            select(AuditLog.details).where(AuditLog.action == "user.delete", AuditLog.target_id == str(leaver.id))
        )
    assert details is not None and details["username"] == leaver.username
    assert details["private_document_ids"] == [private_document]
    assert audit_actions_for("document", private_document) == [("document.delete", admin.username)]
    assert audit_actions_for("transcription", private_recording) == [("recording.delete", admin.username)]


def test_deleting_an_unknown_user_is_not_found(admin: Actor) -> None:
    with pytest.raises(NotFound):
        svc.delete_user(actor=admin, user_id=2_000_000_000)
