"""Made-up identity provider claims for the single sign-on tests."""

from __future__ import annotations

import uuid
from typing import Any

from core.access.oidc import OidcIdentity, identity_from_claims

ISSUER = "https://idp.example.test"


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def claims(
    email: str | None = None, *, verified: bool = True, subject: str | None = None, **more: Any
) -> dict[str, Any]:
    """ID token claims as st.user holds them; a fresh email and subject unless given."""
    return {
        "iss": ISSUER,
        "sub": subject or _unique("sub"),
        "email": email if email is not None else f"{_unique('sso')}@corp.example",
        "email_verified": verified,
        "name": "Ada Lovelace",
        **more,
    }


def identity(
    email: str | None = None, *, verified: bool = True, subject: str | None = None, **more: Any
) -> OidcIdentity:
    parsed = identity_from_claims(claims(email, verified=verified, subject=subject, **more))
    assert parsed is not None
    return parsed
