"""User accounts: passwords, sign-in rules (disabled, lock-out), the first admin."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bcrypt
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import ADMIN_ROLE, Actor, permissions_of_role
from core.access.sign_in_throttle import UNKNOWN_ADDRESS, clear_account, record_failure, wait_message
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput, NotFound
from core.platform.models import DeletedIdentity, Role, User

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:
        return False


def check_password_strength(password: str) -> None:
    """Raise InvalidInput when a new password is too weak to accept."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")
    if password.isdigit() or password.isalpha():
        raise InvalidInput("Use a mix of letters and digits or symbols in passwords.")


def _now() -> datetime:
    return datetime.now(UTC)


def actor_from_user(session: Session, user: User) -> Actor:
    return Actor(
        id=user.id,
        username=user.username,
        role=user.role.name,
        permissions=permissions_of_role(session, user.role_id),
        display_name=user.display_name or user.username,
        email=user.email,
    )


@dataclass(frozen=True)
class SignInCheck:
    """Whether a user may be signed in now, and the message to show when not."""

    actor: Actor | None
    refusal: str | None = None
    reason: str | None = None  # short code of the refusal, for the audit log


def _lock_message(locked_until: datetime) -> str:
    minutes = max(1, round((locked_until - _now()).total_seconds() / 60))
    return (
        "This account is locked after too many failed sign-in attempts. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''} or ask an admin to unlock it."
    )


@dataclass(frozen=True)
class Refusal:
    reason: str  # short code for the audit log
    message: str  # what the person is told


def sign_in_refusal(user: User, *, method: str) -> Refusal | None:
    """Why `user` may not use the app now, or None. Read-only.

    The password lock-out applies to password sign-ins only (`method` "password"): the
    identity provider has its own, someone guessing a password must not lock a colleague
    out of single sign-on, and a session already open ("session") goes on.
    """
    if user.approval_pending:
        return Refusal(
            "waiting for approval", "Your account waits for an admin's approval. You can sign in once it is approved."
        )
    if not user.is_active:
        return Refusal("disabled", "This account is disabled. Ask an admin to enable it.")
    if method == "password" and user.locked_until is not None and user.locked_until > _now():
        return Refusal("locked", _lock_message(user.locked_until))
    return None


def _by_username(username: str) -> Select[User]:
    """The user named `username`, ignoring case (names are unique regardless of case)."""
    return select(User).where(func.lower(User.username) == username.strip().lower())


def check_sign_in(username: str, *, method: str = "password") -> SignInCheck:
    """Decide whether `username` may use the app now: its password was just accepted
    (`method` "password"), its session goes on ("session": a signed-in run or a sign-in
    cookie) or its single sign-on session goes on ("oidc"). Read-only."""
    with session_scope() as session:
        user = session.scalar(_by_username(username))
        if user is None:
            return SignInCheck(None, "This account no longer exists.", "deleted")
        refusal = sign_in_refusal(user, method=method)
        if refusal is not None:
            return SignInCheck(None, refusal.message, refusal.reason)
        return SignInCheck(actor_from_user(session, user))


def record_successful_sign_in(username: str, *, address: str | None = None) -> None:
    """Reset the failure counters (the account's, and its throttle at `address`), stamp the
    last sign-in and audit it (auth.sign_in). Commits."""
    with session_scope() as session:
        clear_account(session, username=username, address=address or UNKNOWN_ADDRESS)
        user_id = session.scalar(
            update(User)
            .where(func.lower(User.username) == username.strip().lower())
            .values(failed_login_count=0, locked_until=None, last_login_at=func.now(), last_login_method="password")
            .returning(User.id)
        )
        record_audit(
            session,
            actor=None,
            actor_username=username,
            action="auth.sign_in",
            target_type="user",
            target_id=user_id,
            details={"method": "password", **({"address": address} if address else {})},
        )


def record_sign_out(username: str, *, method: str) -> None:
    """Audit a sign-out (auth.sign_out). Commits."""
    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(func.lower(User.username) == username.strip().lower()))
        record_audit(
            session,
            actor=None,
            actor_username=username,
            action="auth.sign_out",
            target_type="user",
            target_id=user_id,
            details={"method": method},
        )


def has_password(actor: Actor) -> bool:
    """Whether the signed-in user has a password (users made by single sign-on have none)."""
    with session_scope() as session:
        return bool(session.scalar(select(User.password_hash).where(User.id == actor.id)))


def record_refused_sign_in(username: str, *, reason: str, address: str | None = None) -> None:
    """Audit a password sign-in refused after the password matched (disabled, locked,
    waiting for approval). Commits."""
    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(func.lower(User.username) == username.strip().lower()))
        _audit_refusal(session, username, user_id, reason, address)


def _audit_refusal(
    session: Session, username: str, user_id: int | None, reason: str, address: str | None = None
) -> None:
    record_audit(
        session,
        actor=None,
        actor_username=username[:64],
        action="auth.sign_in_refused",
        target_type="user",
        target_id=user_id,
        details={"method": "password", "reason": reason, **({"address": address} if address else {})},
    )


