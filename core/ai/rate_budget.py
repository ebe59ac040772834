"""How many requests and tokens this process may send an API now, from the limits it reports.

OpenAI (and compatible gateways) report their rate limits on every reply:
x-ratelimit-remaining-requests / -tokens and x-ratelimit-reset-requests / -tokens ("1s",
"6m0s", "20ms"). RateBudget keeps several requests in flight while those budgets last and
holds the next request until its window refills, instead of sending it to be refused with
429. Until a first reply has reported the limits, one request at a time (a probe).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Reset times are rounded by the server and the clocks differ by a round trip: wait a little longer.
_RESET_MARGIN_SECONDS = 0.05


def parse_reset(value: str | None) -> float | None:
    """Seconds in an x-ratelimit-reset-* value ("1s", "6m0s", "20ms", "1h2m3.5s"); None if unreadable."""
    if not value:
        return None
    parts = _DURATION.findall(value.strip())
    if not parts or "".join(number + unit for number, unit in parts) != value.strip():
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _integer(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class RateBudget:
    """Requests in flight, and remaining request/token budgets, shared by a process's threads. Thread-safe."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self._condition = threading.Condition()
        self._in_flight = 0
        self._reported = False  # a reply has come back (with or without limits)
        self._requests: int | None = None  # remaining in the server's current window; None = unknown
        self._tokens: int | None = None
        self._request_limit: int | None = None  # a full window's budgets, as last reported
        self._token_limit: int | None = None
        self._requests_reset = 0.0  # time.monotonic() when the request budget refills
        self._tokens_reset = 0.0

    @property
    def token_limit(self) -> int | None:
        """A whole window's token budget, as the server last reported it; None until it has."""
        with self._condition:
            return self._token_limit

    @contextmanager
    def spend(self, tokens: int) -> Iterator[None]:
        """Wait until a request of `tokens` fits the budgets, then hold its slot while it runs."""
        with self._condition:
            while (wait := self._wait_for(tokens)) is not None:
                self._condition.wait(timeout=wait)
            self._in_flight += 1
            if self._requests is not None:
                self._requests -= 1
            if self._tokens is not None:
                self._tokens -= tokens
        try:
            yield
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify_all()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the budgets a reply reported (any reply, 429s included)."""
        now = time.monotonic()
        remaining_requests = _integer(headers.get("x-ratelimit-remaining-requests"))
        remaining_tokens = _integer(headers.get("x-ratelimit-remaining-tokens"))
        reset_requests = parse_reset(headers.get("x-ratelimit-reset-requests"))
        reset_tokens = parse_reset(headers.get("x-ratelimit-reset-tokens"))
        with self._condition:
            self._reported = True
            if remaining_requests is not None and reset_requests is not None:
                # Requests sent after this reply left are already counted here, not there.
                self._requests = (
                    remaining_requests if self._requests is None else min(self._requests, remaining_requests)
                )
                self._requests_reset = now + reset_requests + _RESET_MARGIN_SECONDS
                self._request_limit = _integer(headers.get("x-ratelimit-limit-requests")) or self._request_limit
            if remaining_tokens is not None and reset_tokens is not None:
                self._tokens = remaining_tokens if self._tokens is None else min(self._tokens, remaining_tokens)
                self._tokens_reset = now + reset_tokens + _RESET_MARGIN_SECONDS
                self._token_limit = _integer(headers.get("x-ratelimit-limit-tokens")) or self._token_limit
            self._condition.notify_all()

    def _wait_for(self, tokens: int) -> float | None:
        """Seconds to wait before a request of `tokens` may go, or None to send it now."""
        now = time.monotonic()
        if self._requests is not None and now >= self._requests_reset:
            self._requests = self._request_limit  # the window refilled
            self._requests_reset = now + 60.0  # until a reply says when this one ends
        if self._tokens is not None and now >= self._tokens_reset:
            self._tokens = self._token_limit
            self._tokens_reset = now + 60.0
        if self._in_flight >= (self.max_in_flight if self._reported else 1):
            return 1.0  # woken when one finishes
        if self._requests is not None and self._requests < 1:
            return max(self._requests_reset - now, 0.001)
        # A request larger than a whole window's tokens could never fit: send it, let the API decide.
        oversized = self._token_limit is not None and tokens > self._token_limit
        if self._tokens is not None and self._tokens < tokens and not oversized:
            return max(self._tokens_reset - now, 0.001)
        return None
