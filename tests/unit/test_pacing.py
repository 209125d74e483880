"""The client-side model of ARM's token buckets, with an injected clock."""

from __future__ import annotations

from aml_identity.azure.pacing import Pacer, kind_of
from support.clock import Clock

SUB = "00000000-0000-0000-0000-000000000001"


def test_methods_map_to_arm_buckets() -> None:
    assert [kind_of(m) for m in ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")] == [
        "reads", "reads", "writes", "writes", "writes", "deletes",
    ]  # fmt: skip


def test_the_burst_goes_at_once_then_one_slot_per_refill() -> None:
    pacer = Pacer(clock=Clock())
    waits = [pacer.reserve(SUB, "writes") for _ in range(203)]
    assert waits[:200] == [0.0] * 200
    # Each request past the bucket is promised the next refill, in order: 10/s.
    assert [round(w, 6) for w in waits[200:]] == [0.1, 0.2, 0.3]


def test_buckets_are_per_subscription_and_kind() -> None:
    pacer = Pacer(clock=Clock())
    for _ in range(200):
        pacer.reserve(SUB, "writes")
    assert pacer.reserve(SUB, "writes") > 0
    assert pacer.reserve(SUB, "deletes") == 0.0
    assert pacer.reserve(SUB, "reads") == 0.0
    assert pacer.reserve("other-subscription", "writes") == 0.0


def test_tokens_refill_with_time_up_to_the_capacity() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    for _ in range(250):
        pacer.reserve(SUB, "reads")
    assert pacer.tokens(SUB, "reads") == 0
    clock.now += 2
    assert pacer.tokens(SUB, "reads") == 50
    clock.now += 3600
    assert pacer.tokens(SUB, "reads") == 250


def test_arms_remaining_count_lowers_the_model_never_raises_it() -> None:
    pacer = Pacer(clock=Clock())
    pacer.reserve(SUB, "writes")
    pacer.sent(SUB, "writes")
    # Another client uses the same principal: ARM has fewer tokens than we thought.
    pacer.answered(SUB, "writes", remaining=5, retry_after=None)
    assert pacer.tokens(SUB, "writes") == 5
    pacer.reserve(SUB, "writes")
    pacer.sent(SUB, "writes")
    pacer.answered(SUB, "writes", remaining=150, retry_after=None)
    assert pacer.tokens(SUB, "writes") == 4


def test_requests_in_flight_are_subtracted_from_arms_count() -> None:
    pacer = Pacer(clock=Clock())
    for _ in range(3):
        pacer.reserve(SUB, "writes")
        pacer.sent(SUB, "writes")
    # The first answer counts only itself; the two still in flight will take theirs.
    pacer.answered(SUB, "writes", remaining=10, retry_after=None)
    assert pacer.tokens(SUB, "writes") == 8


def test_a_429_empties_the_bucket_for_its_retry_after() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.reserve(SUB, "writes")
    pacer.sent(SUB, "writes")
    pacer.answered(SUB, "writes", remaining=None, retry_after=3)
    wait = pacer.reserve(SUB, "writes")
    assert 3.0 < wait <= 3.1
    clock.now += 10
    assert pacer.reserve(SUB, "writes") == 0.0
