"""The audit log: who did what to which thing, and when.

Every admin action and every deletion writes one row through `record_audit`, inside the
transaction of the change it records, so the change and its audit row commit together
or not at all. Rows are never updated or deleted by the application.

Action names are "<thing>.<verb>" in lower case: user.create, user.role_change,
user.disable, user.enable, user.password_reset, user.unlock, user.delete, role.create,
role.rename, role.delete, role.permissions_set, feedback.review, job.retry,
job.requeue_stale, job.fail_stale, document.delete, recording.delete, audit_log.export,
feedback.export; and signing in: auth.sign_in, auth.sign_in_refused, auth.sign_out,
user.provision, user.link_identity, user.approve, user.reject, user.role_sync.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session

from core.access.rbac import Actor, require
from core.platform.db import session_scope
from core.platform.models import AuditLog
from core.platform.tabular import to_csv_bytes, to_xlsx_bytes

log = logging.getLogger(__name__)

SYSTEM_ACTOR_NAME = "(system)"
DEFAULT_LIMIT = 1000
EXPORT_LIMIT = 100_000


@dataclass(frozen=True)
class AuditEntry:
    """One audit row as the admin page and the exports show it."""

    id: int
    created_at: datetime
    actor_id: int | None
    actor_username: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditFilters:
    """What to show; every field left None matches everything.

    since/until are UTC days, both inclusive. text matches the target id or the details
    (case-insensitive substring).
    """

    actor_username: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: date | None = None
    until: date | None = None
    text: str | None = None
    limit: int = DEFAULT_LIMIT
    exclude: tuple[str, ...] = field(default_factory=tuple)  # action names to leave out


def record_audit(
    session: Session,
    *,
    actor: Actor | None,
    action: str,
    target_type: str,
    target_id: int | str | None,
    details: dict[str, Any] | None = None,
    actor_username: str | None = None,
) -> None:
    """Add one audit row to `session`. Does not commit: call it inside the transaction of
    the change it records. `actor` None means the system did it (maintenance jobs), or
    someone not signed in whose claimed name is `actor_username` (a refused sign-in).

    `details` must be JSON-serialisable (ids, names, before/after values; never secrets).
    An action taken through the command line carries details["via"] = "cli".
    """
    if actor is not None and actor.via != "app":
        details = {**(details or {}), "via": actor.via}
    session.add(
        AuditLog(
            actor_id=actor.id if actor is not None else None,
            actor_username=actor.username if actor is not None else (actor_username or SYSTEM_ACTOR_NAME)[:64],
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=dict(details or {}),
        )
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(filters: AuditFilters) -> Select[AuditLog]:
    query = select(AuditLog)
    if filters.actor_username:
        query = query.where(func.lower(AuditLog.actor_username) == filters.actor_username.strip().lower())
    if filters.action:
        query = query.where(AuditLog.action == filters.action)
    if filters.target_type:
        query = query.where(AuditLog.target_type == filters.target_type)
    if filters.target_id:
        query = query.where(AuditLog.target_id == str(filters.target_id))
    if filters.since:
        query = query.where(AuditLog.created_at >= _day_start(filters.since))
    if filters.until:
        query = query.where(AuditLog.created_at < _day_start(filters.until + timedelta(days=1)))
    if filters.text:
        pattern = f"%{filters.text.strip()}%"
        query = query.where(AuditLog.target_id.ilike(pattern) | cast(AuditLog.details, Text).ilike(pattern))
    if filters.exclude:
        query = query.where(AuditLog.action.not_in(filters.exclude))
    return query.order_by(AuditLog.created_at.desc(), AuditLog.id.desc())


def _entry(row: AuditLog) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        created_at=row.created_at,
        actor_id=row.actor_id,
        actor_username=row.actor_username,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=dict(row.details or {}),
    )


def list_audit(*, actor: Actor, filters: AuditFilters | None = None) -> list[AuditEntry]:
    """Audit rows matching `filters`, newest first, at most filters.limit. Read-only.

    Raises PermissionDenied unless the actor holds view_audit_log.
    """
    require(actor, "view_audit_log")
    filters = filters or AuditFilters()
    with session_scope() as session:
        rows = session.scalars(_filtered(filters).limit(max(1, filters.limit)))
        return [_entry(row) for row in rows]


def audit_actions(*, actor: Actor) -> list[str]:
    """Distinct action names present in the log, for a filter select box. Read-only.

    Raises PermissionDenied unless the actor holds view_audit_log.
    """
    require(actor, "view_audit_log")
    with session_scope() as session:
        return list(session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))


AUDIT_COLUMNS = tuple(f.name for f in fields(AuditEntry))


def _export_rows(actor: Actor, filters: AuditFilters | None, export_format: str) -> list[dict[str, Any]]:
    require(actor, "view_audit_log")
    filters = filters or AuditFilters()
    with session_scope() as session:
        rows = [asdict(_entry(row)) for row in session.scalars(_filtered(filters).limit(EXPORT_LIMIT))]
        record_audit(
            session,
            actor=actor,
            action="audit_log.export",
            target_type="audit_log",
            target_id=None,
            details={"format": export_format, "rows": len(rows), "filters": _describe(filters)},
        )
    return rows


def _describe(filters: AuditFilters) -> dict[str, Any]:
    return {key: (value.isoformat() if isinstance(value, date) else value) for key, value in asdict(filters).items()}


def export_audit_csv(*, actor: Actor, filters: AuditFilters | None = None) -> bytes:
    """The filtered audit log as CSV bytes (up to 100,000 rows, newest first).

    Commits one audit row recording the export itself. Raises PermissionDenied unless the
    actor holds view_audit_log.
    """
    return to_csv_bytes(_export_rows(actor, filters, "csv"), AUDIT_COLUMNS)


def export_audit_xlsx(*, actor: Actor, filters: AuditFilters | None = None) -> bytes:
    """The filtered audit log as an .xlsx workbook (sheet "Audit log"), like export_audit_csv."""
    return to_xlsx_bytes(_export_rows(actor, filters, "xlsx"), AUDIT_COLUMNS, sheet_name="Audit log")
