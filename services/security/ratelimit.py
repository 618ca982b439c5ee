"""Per-client token buckets: `rate` requests a second sustained, `burst` at once.

Kept in the process's memory: with N processes behind a balancer a client gets up to N times
the rate, which is the price of not sharing state per request (docs/security.md).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.errors import TooManyRequests


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def take(self, key: str) -> None:
        """Spend one request of `key`'s allowance, or raise 429 saying when to come back."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = math.ceil((1.0 - bucket.tokens) / self.rate)
        raise TooManyRequests(
            f"More than {self.rate:g} requests a second (burst {self.burst}); retry in "
            f"{wait} s.", retry_after=max(1, wait))

    def _forget_full(self, now: float) -> None:
        # Addresses come and go (the token endpoint is keyed by address): a bucket that has
        # refilled completely holds no information, so it can go.
        for key in [k for k, b in self._buckets.items()
                    if b.tokens + (now - b.at) * self.rate >= self.burst]:
            del self._buckets[key]
