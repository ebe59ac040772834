"""The embedded PostgreSQL runs with settings sized for its machine, from its first start."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.platform.config import Settings
from core.platform.db import get_engine
from core.platform.embedded import CONFIG_FILE, embedded_postgres_settings


def test_the_session_server_runs_with_the_sized_settings_from_its_first_start(database: str, data_dir) -> None:  # type: ignore[no-untyped-def]
    wanted = embedded_postgres_settings()
    with get_engine().connect() as connection:

        def bytes_of(value: str) -> int:
            return int(connection.scalar(text("SELECT pg_size_bytes(:value)"), {"value": value}))

        for name in ("shared_buffers", "maintenance_work_mem", "max_wal_size", "effective_cache_size"):
            current = connection.scalar(text("SELECT current_setting(:name)"), {"name": name})
            assert bytes_of(current) == bytes_of(wanted[name]), name
        workers = connection.scalar(text("SELECT current_setting('max_parallel_maintenance_workers')"))
        assert workers == wanted["max_parallel_maintenance_workers"]
        # Faster, never less safe: durability stays at PostgreSQL's defaults.
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            assert connection.scalar(text("SELECT current_setting(:name)"), {"name": name}) == "on", name
    assert "shared_buffers" in (data_dir / "postgres" / CONFIG_FILE).read_text()


def test_sizes_follow_the_machine_unless_set() -> None:
    sized = embedded_postgres_settings(Settings())
    assert 128 <= int(sized["shared_buffers"].removesuffix("MB")) <= 2048
    assert int(sized["maintenance_work_mem"].removesuffix("MB")) >= 64
    chosen = embedded_postgres_settings(
        Settings(embedded_pg_shared_buffers_mb=512, embedded_pg_maintenance_work_mem_mb=256)
    )
    assert chosen["shared_buffers"] == "512MB"
    assert chosen["maintenance_work_mem"] == "256MB"
    assert chosen["autovacuum_work_mem"] == "256MB"


def test_a_setting_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="embedded_pg_shared_buffers_mb"):
        Settings(embedded_pg_shared_buffers_mb=1)
