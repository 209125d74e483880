"""The conditions helper, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aml_identity.api.common import ConditionStatus, Reason
from aml_identity.reconcile.conditions import (
    READY,
    find_condition,
    is_ready,
    ready_status_for,
    set_condition,
    set_policy_violation,
    set_ready,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_new_condition_is_appended_with_the_clock_time_truncated_to_seconds() -> None:
    clock = FakeClock()
    conditions = set_ready([], Reason.RECONCILING, "creating", observed_generation=1, clock=clock)
    assert len(conditions) == 1
    ready = conditions[0]
    assert (ready.type, ready.status, ready.reason) == (READY, "Unknown", "Reconciling")
    assert ready.last_transition_time == datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert ready.observed_generation == 1


def test_transition_time_is_kept_when_only_reason_message_or_generation_change() -> None:
    clock = FakeClock()
    first = set_ready([], Reason.WAITING_FOR_DEPENDENCY, "a", observed_generation=1, clock=clock)
    clock.advance(90)
    second = set_ready(
        first, Reason.WAITING_FOR_PRINCIPAL_REPLICATION, "b", observed_generation=2, clock=clock
    )
    assert second[0].last_transition_time == first[0].last_transition_time
    assert (second[0].reason, second[0].message, second[0].observed_generation) == (
        "WaitingForPrincipalReplication",
        "b",
        2,
    )


def test_transition_time_moves_when_status_changes() -> None:
    clock = FakeClock()
    first = set_ready([], Reason.RECONCILING, "working", observed_generation=1, clock=clock)
    clock.advance(30)
    second = set_ready(first, Reason.RECONCILED, "done", observed_generation=1, clock=clock)
    assert second[0].status == "True"
    assert second[0].last_transition_time - first[0].last_transition_time == timedelta(seconds=30)


def test_other_conditions_keep_their_order_and_values() -> None:
    clock = FakeClock()
    conditions = set_condition(
        [],
        type_="CredentialExpiring",
        status=ConditionStatus.FALSE,
        reason=Reason.RECONCILED,
        message="",
        observed_generation=1,
        clock=clock,
    )
    conditions = set_ready(conditions, Reason.RECONCILED, "ok", observed_generation=1, clock=clock)
    updated = set_ready(conditions, Reason.FORBIDDEN, "no", observed_generation=1, clock=clock)
    assert [c.type for c in updated] == ["CredentialExpiring", READY]
    assert updated[0] == conditions[0]
    assert conditions[1].status == "True", "the input list must not be changed"


def test_ready_status_follows_the_reason() -> None:
    assert ready_status_for(Reason.RECONCILED) is ConditionStatus.TRUE
    assert ready_status_for(Reason.THROTTLED) is ConditionStatus.UNKNOWN
    assert ready_status_for(Reason.DELETING) is ConditionStatus.UNKNOWN
    assert ready_status_for(Reason.NOT_OWNED) is ConditionStatus.FALSE
    assert ready_status_for(Reason.INVALID_SPEC) is ConditionStatus.FALSE


def test_is_ready_requires_the_current_generation() -> None:
    clock = FakeClock()
    conditions = set_ready([], Reason.RECONCILED, "ok", observed_generation=3, clock=clock)
    assert is_ready(conditions, 3)
    assert not is_ready(conditions, 4), "a newer spec has not been reconciled yet"
    assert not is_ready([], 1)
    assert find_condition(conditions, "Missing") is None


def test_policy_violation_is_set_while_there_is_one_and_then_removed() -> None:
    clock = FakeClock()
    ready = set_ready([], Reason.RECONCILED, "ok", observed_generation=1, clock=clock)
    audited = set_policy_violation(ready, "may not bind Owner", observed_generation=1, clock=clock)
    violation = find_condition(audited, "PolicyViolation")
    assert violation is not None
    assert violation.status == "True"
    assert violation.reason == "PolicyViolation"
    assert violation.message == "may not bind Owner"
    assert find_condition(audited, "Ready") == find_condition(ready, "Ready")
    cleared = set_policy_violation(audited, None, observed_generation=2, clock=clock)
    assert [c.type for c in cleared] == ["Ready"]
