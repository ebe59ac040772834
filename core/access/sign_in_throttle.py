"""Slowing down password guessing without letting a guesser lock anyone out.

Wrong passwords are counted under two keys: the client address (password spraying: many
accounts tried from one place) and the account at that address (guessing one password).
Past a number of free failures each further one makes that key wait twice as long as the
last, from 1 s up to settings.login_lockout_minutes. A wait is checked before the password
is, and the answer is the same whether the password was right, so waiting leaks nothing.

A guesser elsewhere never delays the real user at their own address; only a wide attack
(settings.login_account_max_failures from anywhere) locks the account itself, and even
that lock only refuses new password sign-ins: sessions already open go on.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.models import SignInThrottle

log = logging.getLogger(__name__)

UNKNOWN_ADDRESS = "unknown"
_MAX_KEY_CHARS = 400


def client_address(*, connected: str | None, forwarded_for: str | None) -> str | None:
    """The address a request came from: `connected` (the peer of the connection), or when
    settings.forwarded_for_hops says Quorum sits behind that many proxies, the entry that
    many places from the right of their X-Forwarded-For (the ones further left are the
    client's own claims)."""
    hops = get_settings().forwarded_for_hops
    if hops <= 0 or not forwarded_for:
        return connected
    entries = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
    return entries[-hops] if len(entries) >= hops else (entries[0] if entries else connected)


def _address_key(address: str | None) -> str:
    return f"address:{address or UNKNOWN_ADDRESS}"[:_MAX_KEY_CHARS]


def _account_key(username: str, address: str | None) -> str:
    return f"account:{username.strip().lower()}|{address or UNKNOWN_ADDRESS}"[:_MAX_KEY_CHARS]


def _limits(username: str, address: str | None) -> dict[str, int]:
    """Each key with the failures it allows before waits begin."""
    settings = get_settings()
    return {
        _address_key(address): settings.login_address_max_failures,
        _account_key(username, address): settings.login_max_failures,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def wait_message(seconds: int) -> str:
    wait = f"{math.ceil(seconds / 60)} minutes" if seconds >= 90 else f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"Too many failed sign-in attempts. Wait {wait} before trying again."


def seconds_to_wait(*, username: str, address: str | None) -> int:
    """How long sign-ins as `username` from `address` must wait (0: go ahead). Read-only."""
    with session_scope() as session:
        until = session.scalar(
            select(SignInThrottle.blocked_until)
            .where(SignInThrottle.key.in_(list(_limits(username, address))))
            .order_by(SignInThrottle.blocked_until.desc().nulls_last())
            .limit(1)
        )
    if until is None:
        return 0
    return max(0, math.ceil((until - _now()).total_seconds()))


def record_failure(session: Session, *, username: str, address: str | None) -> int:
    """Count one wrong password under both keys and return the wait it imposes now (0: none).

    Does not commit. Counts start again once a key has been quiet for
    settings.login_lockout_minutes. Old rows are removed on the way.
    """
    settings = get_settings()
    longest = settings.login_lockout_minutes * 60
    now = _now()
    quiet_since = now - timedelta(seconds=longest)
    session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.last_failure_at < now - timedelta(days=1),
            (SignInThrottle.blocked_until.is_(None)) | (SignInThrottle.blocked_until < now),
        )
    )
    wait = 0
    for key, free in _limits(username, address).items():
        row = session.scalar(select(SignInThrottle).where(SignInThrottle.key == key).with_for_update())
        if row is None:
            session.execute(pg_insert(SignInThrottle).values(key=key, failures=0).on_conflict_do_nothing())
            row = session.scalar(select(SignInThrottle).where(SignInThrottle.key == key).with_for_update())
            assert row is not None
        still_blocked = row.blocked_until is not None and row.blocked_until > now
        if row.last_failure_at < quiet_since and not still_blocked:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        over = row.failures - free
        if over > 0:
            seconds = min(2 ** (over - 1), longest)
            row.blocked_until = now + timedelta(seconds=seconds)
            wait = max(wait, seconds)
            if over == 1:
                log.warning("sign-in throttle: %s passed %s failures", key, free)
    return wait


def clear_account(session: Session, *, username: str, address: str | None = None) -> None:
    """Forget the failures of `username` at `address` (a successful sign-in there), or at
    every address (an admin's unlock). Does not commit. The address's own count stays: a
    valid account must not reset the count of an address trying others."""
    prefix = f"account:{username.strip().lower()}|"
    if address is not None:
        session.execute(delete(SignInThrottle).where(SignInThrottle.key == _account_key(username, address)))
    else:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        session.execute(delete(SignInThrottle).where(SignInThrottle.key.like(f"{escaped}%", escape="\\")))
