"""A client-side model of ARM's token buckets, so the operator paces itself at the limit
instead of discovering it by being refused.

ARM limits each principal per subscription with token buckets by operation type (reads
250, refilled 25/s; writes 200 at 10/s; deletes 200 at 10/s). `Pacer` keeps the same
buckets and hands out send times: a request takes a token, and when none is left it is
given the moment its token will have refilled (tokens may go negative: each negative
token is a request already promised a later slot, so waiters are served in order
without a lock). Every answer corrects the model: `x-ms-ratelimit-remaining-*` says how
many tokens ARM really has (lower when another client shares the principal), and a 429
with Retry-After empties the bucket for that long. Pure; the clock is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# (capacity, refill per second), as ARM documents them since 2024.
ARM_BUCKETS: dict[str, tuple[float, float]] = {
    "reads": (250.0, 25.0),
    "writes": (200.0, 10.0),
    "deletes": (200.0, 10.0),
}


def kind_of(method: str) -> str:
    return {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(method.upper(), "writes")


@dataclass
class Bucket:
    capacity: float
    refill: float
    tokens: float
    updated: float
    in_flight: int = 0

    def advance(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill)
            self.updated = now


@dataclass
class Pacer:
    clock: Callable[[], float]
    sizes: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(ARM_BUCKETS))
    _buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)

    def _bucket(self, subscription: str, kind: str) -> Bucket:
        key = (subscription.lower(), kind)
        if key not in self._buckets:
            capacity, refill = self.sizes[kind]
            self._buckets[key] = Bucket(capacity, refill, capacity, self.clock())
        bucket = self._buckets[key]
        bucket.advance(self.clock())
        return bucket

    def reserve(self, subscription: str, kind: str) -> float:
        """Take a token; the seconds to wait before sending (0: send now)."""
        bucket = self._bucket(subscription, kind)
        bucket.tokens -= 1
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / bucket.refill

    def sent(self, subscription: str, kind: str) -> None:
        self._bucket(subscription, kind).in_flight += 1

    def answered(
        self,
        subscription: str,
        kind: str,
        *,
        remaining: int | None,
        retry_after: float | None,
    ) -> None:
        """Correct the model from an answer: ARM's remaining tokens (requests still in
        flight will take theirs), or a 429's Retry-After."""
        bucket = self._bucket(subscription, kind)
        bucket.in_flight = max(0, bucket.in_flight - 1)
        if retry_after is not None:
            # Empty for that long: the next token comes when ARM said to come back.
            bucket.tokens = min(bucket.tokens, -retry_after * bucket.refill)
        elif remaining is not None:
            bucket.tokens = min(bucket.tokens, float(remaining - bucket.in_flight))

    def tokens(self, subscription: str, kind: str) -> float:
        return self._bucket(subscription, kind).tokens
