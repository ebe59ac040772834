"""Sign-in sessions that can be revoked: one row per signed-in browser, bound to the user id.

The sign-in cookie carries `<user id>.<random token>.<HMAC>`, signed with the cookie key.
Only the SHA-256 of the token is stored (user_sessions.token_hash), so neither the cookie
key alone nor a copy of the database signs anybody in. Every script run re-checks the
session with check_session(): the row must exist, be unrevoked and unexpired, belong to
the user id in the cookie, and that user must still be allowed in. Rows go with their user
(ON DELETE CASCADE), so a new account given a deleted user's name inherits nothing.

Sessions end: on sign-out (that one), on a password change (the others), on a password
reset, disabling or deleting the account (all of them), or from "Sign out everywhere".
Any sign-in (password or OpenID Connect) starts one with start_session(); the password
lock-out applies to sessions started by a password only (core.access.accounts.sign_in_refusal).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.access.rbac import Actor, permissions_of_role
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.models import User, UserSession

SignInMethod = Literal["password", "oidc"]
RevokeReason = Literal["signed_out", "password_changed", "password_reset", "disabled", "signed_out_everywhere"]

# What a browser whose session was ended is told at its next click.
REVOKED_MESSAGES: dict[str, str] = {
    "signed_out": "You signed out.",
    "password_changed": "Your password was changed, so every other session was signed out. Sign in again.",
    "password_reset": "An admin reset your password. Sign in with the new one.",
    "disabled": "This account is disabled. Ask an admin to enable it.",
    "signed_out_everywhere": "You were signed out everywhere. Sign in again.",
}
ENDED = "Your session has ended. Sign in again."
TOKEN_BYTES = 32


@dataclass(frozen=True)
class StartedSession:
    """A new session: `cookie` is what the browser keeps; it is never stored in clear."""

    cookie: str
    user_id: int
    expires_at: datetime


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


def lock_message(locked_until: datetime) -> str:
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
        return Refusal("locked", lock_message(user.locked_until))
    return None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _signature(user_id: int, token: str) -> str:
    key = get_settings().cookie_signing_key
    return hmac.new(key, f"{user_id}.{token}".encode("ascii"), hashlib.sha256).hexdigest()


def _parse_cookie(cookie: str | None) -> tuple[int, str] | None:
    """(user id, token) of a well-formed cookie with a valid signature, else None."""
    if not cookie or len(cookie) > 200:
        return None
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    user_id, token, signature = int(parts[0]), parts[1], parts[2]
    try:
        expected = _signature(user_id, token)
    except UnicodeEncodeError:
        return None
    return (user_id, token) if hmac.compare_digest(expected, signature) else None


def start_session(
    session: Session,
    *,
    user_id: int,
    method: SignInMethod,
    client_address: str | None = None,
    user_agent: str | None = None,
) -> StartedSession:
    """Open a session for `user_id`, signed in by `method` ("password" or "oidc"), lasting
    settings.cookie_expiry_days. Does not commit (the caller's sign-in transaction does);
    does not check the account (the caller just did)."""
    settings = get_settings()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    # With cookie_expiry_days 0 the browser keeps no cookie: the session lasts as long as the tab.
    lifetime = timedelta(days=settings.cookie_expiry_days) if settings.cookie_expiry_days > 0 else timedelta(hours=12)
    expires_at = _now() + lifetime
    session.add(
        UserSession(
            user_id=user_id,
            method=method,
            token_hash=_token_hash(token),
            expires_at=expires_at,
            client_address=(client_address or None) and client_address[:64],
            user_agent=(user_agent or None) and user_agent[:256],
        )
    )
    # Expired rows are useless; clearing this user's on each sign-in keeps the table small.
    session.execute(delete(UserSession).where(UserSession.user_id == user_id, UserSession.expires_at < func.now()))
    session.flush()
    cookie = f"{user_id}.{token}.{_signature(user_id, token)}"
    return StartedSession(cookie=cookie, user_id=user_id, expires_at=expires_at)


def check_session(cookie: str | None) -> SignInCheck:
    """Whether the session behind `cookie` may use the app now, as whom. Read-only.

    Call it on every script run, and first thing in every fragment and dialog: it reads
    the session and its user fresh, so a revoked session, an expired one, a disabled,
    locked or deleted account is refused at once and a role change applies at once.
    The refusal says why when the browser should be told (revoked, disabled), else ENDED.
    """
    parsed = _parse_cookie(cookie)
    if parsed is None:
        return SignInCheck(None, ENDED)
    user_id, token = parsed
    with session_scope() as session:
        row = session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == _token_hash(token), UserSession.user_id == user_id)
        ).first()
        if row is None:
            return SignInCheck(None, ENDED)
        user_session, user = row.tuple()
        if user_session.revoked_at is not None:
            return SignInCheck(None, REVOKED_MESSAGES.get(user_session.revoked_reason or "", ENDED))
        if user_session.expires_at <= _now():
            return SignInCheck(None, ENDED)
        # "session": the password lock-out stops new password sign-ins, not open sessions.
        refusal = sign_in_refusal(user, method="oidc" if user_session.method == "oidc" else "session")
        if refusal is not None:
            return SignInCheck(None, refusal.message, refusal.reason)
        return SignInCheck(actor_from_user(session, user))


def revoke_user_sessions(session: Session, *, user_id: int, reason: RevokeReason, keep: str | None = None) -> int:
    """Revoke every open session of `user_id` but the one whose cookie is `keep`.
    Does not commit (runs inside the caller's transaction). Returns how many ended."""
    statement = update(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None), UserSession.expires_at > func.now()
    )
    kept = _parse_cookie(keep)
    if kept is not None:
        statement = statement.where(UserSession.token_hash != _token_hash(kept[1]))
    result = session.execute(statement.values(revoked_at=func.now(), revoked_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)


def end_session(cookie: str | None) -> None:
    """Sign out the session behind `cookie` (the Sign out button). Commits. Idempotent."""
    parsed = _parse_cookie(cookie)
    if parsed is None:
        return
    with session_scope() as session:
        session.execute(
            update(UserSession)
            .where(UserSession.token_hash == _token_hash(parsed[1]), UserSession.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_reason="signed_out")
        )


def sign_out_everywhere(*, actor: Actor, keep: str | None = None) -> int:
    """End all of the actor's sessions, except the one whose cookie is `keep` when given.
    Commits. Returns how many sessions ended."""
    with session_scope() as session:
        return revoke_user_sessions(session, user_id=actor.id, reason="signed_out_everywhere", keep=keep)


def open_session_count(*, actor: Actor) -> int:
    """How many unrevoked, unexpired sessions the actor has (this browser included)."""
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count(UserSession.id)).where(
                    UserSession.user_id == actor.id,
                    UserSession.revoked_at.is_(None),
                    UserSession.expires_at > func.now(),
                )
            )
            or 0
        )


def open_session(
    *, user_id: int, method: SignInMethod, client_address: str | None = None, user_agent: str | None = None
) -> StartedSession:
    """start_session() in a transaction of its own, for a sign-in already decided elsewhere
    (single sign-on: core.access.oidc.sign_in_with_oidc). Commits."""
    with session_scope() as session:
        return start_session(
            session, user_id=user_id, method=method, client_address=client_address, user_agent=user_agent
        )
