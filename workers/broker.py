"""Dramatiq's broker, set up before any actor is declared (Dramatiq's own rule)."""

from __future__ import annotations

import logging

from core.platform.queue import get_broker

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

broker = get_broker()
