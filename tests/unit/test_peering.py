"""The resync loop's reading of kopf's peering rule: a paused replica compares nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aml_identity.reconcile.peering import paused

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago: float = 1, lifetime: int = 60) -> dict[str, object]:
    seen = (NOW - timedelta(seconds=seen_ago)).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen}


def test_alone_is_active() -> None:
    assert not paused({"me": peer(5)}, identity="me", priority=5, now=NOW)


def test_a_live_higher_priority_peer_pauses() -> None:
    status = {"me": peer(5), "other": peer(9)}
    assert paused(status, identity="me", priority=5, now=NOW)
    assert not paused(status, identity="other", priority=9, now=NOW)


def test_equal_priorities_pause_both() -> None:
    assert paused({"me": peer(5), "other": peer(5)}, identity="me", priority=5, now=NOW)


def test_a_dead_peer_does_not_count() -> None:
    status = {"me": peer(5), "other": peer(9, seen_ago=61, lifetime=60)}
    assert not paused(status, identity="me", priority=5, now=NOW)


def test_no_lastseen_counts_as_seen_now() -> None:
    status = {"other": {"priority": 9, "lifetime": 60}}
    assert paused(status, identity="me", priority=5, now=NOW)


def test_a_missing_peering_object_pauses() -> None:
    assert paused(None, identity="me", priority=5, now=NOW)
