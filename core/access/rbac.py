"""Roles and permissions: the catalogue, seeding, and the one `require` check.

Code checks permissions, never role names. Services call `require` before acting; the
navigation only mirrors these checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.platform.errors import PermissionDenied
from core.platform.models import Permission, Role, RolePermission

PERMISSIONS: dict[str, str] = {
    "ingest_documents": "Upload documents to the knowledge base",
    "read_documents": "See and download team documents, and search them",
    "delete_documents": "Delete documents and their chunks",
    "transcribe_audio": "Upload or record meeting audio for transcription",
    "read_transcripts": "Read transcripts and minutes",
    "export_transcripts": "Export transcripts and minutes",
    "use_chat": "Ask questions in the chat",
    "review_feedback": "Review answer feedback and corrections",
    "view_jobs": "Watch all jobs, queues and usage",
    "manage_users": "Create, edit, disable and unlock users",
    "delete_users": "Delete users",
    "manage_roles": "Create roles and edit the role x permission matrix",
    "view_audit_log": "Read and export the audit log",
}

ADMIN_ROLE = "admin"
USER_ROLE = "user"

DEFAULT_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    ADMIN_ROLE: ("Everything", frozenset(PERMISSIONS)),
    USER_ROLE: (
        "Team member: ingest, read, transcribe, chat, export",
        frozenset(
            {
                "ingest_documents",
                "read_documents",
                "transcribe_audio",
                "read_transcripts",
                "export_transcripts",
                "use_chat",
            }
        ),
    ),
}


@dataclass(frozen=True)
class Actor:
    """The signed-in user as services see it: ids and names, never an ORM row."""

    id: int
    username: str
    role: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    display_name: str = ""
    email: str = ""
    via: str = "app"  # "cli" when acting through core.cli (audit rows say so)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


def require(actor: Actor, permission: str) -> None:
    """Raise PermissionDenied unless the actor holds `permission`."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    if not actor.can(permission):
        label = PERMISSIONS[permission].lower()
        raise PermissionDenied(f"You do not have permission to {label[0].lower()}{label[1:]} ({permission}).")


def seed_roles_and_permissions(session: Session) -> None:
    """Create missing permissions and the default roles. Idempotent; does not commit.

    Existing roles keep the permissions an admin gave them, except that the admin role
    always receives every permission (so a new permission never locks admins out).
    """
    existing = {p.name: p for p in session.scalars(select(Permission))}
    for name, description in PERMISSIONS.items():
        if name not in existing:
            permission = Permission(name=name, description=description)
            session.add(permission)
            existing[name] = permission
    session.flush()

    roles = {r.name: r for r in session.scalars(select(Role))}
    for name, (description, granted) in DEFAULT_ROLES.items():
        role = roles.get(name)
        if role is None:
            role = Role(name=name, description=description)
            session.add(role)
            session.flush()
            wanted = granted
        elif name == ADMIN_ROLE:
            wanted = frozenset(PERMISSIONS)
        else:
            continue
        have = set(session.scalars(select(RolePermission.permission_id).where(RolePermission.role_id == role.id)))
        for permission_name in wanted:
            permission_id = existing[permission_name].id
            if permission_id not in have:
                session.add(RolePermission(role_id=role.id, permission_id=permission_id))
    session.flush()


def permissions_of_role(session: Session, role_id: int) -> frozenset[str]:
    """Names of the permissions a role grants. Read-only."""
    rows = session.scalars(
        select(Permission.name)
        .join(RolePermission, RolePermission.permission_id == Permission.id)
        .where(RolePermission.role_id == role_id)
    )
    return frozenset(rows)
