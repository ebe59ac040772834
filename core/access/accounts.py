"""User accounts: passwords, sign-in rules (disabled, lock-out), the first admin."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import bcrypt
from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import ADMIN_ROLE, Actor
from core.access.sessions import (
    SignInCheck,
    StartedSession,
    actor_from_user,
    lock_message,
    revoke_user_sessions,
    sign_in_refusal,
    start_session,
)
from core.access.sign_in_throttle import UNKNOWN_ADDRESS, clear_account, record_failure, seconds_to_wait, wait_message
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


@dataclass(frozen=True)
class SignInOutcome:
    """The result of a password sign-in: an actor and its new session, or why not."""

    actor: Actor | None
    session: StartedSession | None = None
    refusal: str | None = None


WRONG_CREDENTIALS = "Wrong username or password."
# Compared against when the username is unknown, so an unknown name costs the same bcrypt
# time as a known one and the response time does not tell which names exist.
_DUMMY_HASH = bcrypt.hashpw(b"quorum-timing-equaliser", bcrypt.gensalt()).decode("ascii")


def sign_in_with_password(
    *, username: str, password: str, client_address: str | None = None, user_agent: str | None = None
) -> SignInOutcome:
    """Check a username (any case) and password from `client_address` and open a session.
    Commits the session row, the last sign-in time and the audit row; on a wrong password or
    an unknown name, the failure and the wait it earns (record_failed_sign_in).

    A sign-in that must wait (core.access.sign_in_throttle) is refused before the password
    is looked at, so the answer cannot tell a right password from a wrong one. Disabled,
    locked or not yet approved accounts are refused with their reason; a wrong password and
    an unknown username get the same message.
    """
    typed = username.strip()
    wait = seconds_to_wait(username=typed.lower(), address=client_address)
    if wait:
        return SignInOutcome(None, refusal=wait_message(wait))
    with session_scope() as session:
        user = session.scalar(_by_username(typed)) if typed else None
        if user is None:
            verify_password(password, _DUMMY_HASH)
        elif user.password_hash and verify_password(password, user.password_hash):
            refusal = sign_in_refusal(user, method="password")
            if refusal is not None:
                _audit_refusal(session, user.username, user.id, refusal.reason, client_address)
                return SignInOutcome(None, refusal=refusal.message)
            clear_account(session, username=typed.lower(), address=client_address or UNKNOWN_ADDRESS)
            user.failed_login_count = 0
            user.locked_until = None
            user.last_login_at = _now()
            user.last_login_method = "password"
            started = start_session(
                session, user_id=user.id, method="password", client_address=client_address, user_agent=user_agent
            )
            record_audit(
                session,
                actor=None,
                actor_username=user.username,
                action="auth.sign_in",
                target_type="user",
                target_id=user.id,
                details={"method": "password", **({"address": client_address} if client_address else {})},
            )
            return SignInOutcome(actor_from_user(session, user), session=started)
    # A wrong password or an unknown name: counted (and audited) in a transaction of its own.
    return SignInOutcome(None, refusal=record_failed_sign_in(typed.lower(), address=client_address))


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
        message = wait_message(wait) if wait else WRONG_CREDENTIALS
        user = session.scalar(_by_username(username).with_for_update())
        if user is None:
            _audit_refusal(session, username, None, "unknown username", address)
            return message
        if user.locked_until is not None and user.locked_until > _now():
            _audit_refusal(session, username, user.id, "locked", address)
            return lock_message(user.locked_until)
        _audit_refusal(session, username, user.id, "wrong password", address)
        user.failed_login_count += 1
        if user.failed_login_count >= settings.login_account_max_failures:
            user.locked_until = _now() + timedelta(minutes=settings.login_lockout_minutes)
            user.failed_login_count = 0
            log.warning("account %s locked after %s failed sign-ins", username, settings.login_account_max_failures)
            return lock_message(user.locked_until)
        return message


def change_own_password(
    *, actor: Actor, current_password: str, new_password: str, keep_session: str | None = None
) -> int:
    """Change the signed-in user's password after checking the current one, and sign out
    every other session of the account (all but the one whose cookie is `keep_session`).
    Commits both together. Returns how many sessions were signed out."""
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
        return revoke_user_sessions(session, user_id=user.id, reason="password_changed", keep=keep_session)


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
    """The Actor of an active account, for the command line (its audit rows say "via":
    "cli": nobody signed in as that user). Raises NotFound otherwise."""
    with session_scope() as session:
        user = session.scalar(_by_username(username))
        if user is None or not user.is_active:
            raise NotFound(f"There is no active user named {username!r}.")
        return replace(actor_from_user(session, user), via="cli")
