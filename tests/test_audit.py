"""The audit log: written with the change or not at all, filtered, exported."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import update

import core.admin as svc
from core.access.audit import (
    AuditFilters,
    audit_actions,
    export_audit_csv,
    export_audit_xlsx,
    list_audit,
    record_audit,
)
from core.access.rbac import USER_ROLE, Actor
from core.platform.db import session_scope
from core.platform.errors import Conflict, PermissionDenied
from core.platform.models import AuditLog, User
from tests.conftest import unique


def test_the_audit_row_commits_with_the_change_or_not_at_all(admin: Actor, member: Actor) -> None:
    marker = unique("marker")
    with pytest.raises(RuntimeError), session_scope() as session:
        session.execute(update(User).where(User.id == member.id).values(display_name=marker))
        record_audit(session, actor=admin, action="test.change", target_type="user", target_id=member.id, details={})
        raise RuntimeError("the change fails after the audit row was added")
    assert list_audit(actor=admin, filters=AuditFilters(action="test.change", target_id=str(member.id))) == []

    with session_scope() as session:
        session.execute(update(User).where(User.id == member.id).values(display_name=marker))
        record_audit(
            session, actor=admin, action="test.change", target_type="user", target_id=member.id, details={"to": marker}
        )
    (entry,) = list_audit(actor=admin, filters=AuditFilters(action="test.change", target_id=str(member.id)))
    assert (entry.actor_id, entry.actor_username, entry.target_type, entry.details) == (
        admin.id,
        admin.username,
        "user",
        {"to": marker},
    )
    assert abs(entry.created_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_refused_admin_action_leaves_no_audit_row(admin: Actor) -> None:
    with pytest.raises(Conflict):
        svc.set_user_active(actor=admin, user_id=admin.id, active=False)
    assert list_audit(actor=admin, filters=AuditFilters(target_type="user", target_id=str(admin.id))) == []


def test_filters_and_actions(admin: Actor, make_user: Callable[..., Actor]) -> None:
    target = make_user(USER_ROLE)
    svc.set_user_active(actor=admin, user_id=target.id, active=False)
    svc.set_user_active(actor=admin, user_id=target.id, active=True)
    svc.unlock_user(actor=admin, user_id=target.id)

    mine = AuditFilters(actor_username=admin.username.upper())  # case-insensitive
    assert [e.action for e in list_audit(actor=admin, filters=mine)] == ["user.unlock", "user.enable", "user.disable"]
    assert [
        e.action for e in list_audit(actor=admin, filters=AuditFilters(actor_username=admin.username, limit=1))
    ] == ["user.unlock"]
    by_action = list_audit(actor=admin, filters=AuditFilters(actor_username=admin.username, action="user.enable"))
    assert [e.target_id for e in by_action] == [str(target.id)]
    by_text = list_audit(actor=admin, filters=AuditFilters(text=target.username))
    assert {e.action for e in by_text} >= {"user.disable", "user.enable", "user.unlock"}
    today = datetime.now(UTC).date()
    assert (
        list_audit(actor=admin, filters=AuditFilters(actor_username=admin.username, until=today - timedelta(days=1)))
        == []
    )
    assert len(list_audit(actor=admin, filters=AuditFilters(actor_username=admin.username, since=today))) == 3
    assert {"user.disable", "user.enable", "user.unlock"} <= set(audit_actions(actor=admin))
    excluded = list_audit(actor=admin, filters=AuditFilters(actor_username=admin.username, exclude=("user.unlock",)))
    assert [e.action for e in excluded] == ["user.enable", "user.disable"]


def test_reading_and_exporting_need_view_audit_log(admin: Actor, member: Actor) -> None:
    for call in (
        lambda: list_audit(actor=member),
        lambda: audit_actions(actor=member),
        lambda: export_audit_csv(actor=member),
        lambda: export_audit_xlsx(actor=member),
    ):
        with pytest.raises(PermissionDenied):
            call()
    reader = Actor(id=member.id, username=member.username, role="auditor", permissions=frozenset({"view_audit_log"}))
    list_audit(actor=reader, filters=AuditFilters(limit=1))


def test_exports_open_and_are_themselves_audited(admin: Actor, member: Actor) -> None:
    svc.unlock_user(actor=admin, user_id=member.id)
    with session_scope() as session:
        record_audit(
            session,
            actor=admin,
            action="test.formula",
            target_type="user",
            target_id=member.id,
            details={"note": "=1+1"},
        )
    filters = AuditFilters(actor_username=admin.username)

    frame = pd.read_csv(io.BytesIO(export_audit_csv(actor=admin, filters=filters)))
    assert list(frame["action"]) == ["test.formula", "user.unlock"]
    assert list(frame.columns) == [
        "id",
        "created_at",
        "actor_id",
        "actor_username",
        "action",
        "target_type",
        "target_id",
        "details",
    ]
    assert '"note": "=1+1"' in frame["details"][0]

    sheet = load_workbook(io.BytesIO(export_audit_xlsx(actor=admin, filters=filters)))["Audit log"]
    values = list(sheet.iter_rows(min_row=2, values_only=True))
    # The CSV export was audited before the XLSX export read the log.
    assert [row[4] for row in values] == ["audit_log.export", "test.formula", "user.unlock"]
    assert isinstance(values[0][1], datetime)

    exports = list_audit(actor=admin, filters=AuditFilters(actor_username=admin.username, action="audit_log.export"))
    assert sorted(e.details["format"] for e in exports) == ["csv", "xlsx"]
    assert exports[0].details["filters"]["actor_username"] == admin.username


def test_system_actions_are_attributed_to_the_system(admin: Actor) -> None:
    target = unique("sys")
    with session_scope() as session:
        record_audit(session, actor=None, action="test.system", target_type="job", target_id=target)
    (entry,) = list_audit(actor=admin, filters=AuditFilters(target_id=target))
    assert (entry.actor_id, entry.actor_username) == (None, "(system)")
    with session_scope() as session:
        assert session.get(AuditLog, entry.id) is not None
