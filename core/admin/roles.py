"""Roles and the role x permission matrix. Rules every change obeys: core.admin.safeguards."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.access.audit import record_audit
from core.access.rbac import ADMIN_ROLE, PERMISSIONS, USER_ROLE, Actor, permissions_of_role, require
from core.admin.safeguards import ensure_administrable, guard_grant, guard_role_change, load_role
from core.platform.db import session_scope
from core.platform.errors import Conflict, InvalidInput
from core.platform.models import Permission, Role, RolePermission, User

BUILT_IN_ROLES = frozenset({ADMIN_ROLE, USER_ROLE})


_ROLE_NAME_MAX = 64


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
    guard_grant(actor, wanted, "create this role")
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
        role = load_role(session, role_id)
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
        role = load_role(session, role_id)
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
            role = load_role(session, role_id)
            have = permissions_of_role(session, role.id)
            if wanted == have:
                continue
            if role.name == ADMIN_ROLE:
                raise InvalidInput(
                    "The admin role always holds every permission (it is restored at every start). "
                    "Create another role for a narrower set."
                )
            guard_grant(actor, wanted - have, f"change the role {role.name!r}")
            if have - wanted:
                guard_role_change(actor, have, role.name)
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
