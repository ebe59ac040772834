"""Single sign-on with OpenID Connect: Streamlit's [auth] settings, and who a verified identity is.

Streamlit runs the protocol (st.login, Authlib: discovery, PKCE, state, nonce, ID token
signature and audience checks) from an [auth] section in its secrets. Quorum writes that
section from its own settings when it starts the app (`streamlit_auth_secrets`), so the
two-command start keeps working and no secret lives in the repository.

After the provider signs someone in, `sign_in_with_oidc` maps the verified claims to a
Quorum user:

1. the user already linked to this (issuer, subject) pair, else
2. the user with the same verified email, which gets linked (never a duplicate), else
3. a new user, per QUORUM_OIDC_NEW_USERS: active at once, waiting for an admin's
   approval, or refused;

with the role from the QUORUM_OIDC_ROLES_CLAIM / QUORUM_OIDC_ROLE_MAP mapping when one is
set (re-applied at every sign-in, never leaving the system without an active admin), and
refusing deleted, disabled and unapproved users with a message saying why. Every sign-in,
provisioning, link, role change and refusal writes an audit row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.access.accounts import SignInCheck, actor_from_user, sign_in_refusal
from core.access.audit import record_audit
from core.platform.config import Settings, get_settings
from core.platform.db import session_scope
from core.platform.errors import Conflict
from core.platform.models import DeletedIdentity, Role, User

log = logging.getLogger(__name__)

# Streamlit's name for the provider section ([auth.quorum]); Streamlit forbids underscores.
STREAMLIT_PROVIDER = "quorum"
SECRETS_FILE_NAME = "secrets.toml"
_USERNAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_USERNAME_MAX = 64


# ---------------------------------------------------------------------------- Streamlit's settings


def streamlit_auth_secrets(settings: Settings) -> dict[str, Any] | None:
    """The [auth] secrets Streamlit's st.login needs, or None when single sign-on is off."""
    if not settings.oidc_enabled:
        return None
    # Its own key, derived from Quorum's: Streamlit signs its identity cookie with it.
    cookie_secret = hmac.new(settings.cookie_signing_key, b"streamlit-oidc-cookie", hashlib.sha256).hexdigest()
    client_kwargs = {"scope": settings.oidc_scopes}
    if settings.oidc_prompt:
        client_kwargs["prompt"] = settings.oidc_prompt
    return {
        "auth": {
            "redirect_uri": settings.oidc_redirect_url,
            "cookie_secret": cookie_secret,
            STREAMLIT_PROVIDER: {
                "client_id": settings.oidc_client_id,
                "client_secret": settings.oidc_client_secret,
                "server_metadata_url": settings.oidc_server_metadata_url,
                "client_kwargs": client_kwargs,
            },
        }
    }


def _toml(table: Mapping[str, Any], prefix: str = "") -> str:
    """TOML for nested tables of strings (JSON string escapes are valid TOML basic strings)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in table.items() if not isinstance(value, Mapping)]
    text = (f"[{prefix}]\n" if prefix and lines else "") + "".join(line + "\n" for line in lines)
    for key, value in table.items():
        if isinstance(value, Mapping):
            text += "\n" + _toml(value, f"{prefix}.{key}" if prefix else key)
    return text


def secrets_path(settings: Settings) -> Path:
    return settings.data_dir / "streamlit" / SECRETS_FILE_NAME


def write_streamlit_secrets(settings: Settings) -> Path | None:
    """Write Streamlit's [auth] secrets under the data folder (owner-only) and return the
    path, or remove a stale file and return None when single sign-on is off. Idempotent."""
    path = secrets_path(settings)
    secrets = streamlit_auth_secrets(settings)
    if secrets is None:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text("# Written by Quorum from QUORUM_OIDC_* at every start; edits are lost.\n" + _toml(secrets))
    temporary.replace(path)
    return path


def streamlit_secrets_flags(settings: Settings, app_root: Path) -> list[str]:
    """`streamlit run` flags that add Quorum's [auth] secrets to Streamlit's usual secrets
    files (writing them first), or [] when single sign-on is off."""
    path = write_streamlit_secrets(settings)
    if path is None:
        return []
    files = [Path.home() / ".streamlit" / SECRETS_FILE_NAME, app_root / ".streamlit" / SECRETS_FILE_NAME, path]
    return [flag for file in files for flag in ("--secrets.files", str(file))]


# ---------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class OidcIdentity:
    """What the identity provider vouched for (the claims of a verified ID token)."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    name: str
    preferred_username: str
    claims: Mapping[str, Any]
    issued_at: datetime | None = None  # when the provider signed them in (the ID token's iat)


