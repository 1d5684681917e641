"""Per-customer token buckets, in memory (one set per worker process).

Each customer's bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request
takes one token or is refused with the whole seconds until one is back (``Retry-After``).
Buckets are kept in LRU order and the oldest is dropped beyond ``max_customers``: a dropped
customer simply starts with a full bucket again. With N worker processes a customer may get
up to N times the rate; put a shared limiter in front if that matters.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from points.api.errors import RateLimited
from points.api.settings import RateLimitSettings

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self, settings: RateLimitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._enabled = settings.enabled
        self._rate = settings.rate_per_s
        self._burst = float(settings.burst)
        self._max = settings.max_customers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, customer_id: str) -> None:
        """Take one token for ``customer_id`` or raise :class:`RateLimited`."""
        if not self._enabled:
            return
        now = self._clock()
        found = self._buckets.get(customer_id)
        if found is None:
            tokens = self._burst
        else:
            tokens, at = found
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            self._buckets.move_to_end(customer_id)
        if tokens < 1.0:
            self._buckets[customer_id] = (tokens, now)
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / self._rate)))
        self._buckets[customer_id] = (tokens - 1.0, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
