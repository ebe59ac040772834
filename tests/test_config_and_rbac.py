"""Settings rules, the permission check, seeding, and the embedded services."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from core.access.rbac import ADMIN_ROLE, DEFAULT_ROLES, PERMISSIONS, Actor, require, seed_roles_and_permissions
from core.platform.config import Settings
from core.platform.db import session_scope
from core.platform.errors import PermissionDenied
from core.platform.models import Permission, Role, RolePermission

ROOT = Path(__file__).resolve().parent.parent


RANDOM_KEY = "Hq3vT0b9-xWk2LmZrP7sYd1FgNc4Ue6JaQoViR8tBhE"  # secrets.token_urlsafe(32)


def test_production_refuses_missing_cookie_key() -> None:
    with pytest.raises(ValidationError, match="QUORUM_COOKIE_KEY"):
        Settings(environment="production", cookie_key=None, admin_password="Vq8-lantern-orbit")


def test_production_refuses_missing_admin_password() -> None:
    with pytest.raises(ValidationError, match="QUORUM_ADMIN_PASSWORD"):
        Settings(environment="production", cookie_key=RANDOM_KEY, admin_password=None)


def test_production_accepts_real_secrets() -> None:
    settings = Settings(environment="production", cookie_key=RANDOM_KEY, admin_password="Vq8-lantern-orbit")
    assert settings.environment == "production"
    assert settings.cookie_signing_key == RANDOM_KEY.encode()


def test_database_url_gets_psycopg_driver() -> None:
    assert Settings(database_url="postgresql://u:p@h/db").database_url == "postgresql+psycopg://u:p@h/db"
    assert Settings(database_url="postgres://u:p@h/db").database_url == "postgresql+psycopg://u:p@h/db"
    with pytest.raises(ValidationError, match="PostgreSQL URL"):
        Settings(database_url="mysql://u:p@h/db")


def test_no_api_key_means_offline() -> None:
    assert Settings(openai_api_key="").offline
    assert not Settings(openai_api_key="sk-test").offline


def test_require_refuses_missing_permission(member: Actor) -> None:
    with pytest.raises(PermissionDenied, match="manage_users"):
        require(member, "manage_users")
    require(member, "use_chat")  # granted to the user role


def test_protected_service_refuses_unprivileged_user(member: Actor) -> None:
    """A service called directly, with no page in between, still checks the permission."""
    from core.ai.usage import summarize_usage

    with pytest.raises(PermissionDenied):
        summarize_usage(actor=member)


def test_seed_is_idempotent(database: str) -> None:
    with session_scope() as session:
        seed_roles_and_permissions(session)
        seed_roles_and_permissions(session)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Permission)) == len(PERMISSIONS)
        admin_id = session.scalar(select(Role.id).where(Role.name == ADMIN_ROLE))
        granted = session.scalar(
            select(func.count()).select_from(RolePermission).where(RolePermission.role_id == admin_id)
        )
        assert granted == len(PERMISSIONS)
        names = set(session.scalars(select(Role.name)))
    assert set(DEFAULT_ROLES) <= names


def test_cli_create_user_and_migrate(database: str) -> None:
    from tests.conftest import unique

    username = unique("cli")
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "create-user", username, "--email", f"{username}@example.com",
         "--role", "user", "--password", "pass-word-42"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Created user {username!r}" in result.stdout
    again = subprocess.run(
        [sys.executable, "-m", "core.cli", "create-user", username, "--email", f"{username}@example.com",
         "--password", "pass-word-42"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 2
    assert "taken" in again.stderr


def test_embedded_postgres_keeps_data_across_restart(tmp_path: Path) -> None:
    """A second process on the same data folder sees what the first one wrote."""
    script = (
        "import sys;from sqlalchemy import create_engine, text;"
        "from core.platform.config import Settings;from core.platform.embedded import database_url;"
        "e=create_engine(database_url(Settings(data_dir=sys.argv[1])));"
        "c=e.connect();c.execute(text('CREATE TABLE IF NOT EXISTS t (v int)'));"
        "c.execute(text('INSERT INTO t VALUES (1)'));c.commit();"
        "print(c.execute(text('SELECT count(*) FROM t')).scalar())"
    )
    counts = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        counts.append(int(out.stdout.strip().splitlines()[-1]))
    assert counts == [1, 2]


def test_embedded_redis_persists(tmp_path: Path) -> None:
    import socket

    import redis

    from core.platform.embedded import redis_url, stop_embedded_redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(data_dir=tmp_path, embedded_redis_port=port)
    redis.Redis.from_url(redis_url(settings)).set("kept", "yes")
    stop_embedded_redis(settings)
    assert redis.Redis.from_url(redis_url(settings)).get("kept") == b"yes"
    stop_embedded_redis(settings)


def _folder_redis_url(data_dir: str, port: int, ready: Any, urls: Any) -> None:
    from core.platform.embedded import redis_url

    ready.wait()  # all ask at the same moment
    urls.put(redis_url(Settings(data_dir=Path(data_dir), embedded_redis_port=port)))


def test_processes_starting_together_share_one_embedded_redis(tmp_path: Path) -> None:
    """The CLI's ingest processes ask for the folder's Redis at once: one server, not one each
    (with the usual port taken, each had started its own on a free port, and all but the one
    in the folder's port file were left listening: three in a benchmark run)."""
    import multiprocessing
    import socket

    import psutil

    from core.platform.embedded import stop_embedded_redis

    taken = socket.socket()  # the configured port is someone else's: each must pick a free one
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    context = multiprocessing.get_context("fork")
    ready, urls = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_folder_redis_url, args=(str(tmp_path), port, ready, urls)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    folder = (tmp_path / "redis").resolve()

    def servers() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["name"]):
            with contextlib.suppress(psutil.Error):
                if "redis-server" in (process.info["name"] or "") and Path(process.cwd()) == folder:
                    found.append(process)
        return found

    try:
        assert len({urls.get(timeout=10) for _ in processes}) == 1
        assert len(servers()) == 1
    finally:
        taken.close()
        stop_embedded_redis(Settings(data_dir=tmp_path, embedded_redis_port=port))
        for stray in servers():
            stray.kill()
