"""Batched observation: one read serves every reconcile for a while; concurrent misses
share one read; the operator's own writes update the listing. Injected clock."""

from __future__ import annotations

import asyncio

import pytest

from aml_identity.azure.observe import Listings
from support.clock import Clock


def test_concurrent_misses_share_one_read_and_later_ones_are_served_until_max_age() -> None:
    clock = Clock()
    listings: Listings[str, int] = Listings(max_age=30, clock=clock)
    calls = 0

    async def read() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # let the other callers arrive while this read is out
        return {"a": calls}

    async def run() -> None:
        first = await asyncio.gather(*(listings.get("rg", read) for _ in range(50)))
        assert all(f == {"a": 1} for f in first)
        clock.now += 29
        assert await listings.get("rg", read) == {"a": 1}
        clock.now += 1
        assert await listings.get("rg", read) == {"a": 2}
        assert await listings.get("other", read) == {"a": 3}

    asyncio.run(run())
    assert calls == listings.reads == 3


def test_writes_update_a_held_listing_only() -> None:
    listings: Listings[str, int] = Listings(max_age=30, clock=Clock())

    async def read() -> dict[str, int]:
        return {"kept": 1}

    async def run() -> None:
        listings.put("rg", "Early", 9)  # nothing held yet: nothing to update
        held = await listings.get("rg", read)
        listings.put("rg", "New", 2)
        listings.drop("rg", "KEPT")
        assert held == {"new": 2}

    asyncio.run(run())


def test_a_failed_read_fails_every_waiter_and_is_not_kept() -> None:
    listings: Listings[str, int] = Listings(max_age=30, clock=Clock())
    attempts = 0

    async def read() -> dict[str, int]:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts == 1:
            raise RuntimeError("throttled")
        return {"a": 1}

    async def run() -> None:
        results = await asyncio.gather(
            *(listings.get("rg", read) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results)
        assert await listings.get("rg", read) == {"a": 1}

    asyncio.run(run())
    assert attempts == 2


def test_forget_reads_again() -> None:
    listings: Listings[str, int] = Listings(max_age=30, clock=Clock())

    async def read() -> dict[str, int]:
        return {}

    async def run() -> None:
        await listings.get("rg", read)
        listings.forget("rg")
        await listings.get("rg", read)

    asyncio.run(run())
    assert listings.reads == 2


@pytest.mark.parametrize("max_age", [0.0])
def test_max_age_zero_only_coalesces(max_age: float) -> None:
    listings: Listings[str, int] = Listings(max_age=max_age, clock=Clock())

    async def read() -> dict[str, int]:
        await asyncio.sleep(0)
        return {}

    async def run() -> None:
        await asyncio.gather(listings.get("k", read), listings.get("k", read))
        await listings.get("k", read)

    asyncio.run(run())
    assert listings.reads == 2


def test_listings_too_old_to_serve_are_dropped_not_kept_forever() -> None:
    """Scopes and resource groups come from specs: one no longer used must not stay."""
    clock = Clock()
    listings: Listings[str, int] = Listings(max_age=30, clock=clock)

    async def read() -> dict[str, int]:
        return {"a": 1}

    async def run() -> None:
        for scope in ("old-1", "old-2"):
            await listings.get(scope, read)
        assert len(listings) == 2
        clock.now += 30
        await listings.get("new", read)
        assert len(listings) == 1

    asyncio.run(run())
