"""The resync schedule: one period after each reconcile, retries after their wait."""

from __future__ import annotations

from aml_identity.handlers.shell import MAX_BLOCKED_DELAY, blocked_delay, stuck_message
from aml_identity.reconcile.schedule import Schedule
from support.clock import Clock


def schedule(clock: Clock, period: float = 100.0, spread: float = 0.0) -> Schedule[str]:
    return Schedule(period=period, spread=spread, clock=clock, draw=lambda low, high: high)


def test_due_one_period_after_each_sync() -> None:
    clock = Clock()
    s = schedule(clock)
    s.synced("a")
    clock.now += 99
    assert s.take_due() == []
    clock.now += 1
    assert s.take_due() == ["a"]
    assert s.take_due() == [], "taken once; due again only after the next sync"
    assert s.next_due() is None


def test_a_sync_in_between_moves_the_resync() -> None:
    clock = Clock()
    s = schedule(clock)
    s.synced("a")
    clock.now += 60  # a change handler compares it again
    s.synced("a")
    clock.now += 40
    assert s.take_due() == [], "not 40 s after the last comparison"
    clock.now += 60
    assert s.take_due() == ["a"]


def test_retry_overrides_the_period() -> None:
    clock = Clock()
    s = schedule(clock)
    s.synced("a")
    s.retry("a", 5)
    assert s.next_due() == clock.now + 5
    clock.now += 5
    assert s.take_due() == ["a"]


def test_earliest_first_and_limit() -> None:
    clock = Clock()
    s = schedule(clock)
    for key, delay in (("late", 30.0), ("early", 10.0), ("middle", 20.0)):
        s.retry(key, delay)
    clock.now += 30
    assert s.take_due(limit=2) == ["early", "middle"]
    assert s.take_due() == ["late"]


def test_forget_removes_it() -> None:
    clock = Clock()
    s = schedule(clock)
    s.synced("a")
    s.synced("b")
    s.forget("a")
    clock.now += 100
    assert s.take_due() == ["b"]
    assert len(s) == 0


def test_spread_adds_a_share_of_the_period() -> None:
    clock = Clock()
    s = schedule(clock, period=100, spread=0.1)
    s.synced("a")
    assert s.due_at("a") == clock.now + 110


def test_superseded_entries_stay_bounded() -> None:
    clock = Clock()
    s = schedule(clock)
    for _ in range(1000):
        s.synced("a")
        s.synced("b")
        clock.now += 1
    assert len(s._heap) <= 2 * len(s) + 64
    clock.now += 100
    assert sorted(s.take_due()) == ["a", "b"]


def test_wakes_the_sleeper_when_something_becomes_due_earlier() -> None:
    clock = Clock()
    woken: list[float] = []
    s = schedule(clock)
    s.on_earlier = lambda: woken.append(clock.now)
    s.synced("a")  # the first: earlier than nothing
    s.retry("b", 500)  # later than "a": the sleeper need not wake
    s.retry("c", 5)  # earlier than "a"
    assert len(woken) == 2


def test_a_blocked_deletion_backs_off_to_a_bound_and_says_how_to_let_go() -> None:
    delays = [blocked_delay(60.0, attempt) for attempt in range(1, 8)]
    assert delays[:4] == [60.0, 120.0, 240.0, 480.0]
    assert delays[4:] == [MAX_BLOCKED_DELAY] * 3
    assert blocked_delay(None, 1) == 60.0
    assert blocked_delay(5.0, 1000) == MAX_BLOCKED_DELAY  # no overflow on long waits
    assert "deletionPolicy" in stuck_message("WorkloadIdentity", 3)
