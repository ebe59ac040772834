"""Enqueue background work by actor name, so core never imports workers.

Call only after the row the job works on is committed: a worker may pick the message up
before this function returns.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from core.platform.config import get_settings
from core.platform.embedded import redis_url

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "default"
AUDIO_QUEUE = "audio"


@lru_cache(maxsize=1)
def get_broker() -> RedisBroker:
    """The process's Dramatiq broker on Redis (embedded Redis started when unconfigured)."""
    settings = get_settings()
    broker = RedisBroker(
        url=redis_url(),
        heartbeat_timeout=int(settings.broker_heartbeat_timeout_seconds * 1000),
        maintenance_chance=settings.broker_maintenance_chance,
    )
    dramatiq.set_broker(broker)
    return broker


def enqueue(actor_name: str, *args: Any, queue_name: str = DEFAULT_QUEUE, delay_ms: int | None = None) -> str:
    """Send one message to `actor_name` with JSON-primitive args. Returns the message id."""
    broker = get_broker()
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options={}
    )
    sent = broker.enqueue(message, delay=delay_ms)
    log.info("enqueued %s%r as %s", actor_name, args, sent.message_id)
    return sent.message_id


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue (ready plus delayed), read from Redis."""
    broker = get_broker()
    depths: dict[str, int] = {}
    for queue_name in (DEFAULT_QUEUE, AUDIO_QUEUE):
        depth = 0
        for name in (queue_name, f"{queue_name}.DQ"):
            depth += int(broker.client.llen(f"{broker.namespace}:{name}") or 0)
        depths[queue_name] = depth
    return depths
