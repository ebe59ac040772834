"""The rules every change to users and roles obeys, and the row loaders they share.

Every admin function checks the actor's permission first, owns its transaction and writes
one audit row (core.access.audit) in that same transaction.

- Lock-out protection. A change to users or roles that would leave no active user holding
  both manage_users and manage_roles is refused (Conflict) and rolled back. The check
  reads the state after the change, inside its transaction, under a transaction-level
  advisory lock, so two admins demoting each other at the same moment cannot both win.
- Nobody may disable or delete themselves.
- Disabling a user or resetting their password signs out every browser they are signed in
  on (core.access.sessions); deleting them deletes their sessions with them.
- No privilege escalation: an actor can only give out (by role assignment or matrix edit)
  permissions they hold, can only act on (reset, disable, delete, re-role, unlock) users whose
  permissions are a subset of their own, and can only take permissions away from a role
  whose grants are a subset of their own. Seeded admins hold everything, so they never hit it.
- Built-in roles ("admin", "user") are recreated at every start, so they cannot be deleted
  or renamed; the admin role always holds every permission, so its row of the matrix is fixed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from core.access.rbac import Actor, permissions_of_role
from core.platform.errors import Conflict, NotFound, PermissionDenied
from core.platform.models import Permission, Role, RolePermission, User

# The permissions someone must keep so the system can still be administered.
ADMINISTRATION = ("manage_users", "manage_roles")


_LOCKOUT_LOCK_KEY = 7_146_001  # pg_advisory_xact_lock id serialising lock-out checks


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


def guard_grant(actor: Actor, permissions: Iterable[str], what: str) -> None:
    missing = sorted(set(permissions) - actor.permissions)
    if missing:
        raise PermissionDenied(f"You cannot {what}: it grants permissions you do not hold ({', '.join(missing)}).")


def guard_role_change(actor: Actor, granted: Iterable[str], role_name: str) -> None:
    """Changing what a role grants demotes (or promotes) everyone holding it: allowed only
    when the actor holds every permission the role grants now, as for re-roling a user."""
    missing = sorted(set(granted) - actor.permissions)
    if missing:
        raise PermissionDenied(
            f"You cannot change the role {role_name!r}: it grants permissions you do not hold ({', '.join(missing)})."
        )


def guard_target(session: Session, actor: Actor, user: User, what: str) -> None:
    missing = sorted(permissions_of_role(session, user.role_id) - actor.permissions)
    if missing:
        raise PermissionDenied(
            f"You cannot {what} {user.username}: they hold permissions you do not hold ({', '.join(missing)})."
        )


def load_user(session: Session, user_id: int, *, lock: bool = True) -> User:
    statement = select(User).where(User.id == user_id)
    if lock:
        statement = statement.with_for_update(of=User)
    user = session.scalar(statement)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def load_role(session: Session, role_id: int, *, lock: bool = True) -> Role:
    statement = select(Role).where(Role.id == role_id)
    if lock:
        statement = statement.with_for_update()
    role = session.scalar(statement)
    if role is None:
        raise NotFound(f"Role {role_id} does not exist.")
    return role
