"""ARM token buckets with an injected clock."""

from __future__ import annotations

from azlocal.throttle import Throttle, kind_of
from support.clock import Clock


def test_azure_sizes_and_refill() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock, enabled=True)
    results = [throttle.take("sub", "p", "writes") for _ in range(201)]
    assert all(ok for ok, _, _ in results[:200])
    ok, retry_after, remaining = results[200]
    assert (ok, retry_after, remaining) == (False, 1.0, 0)
    clock.now += 0.5  # 10 per second: five writes back
    assert sum(throttle.take("sub", "p", "writes")[0] for _ in range(10)) == 5


def test_buckets_are_per_subscription_principal_and_kind() -> None:
    clock = Clock()
    throttle = Throttle(
        clock=clock, enabled=True, sizes={"reads": (1, 1), "writes": (1, 1), "deletes": (1, 1)}
    )
    assert throttle.take("s1", "p1", "reads")[0]
    assert not throttle.take("s1", "p1", "reads")[0]
    assert throttle.take("s1", "p1", "writes")[0]
    assert throttle.take("s1", "p2", "reads")[0]
    assert throttle.take("s2", "p1", "reads")[0]


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    clock = Clock()
    throttle = Throttle(
        clock=clock, enabled=True, sizes={"reads": (1, 0.25), "writes": (1, 1), "deletes": (1, 1)}
    )
    throttle.take("s", "p", "reads")
    assert throttle.take("s", "p", "reads")[1] == 4.0


def test_disabled_never_refuses_but_still_counts() -> None:
    throttle = Throttle(clock=Clock())
    results = [throttle.take("s", "p", "deletes") for _ in range(500)]
    assert all(ok for ok, _, _ in results)
    assert [remaining for _, _, remaining in results[:3]] == [199, 198, 197]
    assert results[-1][2] == 0


def test_kind_of_method() -> None:
    assert [kind_of(m) for m in ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")] == [
        "reads",
        "reads",
        "writes",
        "writes",
        "writes",
        "deletes",
    ]
