"""ARM-style token buckets per (subscription, principal, operation kind). Pure; clock injected."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

# Azure Resource Manager's regional limits since 2024 (per subscription and principal):
# reads 250 refilling 25/s; writes 200 at 10/s; deletes 200 at 10/s.
DEFAULT_SIZES: dict[str, tuple[float, float]] = {
    "reads": (250, 25),
    "writes": (200, 10),
    "deletes": (200, 10),
}


def kind_of(method: str) -> str:
    return {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(method.upper(), "writes")


@dataclass
class Bucket:
    capacity: float
    refill_per_second: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(
            self.capacity, self.tokens + (now - self.updated) * self.refill_per_second
        )
        self.updated = now


@dataclass
class Throttle:
    clock: Callable[[], float]
    sizes: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_SIZES))
    enabled: bool = False
    _buckets: dict[tuple[str, str, str], Bucket] = field(default_factory=dict)

    def take(self, subscription: str, principal: str, kind: str) -> tuple[bool, float, int]:
        """Take one token. Returns (allowed, retry_after_seconds, remaining)."""
        now = self.clock()
        capacity, rate = self.sizes[kind]
        bucket = self._buckets.setdefault(
            (subscription, principal, kind), Bucket(capacity, rate, capacity, now)
        )
        bucket.refill(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True, 0.0, int(bucket.tokens)
        if not self.enabled:  # counted, never refused: the headers stay truthful
            return True, 0.0, 0
        wait = (1 - bucket.tokens) / rate
        return False, max(1.0, math.ceil(wait)), 0

    def reset(self) -> None:
        self._buckets.clear()
