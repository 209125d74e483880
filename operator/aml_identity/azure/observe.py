"""Observing Azure in batches: one paged list serves every resource that needs it.

A resync used to read each object on its own (a GET per identity, a list per binding),
so reads grew with the number of resources, and 10,000 of them would exceed ARM's read
bucket. Here a listing (the identities of a resource group, the role assignments at a
scope) is read once and shared by every reconcile for `max_age` seconds; concurrent
misses wait for the same read instead of each making one. The operator's own writes
update the listings they touch, so it never reads back what it just wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Listing(Generic[V]):
    read_at: float
    items: dict[str, V]


@dataclass
class Listings(Generic[K, V]):
    """Listings by key (e.g. a resource group), each a dict of items by lower-case name."""

    max_age: float
    clock: Callable[[], float] = time.monotonic
    _listings: dict[K, _Listing[V]] = field(default_factory=dict)
    _reading: dict[K, asyncio.Future[dict[str, V]]] = field(default_factory=dict)
    reads: int = 0  # listings actually read, for tests and metrics

    async def get(self, key: K, read: Callable[[], Awaitable[dict[str, V]]]) -> dict[str, V]:
        listing = self._listings.get(key)
        if listing is not None and self.clock() - listing.read_at < self.max_age:
            return listing.items
        pending = self._reading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        self._prune()
        future: asyncio.Future[dict[str, V]] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            self.reads += 1
            started = self.clock()
            items = await read()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._reading[key]
        if self.max_age > 0:  # max_age 0 only coalesces: nothing is ever served again
            self._listings[key] = _Listing(started, items)
        future.set_result(items)
        return items

    def _prune(self) -> None:
        """Drop listings too old to serve: the keys (scopes, resource groups) come from
        specs, and one no longer used would otherwise be kept for good."""
        now = self.clock()
        for key in [k for k, v in self._listings.items() if now - v.read_at >= self.max_age]:
            del self._listings[key]

    def __len__(self) -> int:
        return len(self._listings)

    def held(self) -> list[K]:
        """The keys of the listings held now."""
        return list(self._listings)

    def put(self, key: K, name: str, value: V) -> None:
        """An item the operator just wrote (only into a listing already held)."""
        listing = self._listings.get(key)
        if listing is not None:
            listing.items[name.lower()] = value

    def drop(self, key: K, name: str) -> None:
        listing = self._listings.get(key)
        if listing is not None:
            listing.items.pop(name.lower(), None)

    def forget(self, key: K) -> None:
        """Read the listing again next time (after a failure that makes it doubtful)."""
        self._listings.pop(key, None)