def identity_from_claims(claims: Mapping[str, Any]) -> OidcIdentity | None:
    """The identity in `claims` (st.user), or None when they lack an issuer or subject."""
    issuer = str(claims.get("iss") or "").strip()
    subject = str(claims.get("sub") or "").strip()
    if not issuer or not subject:
        return None
    verified = claims.get("email_verified")
    iat = claims.get("iat")
    issued_at = datetime.fromtimestamp(iat, UTC) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
    name = str(claims.get("name") or " ".join(str(claims.get(k) or "") for k in ("given_name", "family_name")))
    return OidcIdentity(
        issuer=issuer,
        subject=subject,
        email=str(claims.get("email") or "").strip().lower(),
        email_verified=verified is True or str(verified).lower() == "true",
        name=name.strip(),
        preferred_username=str(claims.get("preferred_username") or "").strip(),
        claims=dict(claims),
        issued_at=issued_at,
    )


def _trusted_email(identity: OidcIdentity, settings: Settings) -> str | None:
    if identity.email and "@" in identity.email and (identity.email_verified or settings.oidc_trust_unverified_email):
        return identity.email
    return None


def claim_values(claims: Mapping[str, Any], claim: str) -> list[str]:
    """Values of a claim given by name or dotted path (Keycloak: realm_access.roles)."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return []


def mapped_role(identity: OidcIdentity, settings: Settings) -> str | None:
    """The Quorum role the claim mapping gives, the default role when nothing maps, None
    when the default role is "" (no access). Without a mapping: the default role."""
    if settings.oidc_roles_claim and settings.oidc_role_map:
        held = set(claim_values(identity.claims, settings.oidc_roles_claim))
        for claim_value, role_name in settings.oidc_role_map.items():
            if claim_value in held:
                return role_name
    return settings.oidc_default_role or None


def _role_mapping_on(settings: Settings) -> bool:
    return bool(settings.oidc_roles_claim and settings.oidc_role_map)


def _free_username(session: Session, identity: OidcIdentity, email: str | None) -> str:
    wanted = identity.preferred_username or (email or "").split("@")[0] or "user"
    base = _USERNAME_UNSAFE.sub("-", wanted.split("@")[0]).strip(".-_")[: _USERNAME_MAX - 4] or "user"
    taken = {
        name.lower()
        for name in session.scalars(select(User.username).where(func.lower(User.username).like(f"{base.lower()}%")))
    }
    candidate, number = base, 1
    while candidate.lower() in taken:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _audit_identity(identity: OidcIdentity, settings: Settings) -> dict[str, Any]:
    return {
        "method": "oidc",
        "provider": settings.oidc_provider_label,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "email": identity.email,
    }


def _refuse(
    session: Session,
    identity: OidcIdentity,
    settings: Settings,
    *,
    reason: str,
    message: str,
    user: User | None = None,
) -> SignInCheck:
    record_audit(
        session,
        actor=actor_from_user(session, user) if user is not None else None,
        actor_username=identity.email or identity.subject,
        action="auth.sign_in_refused",
        target_type="user",
        target_id=user.id if user is not None else None,
        details={**_audit_identity(identity, settings), "reason": reason},
    )
    log.info("single sign-on refused for %s: %s", identity.email or identity.subject, reason)
    return SignInCheck(None, message)


def _deleted(session: Session, identity: OidcIdentity, email: str | None) -> bool:
    same_subject = (DeletedIdentity.oidc_issuer == identity.issuer) & (DeletedIdentity.oidc_subject == identity.subject)
    condition = or_(same_subject, DeletedIdentity.email == email) if email else same_subject
    return session.scalar(select(DeletedIdentity.id).where(condition).limit(1)) is not None


def _provision(session: Session, identity: OidcIdentity, settings: Settings, email: str, role: Role) -> User:
    user = User(
        username=_free_username(session, identity, email),
        email=email,
        display_name=(identity.name or identity.preferred_username or email.split("@")[0])[:128],
        password_hash="",
        role_id=role.id,
        is_active=settings.oidc_new_users == "active",
        approval_pending=settings.oidc_new_users == "approval",
        oidc_issuer=identity.issuer,
        oidc_subject=identity.subject,
    )
    session.add(user)
    session.flush()
    record_audit(
        session,
        actor=actor_from_user(session, user),
        action="user.provision",
        target_type="user",
        target_id=user.id,
        details={
            **_audit_identity(identity, settings),
            "username": user.username,
            "role": role.name,
            "waits_for_approval": user.approval_pending,
        },
    )
    return user


def _sync_role(session: Session, user: User, role: Role, identity: OidcIdentity, settings: Settings) -> None:
    """Give `user` the mapped role unless that would leave nobody able to administer."""
    from core.admin.safeguards import ensure_administrable  # admin builds on access, not the reverse

    if user.role_id == role.id:
        return
    before = user.role.name
    savepoint = session.begin_nested()
    user.role_id = role.id
    details: dict[str, object] = {"username": user.username, "from": before, "to": role.name}
    try:
        ensure_administrable(session)
    except Conflict:
        savepoint.rollback()
        log.warning("kept %s's role %s: %s would leave no active admin", user.username, before, role.name)
        details |= {"applied": False, "reason": "it would leave no active user able to manage users and roles"}
    else:
        savepoint.commit()
        details |= {"applied": True, "claim": settings.oidc_roles_claim}
    session.refresh(user)
    record_audit(
        session,
        actor=actor_from_user(session, user),
        action="user.role_sync",
        target_type="user",
        target_id=user.id,
        details=details,
    )


def _same_sign_in(user: User, identity: OidcIdentity) -> bool:
    return (
        identity.issued_at is not None
        and user.last_login_method == "oidc"
        and user.last_login_at is not None
        and user.last_login_at >= identity.issued_at
    )


def sign_in_expired(identity: OidcIdentity, settings: Settings) -> bool:
    """True when the provider signed them in longer ago than a Quorum sign-in lasts."""
    if identity.issued_at is None or settings.cookie_expiry_days <= 0:
        return False
    return datetime.now(UTC) - identity.issued_at > timedelta(days=settings.cookie_expiry_days)


EXPIRED_MESSAGE = "Your sign-in has expired. Sign in again."


def sign_in_with_oidc(identity: OidcIdentity) -> SignInCheck:
    """Sign in someone the identity provider has verified: find, link or provision their
    user, apply the role mapping, and decide. Commits (with audit rows) whether it admits
    or refuses; never raises for a refusal, which comes back as its message.

    A browser session that comes back with the same provider sign-in (a reload: its ID
    token is not newer than the user's last sign-in) is only checked, not signed in again.
    """
    settings = get_settings()
    label = settings.oidc_provider_label
    if sign_in_expired(identity, settings):
        return SignInCheck(None, EXPIRED_MESSAGE)
    with session_scope() as session:
        email = _trusted_email(identity, settings)
        user = session.scalar(
            select(User)
            .where(User.oidc_issuer == identity.issuer, User.oidc_subject == identity.subject)
            .with_for_update(of=User)
        )
        if user is not None and _same_sign_in(user, identity):
            refusal = sign_in_refusal(user, method="oidc")
            return SignInCheck(None, refusal.message) if refusal else SignInCheck(actor_from_user(session, user))
        if user is None and _deleted(session, identity, email):
            return _refuse(
                session, identity, settings, reason="deleted",
                message="Your Quorum account was deleted by an admin. Ask an admin if you need access again.",
            )  # fmt: skip
        if user is None and email:
            user = session.scalar(select(User).where(User.email == email).with_for_update(of=User))
            if user is not None:
                if user.oidc_subject is not None:
                    return _refuse(
                        session, identity, settings, reason="email linked to another identity", user=user,
                        message=f"The Quorum account for {email} is linked to another {label} account. "
                        "Ask an admin to check it.",
                    )  # fmt: skip
                user.oidc_issuer, user.oidc_subject = identity.issuer, identity.subject
                record_audit(
                    session,
                    actor=actor_from_user(session, user),
                    action="user.link_identity",
                    target_type="user",
                    target_id=user.id,
                    details={**_audit_identity(identity, settings), "username": user.username},
                )
        role_name = mapped_role(identity, settings)
        role = session.scalar(select(Role).where(Role.name == role_name)) if role_name else None
        if role_name and role is None:
            log.error("QUORUM_OIDC role %r does not exist in Quorum; create it or fix the setting", role_name)
        if user is None:
            if not email:
                return _refuse(
                    session, identity, settings, reason="no verified email",
                    message=f"{label} did not confirm an email address for you, so Quorum cannot make you an "
                    "account. Ask an admin.",
                )  # fmt: skip
            if settings.oidc_new_users == "refuse":
                return _refuse(
                    session, identity, settings, reason="unknown user",
                    message=f"There is no Quorum account for {email}. Ask an admin to create one.",
                )  # fmt: skip
            if role is None:
                return _refuse(
                    session, identity, settings, reason="no mapped role",
                    message=f"Your {label} account is not in a group that may use Quorum. Ask an admin.",
                )  # fmt: skip
            user = _provision(session, identity, settings, email, role)
        elif _role_mapping_on(settings):
            if role is None:
                return _refuse(
                    session, identity, settings, reason="no mapped role", user=user,
                    message=f"Your {label} account is not in a group that may use Quorum. Ask an admin.",
                )  # fmt: skip
            _sync_role(session, user, role, identity, settings)
        refusal = sign_in_refusal(user, method="oidc")
        if refusal is not None:
            return _refuse(session, identity, settings, reason=refusal.reason, message=refusal.message, user=user)
        user.last_login_at = func.now()
        user.last_login_method = "oidc"
        record_audit(
            session,
            actor=actor_from_user(session, user),
            action="auth.sign_in",
            target_type="user",
            target_id=user.id,
            details=_audit_identity(identity, settings),
        )
        session.flush()
        session.refresh(user)
        return SignInCheck(actor_from_user(session, user))