def record_failed_sign_in(username: str, *, address: str | None = None) -> str:
    """Count a wrong password for `username` (existing or not) from `address`, audit it
    (auth.sign_in_refused), and start or lengthen the wait it earns (sign_in_throttle); lock
    the account for new password sign-ins after settings.login_account_max_failures from
    anywhere. Commits. Returns the message to show, the same whether the user exists."""
    settings = get_settings()
    with session_scope() as session:
        wait = record_failure(session, username=username, address=address or UNKNOWN_ADDRESS)
        message = wait_message(wait) if wait else "Wrong username or password."
        user = session.scalar(_by_username(username).with_for_update())
        if user is None:
            _audit_refusal(session, username, None, "unknown username", address)
            return message
        if user.locked_until is not None and user.locked_until > _now():
            _audit_refusal(session, username, user.id, "locked", address)
            return _lock_message(user.locked_until)
        _audit_refusal(session, username, user.id, "wrong password", address)
        user.failed_login_count += 1
        if user.failed_login_count >= settings.login_account_max_failures:
            user.locked_until = _now() + timedelta(minutes=settings.login_lockout_minutes)
            user.failed_login_count = 0
            log.warning("account %s locked after %s failed sign-ins", username, settings.login_account_max_failures)
            return _lock_message(user.locked_until)
        return message


def credentials_for_authenticator() -> dict[str, dict[str, dict[str, object]]]:
    """The credentials mapping streamlit-authenticator expects, read fresh from the users table."""
    with session_scope() as session:
        rows = session.execute(
            select(User.username, User.email, User.display_name, User.password_hash, Role.name).join(Role)
        ).all()
    # streamlit-authenticator lower-cases what is typed, so its keys are lower case too.
    return {
        "usernames": {
            username.lower(): {
                "email": email,
                "first_name": display_name or username,
                "last_name": "",
                "password": password_hash,
                "roles": [role],
                "failed_login_attempts": 0,
                "logged_in": False,
            }
            for username, email, display_name, password_hash, role in rows
            if password_hash  # users made by single sign-on have no password to check
        }
    }


def change_own_password(*, actor: Actor, current_password: str, new_password: str) -> None:
    """Change the signed-in user's password after checking the current one. Commits."""
    check_password_strength(new_password)
    with session_scope() as session:
        user = session.get(User, actor.id)
        if user is None:
            raise NotFound("Your account no longer exists.")
        if not verify_password(current_password, user.password_hash):
            raise InvalidInput("The current password is wrong.")
        if verify_password(new_password, user.password_hash):
            raise InvalidInput("The new password must differ from the current one.")
        user.password_hash = hash_password(new_password)
        user.password_changed_at = _now()


def insert_user(
    session: Session, *, username: str, email: str, password: str | None, role_name: str, display_name: str = ""
) -> User:
    """Insert a user row after validating it. `password` None makes a user who signs in only
    with single sign-on. Does not commit; no permission check (callers do)."""
    username = username.strip()
    email = email.strip().lower()
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise InvalidInput("Usernames use 1-64 letters, digits, '.', '_' or '-'.")
    if "@" not in email or len(email) > 255:
        raise InvalidInput("Give a valid email address.")
    if password is not None:
        check_password_strength(password)
    role = session.scalar(select(Role).where(Role.name == role_name))
    if role is None:
        raise NotFound(f"There is no role named {role_name!r}.")
    if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        raise Conflict(f"The username {username!r} is taken.")
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"The email {email!r} is already used by another account.")
    user = User(
        username=username,
        email=email,
        display_name=display_name.strip() or username,
        password_hash=hash_password(password) if password is not None else "",
        role_id=role.id,
    )
    session.add(user)
    session.flush()
    return user


def ensure_first_admin() -> str | None:
    """Create the first admin when no user exists. Commits.

    Returns the generated password when one had to be made up (to print once), else None.
    """
    settings = get_settings()
    with session_scope() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
        password = settings.admin_password or secrets.token_urlsafe(12) + "7!"
        insert_user(
            session,
            username=settings.admin_username,
            email=settings.admin_email,
            password=password,
            role_name=ADMIN_ROLE,
            display_name="Administrator",
        )
        log.info("created the first admin %r", settings.admin_username)
        return None if settings.admin_password else password


def remember_deleted_identity(session: Session, user: User, *, deleted_by: Actor) -> None:
    """Keep a deleted user's email and single sign-on identity so signing in with the identity
    provider refuses them instead of making them a new account. Does not commit."""
    session.add(
        DeletedIdentity(
            email=user.email,
            oidc_issuer=user.oidc_issuer,
            oidc_subject=user.oidc_subject,
            username=user.username,
            deleted_by=deleted_by.username,
        )
    )


def forget_deleted_identity(session: Session, email: str) -> None:
    """An admin created an account for `email` again: single sign-on may use it. Does not commit."""
    session.execute(delete(DeletedIdentity).where(DeletedIdentity.email == email.strip().lower()))


def actor_for_username(username: str) -> Actor:
    """The Actor of an active account, for the command line. Raises NotFound otherwise."""
    with session_scope() as session:
        user = session.scalar(_by_username(username))
        if user is None or not user.is_active:
            raise NotFound(f"There is no active user named {username!r}.")
        return actor_from_user(session, user)
