"""Running the system: users, roles and the permission matrix, and the job monitor.

Every function checks the actor's permission first, owns its transaction and writes one
audit row (core.access.audit) in that same transaction.

Rules every change obeys:

- Lock-out protection. A change to users or roles that would leave no active user holding
  both manage_users and manage_roles is refused (Conflict) and rolled back. The check
  reads the state after the change, inside its transaction, under a transaction-level
  advisory lock, so two admins demoting each other at the same moment cannot both win.
- Nobody may disable or delete themselves.
- No privilege escalation: an actor can only give out (by role assignment or matrix edit)
  permissions they hold, and can only act on (reset, disable, delete, re-role) users whose
  permissions are a subset of their own. Seeded admins hold everything, so they never hit it.
- Built-in roles ("admin", "user") are recreated at every start, so they cannot be deleted
  or renamed; the admin role always holds every permission, so its row of the matrix is fixed.

Deleting a user (delete_users) deletes, in one transaction:
- their chats, the messages in them and all feedback on those messages, plus the feedback
  they gave anywhere (foreign keys cascade);
- their private documents (chunks cascade) and private recordings (segments and the
  transcript/minutes documents made from them cascade); the stored files of those are
  removed after the commit;
and keeps:
- team documents and team recordings they uploaded: uploaded_by / owner_id become NULL
  and pages show the uploader as "deleted user";
- usage ledger rows (user_id NULL) and audit rows (actor_username stays as written);
- feedback they reviewed (reviewer_id NULL).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from redis.exceptions import RedisError
from sqlalchemy import delete, distinct, func, or_, select
from sqlalchemy.orm import Session

from core.access.accounts import (
    check_password_strength,
    forget_deleted_identity,
    hash_password,
    insert_user,
    remember_deleted_identity,
)
from core.access.audit import record_audit
from core.access.rbac import ADMIN_ROLE, PERMISSIONS, USER_ROLE, Actor, permissions_of_role, require
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.platform.models import Chat, Document, Permission, Role, RolePermission, TranscriptionJob, User
from core.platform.queue import queue_depths
from core.platform.storage import delete_stored

log = logging.getLogger(__name__)

# The permissions someone must keep so the system can still be administered.
ADMINISTRATION = ("manage_users", "manage_roles")
BUILT_IN_ROLES = frozenset({ADMIN_ROLE, USER_ROLE})
DELETED_USER_LABEL = "deleted user"
_LOCKOUT_LOCK_KEY = 7_146_001  # pg_advisory_xact_lock id serialising lock-out checks
_ROLE_NAME_MAX = 64


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------- guards


def ensure_administrable(session: Session) -> None:
    """Raise Conflict unless an active user still holds manage_users and manage_roles.

    Call after making a change, inside its transaction: it flushes the change and checks
    the resulting state. Does not commit. Takes a transaction-level advisory lock first so
    concurrent checks run one after the other and each sees the others' committed changes.
    """
    session.flush()
    session.execute(select(func.pg_advisory_xact_lock(_LOCKOUT_LOCK_KEY)))
    administering_roles = (
        select(RolePermission.role_id)
        .join(Permission, Permission.id == RolePermission.permission_id)
        .where(Permission.name.in_(ADMINISTRATION))
        .group_by(RolePermission.role_id)
        .having(func.count(distinct(Permission.name)) == len(ADMINISTRATION))
    )
    remaining = session.scalar(
        select(func.count(User.id)).where(User.is_active.is_(True), User.role_id.in_(administering_roles))
    )
    if not remaining:
        raise Conflict(
            "Refused: afterwards no active user could manage users and roles. Give another active "
            "user a role with manage_users and manage_roles first."
        )


def _guard_grant(actor: Actor, permissions: Iterable[str], what: str) -> None:
    missing = sorted(set(permissions) - actor.permissions)
    if missing:
        raise PermissionDenied(f"You cannot {what}: it grants permissions you do not hold ({', '.join(missing)}).")


def _guard_target(session: Session, actor: Actor, user: User, what: str) -> None:
    missing = sorted(permissions_of_role(session, user.role_id) - actor.permissions)
    if missing:
        raise PermissionDenied(
            f"You cannot {what} {user.username}: they hold permissions you do not hold ({', '.join(missing)})."
        )


def _load_user(session: Session, user_id: int, *, lock: bool = True) -> User:
    statement = select(User).where(User.id == user_id)
    if lock:
        statement = statement.with_for_update(of=User)
    user = session.scalar(statement)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def _load_role(session: Session, role_id: int, *, lock: bool = True) -> Role:
    statement = select(Role).where(Role.id == role_id)
    if lock:
        statement = statement.with_for_update()
    role = session.scalar(statement)
    if role is None:
        raise NotFound(f"Role {role_id} does not exist.")
    return role


# ---------------------------------------------------------------------------- users


@dataclass(frozen=True)
class UserSummary:
    """A user as the Users tab shows it. Never carries the password hash."""

    id: int
    username: str
    email: str
    display_name: str
    role_id: int
    role_name: str
    is_active: bool
    locked: bool
    locked_until: datetime | None
    failed_login_count: int
    created_at: datetime
    last_login_at: datetime | None
    has_password: bool
    has_single_sign_on: bool
    approval_pending: bool
    last_login_method: str | None

    @property
    def sign_in_methods(self) -> str:
        """How this user can sign in, as the Users tab shows it."""
        methods = [("single sign-on", self.has_single_sign_on), ("password", self.has_password)]
        return " + ".join(name for name, has in methods if has) or "none"


def _user_summary(user: User) -> UserSummary:
    now = _now()
    return UserSummary(
        id=user.id,
        username=user.username,
        email=user.email,
        display_name=user.display_name,
        role_id=user.role_id,
        role_name=user.role.name,
        is_active=user.is_active,
        locked=user.locked_until is not None and user.locked_until > now,
        locked_until=user.locked_until,
        failed_login_count=user.failed_login_count,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        has_password=bool(user.password_hash),
        has_single_sign_on=user.oidc_subject is not None,
        approval_pending=user.approval_pending,
        last_login_method=user.last_login_method,
    )


def list_users(*, actor: Actor) -> list[UserSummary]:
    """Every user, by username. Read-only. Raises PermissionDenied without manage_users."""
    require(actor, "manage_users")
    with session_scope() as session:
        return [_user_summary(user) for user in session.scalars(select(User).order_by(func.lower(User.username)))]


def create_user(
    *, actor: Actor, username: str, email: str, password: str, role_id: int, display_name: str = ""
) -> UserSummary:
    """Create an active user with `role_id`. Commits, with an audit row (user.create).

    Raises PermissionDenied without manage_users or when the role grants permissions the
    actor lacks; InvalidInput for a bad username, email or weak password; Conflict when the
    username or email is taken; NotFound for an unknown role.
    """
    require(actor, "manage_users")
    with session_scope() as session:
        role = _load_role(session, role_id, lock=False)
        _guard_grant(actor, permissions_of_role(session, role.id), f"give the role {role.name!r}")
        user = insert_user(
            session, username=username, email=email, password=password, role_name=role.name, display_name=display_name
        )
        forget_deleted_identity(session, user.email)  # re-created on purpose: single sign-on may use it
        record_audit(
            session,
            actor=actor,
            action="user.create",
            target_type="user",
            target_id=user.id,
            details={"username": user.username, "email": user.email, "role": role.name},
        )
        session.refresh(user)
        return _user_summary(user)


def change_user_role(*, actor: Actor, user_id: int, role_id: int) -> UserSummary:
    """Give a user another role. Commits, with an audit row (user.role_change).

    Raises PermissionDenied without manage_users or on escalation; NotFound for an unknown
    user or role; Conflict when it would leave nobody able to administer (lock-out).
    """
    require(actor, "manage_users")
    with session_scope() as session:
        user = _load_user(session, user_id)
        _guard_target(session, actor, user, "change the role of")
        role = _load_role(session, role_id, lock=False)
        _guard_grant(actor, permissions_of_role(session, role.id), f"give the role {role.name!r}")
        before = user.role.name
        if user.role_id == role.id:
            return _user_summary(user)
        user.role_id = role.id
        ensure_administrable(session)
        record_audit(
            session,
            actor=actor,
            action="user.role_change",
            target_type="user",
            target_id=user.id,
            details={"username": user.username, "from": before, "to": role.name},
        )
        session.refresh(user)
        return _user_summary(user)


def set_user_active(*, actor: Actor, user_id: int, active: bool) -> UserSummary:
    """Enable (`active=True`) or disable a user; a disabled user cannot sign in. Enabling a
    user that single sign-on made and that waits for approval approves them; disabling one
    rejects them. Commits, with an audit row (user.enable / user.disable / user.approve).
    Idempotent.

    Raises PermissionDenied without manage_users or on escalation; Conflict when disabling
    oneself or when it would leave nobody able to administer; NotFound for an unknown user.
    """
    require(actor, "manage_users")
    with session_scope() as session:
        user = _load_user(session, user_id)
        if not active and user.id == actor.id:
            raise Conflict("You cannot disable your own account.")
        _guard_target(session, actor, user, "enable or disable")
        was_pending = user.approval_pending
        if user.is_active == active and not was_pending:
            return _user_summary(user)
        user.is_active = active
        user.approval_pending = False
        if not active:
            ensure_administrable(session)
        if was_pending:
            action = "user.approve" if active else "user.reject"
        else:
            action = "user.enable" if active else "user.disable"
        record_audit(
            session,
            actor=actor,
            action=action,
            target_type="user",
            target_id=user.id,
            details={"username": user.username},
        )
        return _user_summary(user)


def generate_password() -> str:
    """A random password that passes the strength check (about 96 bits)."""
    while True:
        candidate = secrets.token_urlsafe(12)
        try:
            check_password_strength(candidate)
        except InvalidInput:
            continue
        return candidate


def reset_password(*, actor: Actor, user_id: int, new_password: str | None = None) -> str:
    """Set a user's password and clear any sign-in lock. Returns the new password, made up
    when `new_password` is None (show it once; it is not stored in clear anywhere).
    Commits, with an audit row (user.password_reset; never the password itself).

    Raises PermissionDenied without manage_users or on escalation; InvalidInput for a weak
    password; NotFound for an unknown user.
    """
    require(actor, "manage_users")
    password = new_password if new_password is not None else generate_password()
    check_password_strength(password)
    with session_scope() as session:
        user = _load_user(session, user_id)
        _guard_target(session, actor, user, "reset the password of")
        user.password_hash = hash_password(password)
        user.password_changed_at = _now()
        user.failed_login_count = 0
        user.locked_until = None
        record_audit(
            session,
            actor=actor,
            action="user.password_reset",
            target_type="user",
            target_id=user.id,
            details={"username": user.username, "generated": new_password is None},
        )
    return password


def unlock_user(*, actor: Actor, user_id: int) -> UserSummary:
    """Clear a sign-in lock and the failed-sign-in counter. Commits, with an audit row
    (user.unlock). Idempotent. Raises PermissionDenied without manage_users; NotFound."""
    require(actor, "manage_users")
    with session_scope() as session:
        user = _load_user(session, user_id)
        was_locked_until = user.locked_until
        user.failed_login_count = 0
        user.locked_until = None
        record_audit(
            session,
            actor=actor,
            action="user.unlock",
            target_type="user",
            target_id=user.id,
            details={
                "username": user.username,
                "locked_until": was_locked_until.isoformat() if was_locked_until else None,
            },
        )
        return _user_summary(user)


@dataclass(frozen=True)
class DeletedUser:
    """What deleting a user removed and what it kept (see the module docstring)."""

    user_id: int
    username: str
    chats_deleted: int
    private_documents_deleted: int
    private_recordings_deleted: int
    team_documents_kept: int
    team_recordings_kept: int
    files_deleted: int


def delete_user(*, actor: Actor, user_id: int) -> DeletedUser:
    """Delete a user and their private data; keep their team documents and recordings
    (uploader shown as "deleted user"). The full rule is in the module docstring.

    Commits the rows and an audit row (user.delete) together, then removes the stored
    files of the deleted private documents and recordings (a file that cannot be removed is
    logged and left behind; it is unreachable). Raises PermissionDenied without
    delete_users or on escalation; Conflict when deleting oneself or when it would leave
    nobody able to administer; NotFound for an unknown user.
    """
    require(actor, "delete_users")
    if user_id == actor.id:
        raise Conflict("You cannot delete your own account.")
    with session_scope() as session:
        user = _load_user(session, user_id)
        _guard_target(session, actor, user, "delete")
        username = user.username
        chats = session.scalar(select(func.count(Chat.id)).where(Chat.owner_id == user.id)) or 0
        private_recordings = session.execute(
            select(TranscriptionJob.id, TranscriptionJob.storage_key)
            .where(TranscriptionJob.owner_id == user.id, TranscriptionJob.visibility == "private")
            .with_for_update()
        ).all()
        recording_ids = [row.id for row in private_recordings]
        # Transcripts and minutes of a private recording are deleted with it, not counted here.
        private_documents = session.execute(
            select(Document.id, Document.storage_key)
            .where(
                Document.uploaded_by == user.id,
                Document.visibility == "private",
                or_(Document.transcription_job_id.is_(None), Document.transcription_job_id.not_in(recording_ids)),
            )
            .with_for_update()
        ).all()
        team_documents = session.scalar(
            select(func.count(Document.id)).where(Document.uploaded_by == user.id, Document.visibility != "private")
        )
        team_recordings = session.scalar(
            select(func.count(TranscriptionJob.id)).where(
                TranscriptionJob.owner_id == user.id, TranscriptionJob.visibility != "private"
            )
        )
        # Documents made from a private recording go with it (FK cascade); collect their files too.
        derived_keys = session.scalars(
            select(Document.storage_key).where(
                Document.transcription_job_id.in_(recording_ids),
                Document.storage_key.is_not(None),
            )
        ).all()
        storage_keys = [
            key
            for key in [
                *(row.storage_key for row in private_documents),
                *(row.storage_key for row in private_recordings),
            ]
            if key
        ]
        storage_keys.extend(key for key in derived_keys if key)
        if private_documents:
            session.execute(delete(Document).where(Document.id.in_([row.id for row in private_documents])))
        if private_recordings:
            session.execute(
                delete(TranscriptionJob).where(TranscriptionJob.id.in_([row.id for row in private_recordings]))
            )
        remember_deleted_identity(session, user, deleted_by=actor)
        session.delete(user)
        ensure_administrable(session)
        # One row per deleted item too, as core.documents.indexing / core.meetings.transcription write for theirs.
        for row in private_documents:
            record_audit(
                session,
                actor=actor,
                action="document.delete",
                target_type="document",
                target_id=row.id,
                details={"reason": "owner deleted", "owner": username},
            )
        for row in private_recordings:
            record_audit(
                session,
                actor=actor,
                action="recording.delete",
                target_type="transcription",
                target_id=row.id,
                details={"reason": "owner deleted", "owner": username},
            )
        record_audit(
            session,
            actor=actor,
            action="user.delete",
            target_type="user",
            target_id=user_id,
            details={
                "username": username,
                "chats_deleted": chats,
                "private_document_ids": [row.id for row in private_documents],
                "private_recording_ids": [row.id for row in private_recordings],
                "team_documents_kept": team_documents,
                "team_recordings_kept": team_recordings,
            },
        )
    files_deleted = delete_stored(sorted(set(storage_keys)))
    log.info("user %s (%s) deleted by %s", user_id, username, actor.username)
    return DeletedUser(
        user_id=user_id,
        username=username,
        chats_deleted=int(chats),
        private_documents_deleted=len(private_documents),
        private_recordings_deleted=len(private_recordings),
        team_documents_kept=int(team_documents or 0),
        team_recordings_kept=int(team_recordings or 0),
        files_deleted=files_deleted,
    )


# ---------------------------------------------------------------------------- roles


@dataclass(frozen=True)
class RoleSummary:
    id: int
    name: str
    description: str
    permissions: frozenset[str]
    user_count: int
    built_in: bool


def _require_any(actor: Actor, *permissions: str) -> None:
    if not any(actor.can(permission) for permission in permissions):
        require(actor, permissions[0])


def _role_summaries(session: Session, role_ids: Iterable[int] | None = None) -> list[RoleSummary]:
    statement = select(Role).order_by(Role.name)
    if role_ids is not None:
        statement = statement.where(Role.id.in_(list(role_ids)))
    roles = list(session.scalars(statement))
    counts = dict(session.execute(select(User.role_id, func.count(User.id)).group_by(User.role_id)).tuples().all())
    grants: dict[int, set[str]] = {}
    for role_id, name in session.execute(
        select(RolePermission.role_id, Permission.name).join(Permission, Permission.id == RolePermission.permission_id)
    ):
        grants.setdefault(role_id, set()).add(name)
    return [
        RoleSummary(
            id=role.id,
            name=role.name,
            description=role.description,
            permissions=frozenset(grants.get(role.id, set())),
            user_count=int(counts.get(role.id, 0)),
            built_in=role.name in BUILT_IN_ROLES,
        )
        for role in roles
    ]


def list_roles(*, actor: Actor) -> list[RoleSummary]:
    """Every role with its permissions and how many users hold it. Read-only.

    Raises PermissionDenied unless the actor holds manage_roles or manage_users (the
    users tab needs the role names to assign them).
    """
    _require_any(actor, "manage_roles", "manage_users")
    with session_scope() as session:
        return _role_summaries(session)


def _clean_role_name(session: Session, name: str, *, except_id: int | None = None) -> str:
    name = " ".join(name.split())
    if not name or len(name) > _ROLE_NAME_MAX:
        raise InvalidInput(f"Role names need 1-{_ROLE_NAME_MAX} characters.")
    clash = session.scalar(select(Role.id).where(func.lower(Role.name) == name.lower()))
    if clash is not None and clash != except_id:
        raise Conflict(f"A role named {name!r} already exists.")
    return name


def _check_permission_names(permissions: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(permissions)
    unknown = sorted(wanted - set(PERMISSIONS))
    if unknown:
        raise InvalidInput(f"Unknown permissions: {', '.join(unknown)}.")
    return wanted


def _set_grants(session: Session, role: Role, wanted: frozenset[str]) -> tuple[list[str], list[str]]:
    """Make `role` grant exactly `wanted`. Does not commit. Returns (added, removed)."""
    have = permissions_of_role(session, role.id)
    added = sorted(wanted - have)
    removed = sorted(have - wanted)
    ids = dict(session.execute(select(Permission.name, Permission.id)).tuples().all())
    if removed:
        session.execute(
            delete(RolePermission).where(
                RolePermission.role_id == role.id, RolePermission.permission_id.in_([ids[name] for name in removed])
            )
        )
    for name in added:
        session.add(RolePermission(role_id=role.id, permission_id=ids[name]))
    session.flush()
    session.expire(role)
    return added, removed


def create_role(*, actor: Actor, name: str, description: str = "", permissions: Iterable[str] = ()) -> RoleSummary:
    """Create a role granting `permissions`. Commits, with an audit row (role.create).

    Raises PermissionDenied without manage_roles or when granting permissions the actor
    lacks; InvalidInput for a bad name or unknown permission; Conflict for a taken name.
    """
    require(actor, "manage_roles")
    wanted = _check_permission_names(permissions)
    _guard_grant(actor, wanted, "create this role")
    with session_scope() as session:
        role = Role(name=_clean_role_name(session, name), description=description.strip())
        session.add(role)
        session.flush()
        _set_grants(session, role, wanted)
        record_audit(
            session,
            actor=actor,
            action="role.create",
            target_type="role",
            target_id=role.id,
            details={"name": role.name, "permissions": sorted(wanted)},
        )
        return _role_summaries(session, [role.id])[0]


def rename_role(*, actor: Actor, role_id: int, name: str, description: str | None = None) -> RoleSummary:
    """Rename a role and optionally change its description. Commits, with an audit row
    (role.rename). Built-in roles keep their names (their descriptions may change).

    Raises PermissionDenied without manage_roles; InvalidInput for a bad name or renaming
    a built-in role; Conflict for a taken name; NotFound for an unknown role.
    """
    require(actor, "manage_roles")
    with session_scope() as session:
        role = _load_role(session, role_id)
        new_name = _clean_role_name(session, name, except_id=role.id)
        if role.name in BUILT_IN_ROLES and new_name != role.name:
            raise InvalidInput(f"The built-in role {role.name!r} cannot be renamed; it is recreated at every start.")
        before = {"name": role.name, "description": role.description}
        role.name = new_name
        if description is not None:
            role.description = description.strip()
        record_audit(
            session,
            actor=actor,
            action="role.rename",
            target_type="role",
            target_id=role.id,
            details={"before": before, "after": {"name": role.name, "description": role.description}},
        )
        session.flush()
        return _role_summaries(session, [role.id])[0]


def delete_role(*, actor: Actor, role_id: int) -> None:
    """Delete a role no user holds. Commits, with an audit row (role.delete).

    Raises PermissionDenied without manage_roles; Conflict while users hold the role or
    for a built-in role; NotFound for an unknown role.
    """
    require(actor, "manage_roles")
    with session_scope() as session:
        role = _load_role(session, role_id)
        if role.name in BUILT_IN_ROLES:
            raise Conflict(f"The built-in role {role.name!r} cannot be deleted.")
        holders = session.scalar(select(func.count(User.id)).where(User.role_id == role.id)) or 0
        if holders:
            raise Conflict(
                f"The role {role.name!r} is still assigned to {holders} user{'s' if holders != 1 else ''}; "
                "give them another role first."
            )
        details = {"name": role.name, "permissions": sorted(permissions_of_role(session, role.id))}
        session.delete(role)
        ensure_administrable(session)
        record_audit(session, actor=actor, action="role.delete", target_type="role", target_id=role_id, details=details)


def set_role_permissions(*, actor: Actor, role_id: int, permissions: Iterable[str]) -> RoleSummary:
    """Make one role grant exactly `permissions` (one row of the matrix). See set_permission_matrix."""
    summaries = set_permission_matrix(actor=actor, matrix={role_id: permissions})
    return summaries[0]


def set_permission_matrix(*, actor: Actor, matrix: Mapping[int, Iterable[str]]) -> list[RoleSummary]:
    """Apply an edited role x permission matrix: each role id in `matrix` grants exactly the
    given permissions; roles not in `matrix` are untouched. All or nothing: commits every
    changed row with one audit row per changed role (role.permissions_set), or nothing.

    Raises PermissionDenied without manage_roles or when adding permissions the actor lacks;
    InvalidInput for unknown permissions or a change to the admin role (it always holds
    every permission); NotFound for an unknown role; Conflict on lock-out.
    """
    require(actor, "manage_roles")
    wanted_by_role = {int(role_id): _check_permission_names(grants) for role_id, grants in matrix.items()}
    with session_scope() as session:
        changed = False
        for role_id, wanted in sorted(wanted_by_role.items()):
            role = _load_role(session, role_id)
            have = permissions_of_role(session, role.id)
            if wanted == have:
                continue
            if role.name == ADMIN_ROLE:
                raise InvalidInput(
                    "The admin role always holds every permission (it is restored at every start). "
                    "Create another role for a narrower set."
                )
            _guard_grant(actor, wanted - have, f"change the role {role.name!r}")
            added, removed = _set_grants(session, role, wanted)
            changed = True
            record_audit(
                session,
                actor=actor,
                action="role.permissions_set",
                target_type="role",
                target_id=role.id,
                details={"name": role.name, "added": added, "removed": removed},
            )
        if changed:
            ensure_administrable(session)
        return _role_summaries(session, list(wanted_by_role))


# ---------------------------------------------------------------------------- jobs

JobKind = Literal["transcription", "indexing"]


@dataclass(frozen=True)
class JobRow:
    """One background job: a recording's transcription or a document's indexing."""

    kind: JobKind
    id: int
    name: str
    owner: str
    status: str
    stage: str
    progress: float  # 0..1
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_seconds: float | None
    stale: bool  # running, but no heartbeat for longer than job_stale_after_seconds


def _duration(started: datetime | None, finished: datetime | None, running: bool, now: datetime) -> float | None:
    if started is None:
        return None
    end = finished or (now if running else None)
    return None if end is None else max(0.0, (end - started).total_seconds())


def _is_stale(running: bool, heartbeat: datetime | None, started: datetime | None, now: datetime) -> bool:
    last_sign = heartbeat or started
    limit = timedelta(seconds=get_settings().job_stale_after_seconds)
    return running and last_sign is not None and now - last_sign > limit


def list_jobs(
    *, actor: Actor, kind: JobKind | None = None, status: str | None = None, limit: int = 200
) -> list[JobRow]:
    """Transcription and indexing jobs, newest first, at most `limit` of each kind. Read-only.

    `status` uses the job vocabulary (PENDING, PROCESSING, COMPLETED, FAILED); for
    indexing jobs PROCESSING matches documents in INDEXING. Raises PermissionDenied
    without view_jobs.
    """
    require(actor, "view_jobs")
    now = _now()
    rows: list[JobRow] = []
    with session_scope() as session:
        if kind in (None, "transcription"):
            query = select(TranscriptionJob).order_by(TranscriptionJob.created_at.desc(), TranscriptionJob.id.desc())
            if status:
                query = query.where(TranscriptionJob.status == status)
            for job in session.scalars(query.limit(limit)):
                running = job.status == "PROCESSING"
                rows.append(
                    JobRow(
                        kind="transcription",
                        id=job.id,
                        name=job.filename,
                        owner=job.owner.username if job.owner else DELETED_USER_LABEL,
                        status=job.status,
                        stage=job.stage,
                        progress=float(job.progress or 0.0),
                        attempts=job.attempts,
                        error=job.error,
                        created_at=job.created_at,
                        started_at=job.started_at,
                        finished_at=job.completed_at,
                        heartbeat_at=job.heartbeat_at,
                        duration_seconds=_duration(job.started_at, job.completed_at, running, now),
                        stale=_is_stale(running, job.heartbeat_at, job.started_at, now),
                    )
                )
        if kind in (None, "indexing"):
            documents = select(Document).order_by(Document.upload_date.desc(), Document.id.desc())
            if status:
                documents = documents.where(Document.status == ("INDEXING" if status == "PROCESSING" else status))
            for document in session.scalars(documents.limit(limit)):
                running = document.status == "INDEXING"
                total = document.chunks_total or 0
                progress = 1.0 if document.status == "COMPLETED" else (document.chunks_done / total if total else 0.0)
                stage = {
                    "PENDING": "queued",
                    "INDEXING": f"indexing {document.chunks_done}/{total} chunks" if total else "extracting text",
                    "COMPLETED": "done",
                    "FAILED": "failed",
                }.get(document.status, document.status.lower())
                rows.append(
                    JobRow(
                        kind="indexing",
                        id=document.id,
                        name=document.filename,
                        owner=document.uploader.username if document.uploader else DELETED_USER_LABEL,
                        status=document.status,
                        stage=stage,
                        progress=min(1.0, progress),
                        attempts=document.attempts,
                        error=document.error,
                        created_at=document.upload_date,
                        started_at=document.started_at,
                        finished_at=document.indexed_at,
                        heartbeat_at=document.heartbeat_at,
                        duration_seconds=_duration(document.started_at, document.indexed_at, running, now),
                        stale=_is_stale(running, document.heartbeat_at, document.started_at, now),
                    )
                )
    rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    return rows


def job_queue_depths(*, actor: Actor) -> dict[str, int] | None:
    """Messages waiting per queue (ready plus delayed), read from Redis; None when Redis
    cannot be reached (logged). Raises PermissionDenied without view_jobs."""
    require(actor, "view_jobs")
    try:
        return queue_depths()
    except RedisError:
        log.warning("queue depths unavailable: Redis is not reachable", exc_info=True)
        return None


def retry_job(*, actor: Actor, kind: JobKind, job_id: int) -> None:
    """Retry a failed or stalled transcription or indexing job through its owner's retry
    function (core.meetings.transcription.retry_job, core.documents.indexing.retry_document), which commits
    and enqueues it.

    Requires view_jobs. An audit row (job.retry) is written by core.meetings.transcription for
    recordings and here for documents (core.documents.indexing does not audit retries). Raises
    what the owning service raises (NotFound; Conflict when the job is running or done).
    """
    require(actor, "view_jobs")
    if kind == "transcription":
        from core.meetings.transcription import retry_job as retry_transcription

        retry_transcription(actor=actor, job_id=job_id)
    elif kind == "indexing":
        from core.documents.indexing import retry_document

        retry_document(actor=actor, document_id=job_id)
        with session_scope() as session:
            record_audit(session, actor=actor, action="job.retry", target_type="indexing", target_id=job_id, details={})
    else:
        raise InvalidInput(f"Unknown job kind {kind!r}.")
