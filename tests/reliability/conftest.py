"""Fixtures of the reliability tests: a Redis server of their own that every message they
cause goes to.

The session's Redis may have a live worker on it (the browser tests' app keeps one running),
which would race these tests for their jobs, and it holds other tests' leftover messages,
which these tests' workers must not run. So core.platform.queue.get_broker is pointed at a Redis
started here, on its own port and folder; it is emptied before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import core.platform.queue
from tests.reliability.processes import PrivateQueue, RedisServer


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("private-redis"))
    server.start()
    yield server
    if server.process is not None:
        server.stop()


@pytest.fixture
def private_queue(private_redis: RedisServer, database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateQueue]:
    """This test's enqueues go to the private Redis, emptied first."""
    if private_redis.process is None:  # a failed test left it stopped
        private_redis.start()
    private_redis.client().flushall()
    queue = PrivateQueue(private_redis)
    monkeypatch.setattr(core.platform.queue, "get_broker", lambda: queue.broker)
    yield queue
    queue.broker.client.close()
