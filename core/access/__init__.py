"""Access: accounts and sign-in rules, sessions, single sign-on, roles and permissions, the
audit log.

Pages and other packages use the names below; the modules behind them may move. Core
services import core.access.rbac and core.access.audit directly (they sit under everything).
"""

from core.access.accounts import change_own_password, has_password, record_sign_out, sign_in_with_password
from core.access.audit import AuditFilters, audit_actions, export_audit_csv, export_audit_xlsx, list_audit
from core.access.oidc import (
    EXPIRED_MESSAGE,
    STREAMLIT_PROVIDER,
    OidcIdentity,
    identity_from_claims,
    sign_in_expired,
    sign_in_with_oidc,
)
from core.access.rbac import ADMIN_ROLE, PERMISSIONS, Actor
from core.access.sessions import (
    StartedSession,
    check_session,
    end_session,
    open_session,
    open_session_count,
    sign_out_everywhere,
)
from core.access.sign_in_throttle import client_address

__all__ = [
    "ADMIN_ROLE",
    "EXPIRED_MESSAGE",
    "PERMISSIONS",
    "STREAMLIT_PROVIDER",
    "Actor",
    "AuditFilters",
    "OidcIdentity",
    "StartedSession",
    "audit_actions",
    "change_own_password",
    "check_session",
    "client_address",
    "end_session",
    "export_audit_csv",
    "export_audit_xlsx",
    "has_password",
    "identity_from_claims",
    "list_audit",
    "open_session",
    "open_session_count",
    "record_sign_out",
    "sign_in_expired",
    "sign_in_with_oidc",
    "sign_in_with_password",
    "sign_out_everywhere",
]
