"""When each resource is compared with Azure again (the drift resync): pure bookkeeping.

One schedule for the whole process replaces a timer per object. A per-object timer
(kopf's) keeps a task and the object's latest full body (with its managedFields) in
memory for as long as the object exists; the schedule keeps a key and a time. The
resync reads the object when it is due.

Every reconcile, whatever started it (a change, a wake-up, the resync itself), moves the
object's next resync one period past it, so an object is compared with Azure once per
period and never twice in a row. A reconcile that must wait (Retry-After, backoff) is
retried after that wait instead.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


@dataclass
class Schedule(Generic[Key]):
    """Due times by key, earliest first. `spread` is the random share of a period added
    to each due time (so a restart does not synchronise every resync)."""

    period: float
    spread: float = 0.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    draw: Callable[[float, float], float] = field(default=random.uniform)
    # Called when a key becomes due earlier than everything else: a loop sleeping until
    # the earliest due time must wake and sleep again.
    on_earlier: Callable[[], None] = field(default=lambda: None)
    _due: dict[Key, float] = field(default_factory=dict)
    _heap: list[tuple[float, int, Key]] = field(default_factory=list)
    _order: int = 0

    def __len__(self) -> int:
        return len(self._due)

    def synced(self, key: Key) -> None:
        """The object was just compared with Azure: next time, one period from now."""
        self._set(key, self.clock() + self.period + self.draw(0.0, self.period * self.spread))

    def retry(self, key: Key, after: float) -> None:
        """The object must wait `after` seconds before it may be compared again."""
        self._set(key, self.clock() + max(0.0, after))

    def forget(self, key: Key) -> None:
        """The object is gone (or no longer this process's): never due again."""
        self._due.pop(key, None)

    def due_at(self, key: Key) -> float | None:
        return self._due.get(key)

    def next_due(self) -> float | None:
        """The earliest due time, or None when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def take_due(self, limit: int | None = None) -> list[Key]:
        """Remove and return the keys due now, earliest first (at most `limit`). A key
        taken is scheduled again only by `synced` or `retry`."""
        now = self.clock()
        taken: list[Key] = []
        while self._heap and (limit is None or len(taken) < limit):
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            taken.append(key)
        return taken

    def _set(self, key: Key, at: float) -> None:
        earliest = self.next_due()
        self._due[key] = at
        self._order += 1
        heapq.heappush(self._heap, (at, self._order, key))
        # Superseded entries stay in the heap until they surface; bound them.
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(t, o, k) for t, o, k in self._heap if self._due.get(k) == t]
            heapq.heapify(self._heap)
        if earliest is None or at < earliest:
            self.on_earlier()

    def _drop_stale(self) -> None:
        while self._heap:
            at, _, key = self._heap[0]
            if self._due.get(key) == at:
                return
            heapq.heappop(self._heap)
