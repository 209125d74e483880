"""asyncio locks by key that last only while in use: one per object or principal ever
seen would outlive them all."""

from __future__ import annotations

import asyncio
import weakref


class KeyedLocks:
    """`locks(key)` is the lock for `key`; it is dropped once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def __len__(self) -> int:
        return len(self._locks)
