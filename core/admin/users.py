"""Users: list, create, change role, disable/enable, reset password, unlock, delete.

Rules every change obeys: core.admin.safeguards.

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
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from core.access.accounts import (
    check_password_strength,
    forget_deleted_identity,
    hash_password,
    insert_user,
    remember_deleted_identity,
)
from core.access.audit import record_audit
from core.access.rbac import Actor, permissions_of_role, require
from core.access.sessions import revoke_user_sessions
from core.access.sign_in_throttle import clear_account
from core.admin.safeguards import ensure_administrable, guard_grant, guard_target, load_role, load_user
from core.documents.catalog import delete_private_documents_of
from core.meetings.recordings import delete_private_recordings_of
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput
from core.platform.models import Chat, User
from core.platform.storage import delete_stored

log = logging.getLogger(__name__)

DELETED_USER_LABEL = "deleted user"


def _now() -> datetime:
    return datetime.now(UTC)


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
    *, actor: Actor, username: str, email: str, password: str | None, role_id: int, display_name: str = ""
) -> UserSummary:
    """Create an active user with `role_id`; `password` None for one who signs in only with
    single sign-on (linked by email at the first sign-in). Commits, with an audit row (user.create).

    Raises PermissionDenied without manage_users or when the role grants permissions the
    actor lacks; InvalidInput for a bad username, email or weak password; Conflict when the
    username or email is taken; NotFound for an unknown role.
    """
    require(actor, "manage_users")
    if password is None and not get_settings().oidc_enabled:
        raise InvalidInput("Without single sign-on configured, every user needs a password.")
    with session_scope() as session:
        role = load_role(session, role_id, lock=False)
        guard_grant(actor, permissions_of_role(session, role.id), f"give the role {role.name!r}")
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
            details={
                "username": user.username,
                "email": user.email,
                "role": role.name,
                "password": password is not None,
            },
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
        user = load_user(session, user_id)
        guard_target(session, actor, user, "change the role of")
        role = load_role(session, role_id, lock=False)
        guard_grant(actor, permissions_of_role(session, role.id), f"give the role {role.name!r}")
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
        user = load_user(session, user_id)
        if not active and user.id == actor.id:
            raise Conflict("You cannot disable your own account.")
        guard_target(session, actor, user, "enable or disable")
        was_pending = user.approval_pending
        if user.is_active == active and not was_pending:
            return _user_summary(user)
        user.is_active = active
        user.approval_pending = False
        if not active:
            ensure_administrable(session)
            # Enabling the account again must not revive the browsers signed in before.
            revoke_user_sessions(session, user_id=user.id, reason="disabled")
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
        user = load_user(session, user_id)
        guard_target(session, actor, user, "reset the password of")
        user.password_hash = hash_password(password)
        user.password_changed_at = _now()
        user.failed_login_count = 0
        user.locked_until = None
        revoke_user_sessions(session, user_id=user.id, reason="password_reset")
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
    (user.unlock). Idempotent. Raises PermissionDenied without manage_users or when the user
    holds permissions the actor lacks (unlocking an account helps whoever is guessing its
    password: only its peers and superiors may); NotFound."""
    require(actor, "manage_users")
    with session_scope() as session:
        user = load_user(session, user_id)
        guard_target(session, actor, user, "unlock")
        was_locked_until = user.locked_until
        user.failed_login_count = 0
        user.locked_until = None
        clear_account(session, username=user.username)  # the waits at every address too
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
        user = load_user(session, user_id)
        guard_target(session, actor, user, "delete")
        username = user.username
        chats = session.scalar(select(func.count(Chat.id)).where(Chat.owner_id == user.id)) or 0
        # Recordings first: their transcript and minutes documents go with them (cascade).
        recordings = delete_private_recordings_of(session, owner_id=user.id, actor=actor, owner=username)
        documents = delete_private_documents_of(session, uploader_id=user.id, actor=actor, owner=username)
        remember_deleted_identity(session, user, deleted_by=actor)
        session.delete(user)  # chats, messages and feedback cascade
        ensure_administrable(session)
        record_audit(
            session,
            actor=actor,
            action="user.delete",
            target_type="user",
            target_id=user_id,
            details={
                "username": username,
                "chats_deleted": chats,
                "private_document_ids": documents.deleted_ids,
                "private_recording_ids": recordings.deleted_ids,
                "team_documents_kept": documents.team_kept,
                "team_recordings_kept": recordings.team_kept,
            },
        )
        storage_keys = documents.storage_keys + recordings.storage_keys
    files_deleted = delete_stored(sorted(set(storage_keys)))
    log.info("user %s (%s) deleted by %s", user_id, username, actor.username)
    return DeletedUser(
        user_id=user_id,
        username=username,
        chats_deleted=int(chats),
        private_documents_deleted=len(documents.deleted_ids),
        private_recordings_deleted=len(recordings.deleted_ids),
        team_documents_kept=documents.team_kept,
        team_recordings_kept=recordings.team_kept,
        files_deleted=files_deleted,
    )
