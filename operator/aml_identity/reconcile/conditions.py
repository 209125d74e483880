"""The one conditions helper: every status condition the operator writes goes through here.

Semantics follow metav1.Condition and cert-manager's SetCertificateCondition:
lastTransitionTime changes only when status changes; reason, message and
observedGeneration are always refreshed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aml_identity.api.common import TRANSIENT_REASONS, Condition, ConditionStatus, Reason

READY = "Ready"
# Set while an MLAccessPolicy in Audit mode would deny part of the resource.
POLICY_VIOLATION = "PolicyViolation"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock; tests pass their own."""
    return datetime.now(UTC)


def set_condition(
    conditions: Sequence[Condition],
    *,
    type_: str,
    status: ConditionStatus,
    reason: Reason,
    message: str,
    observed_generation: int | None,
    clock: Clock = utc_now,
) -> list[Condition]:
    """Return a new list with the condition of `type_` set; the input is not changed.

    Other conditions keep their order; a new type is appended.
    """
    previous = find_condition(conditions, type_)
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == status.value
        else clock().replace(microsecond=0)
    )
    updated = Condition(
        type=type_,
        status=status.value,
        reason=reason.value,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=transition,
    )
    result = [updated if c.type == type_ else c for c in conditions]
    if previous is None:
        result.append(updated)
    return result


def set_ready(
    conditions: Sequence[Condition],
    reason: Reason,
    message: str,
    *,
    observed_generation: int | None,
    clock: Clock = utc_now,
) -> list[Condition]:
    """Set Ready from a reason: True for Reconciled, Unknown while the operator is
    working or waiting on something that will pass, False when a person must act."""
    return set_condition(
        conditions,
        type_=READY,
        status=ready_status_for(reason),
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        clock=clock,
    )


def set_policy_violation(
    conditions: Sequence[Condition],
    violation: str | None,
    *,
    observed_generation: int | None,
    clock: Clock = utc_now,
) -> list[Condition]:
    """PolicyViolation=True with the message while there is one; absent otherwise."""
    if violation is None:
        return [c for c in conditions if c.type != POLICY_VIOLATION]
    return set_condition(
        conditions,
        type_=POLICY_VIOLATION,
        status=ConditionStatus.TRUE,
        reason=Reason.POLICY_VIOLATION,
        message=violation,
        observed_generation=observed_generation,
        clock=clock,
    )


def set_finding(
    conditions: Sequence[Condition],
    type_: str,
    finding: tuple[ConditionStatus, Reason, str] | None,
    *,
    observed_generation: int | None,
    clock: Clock = utc_now,
) -> list[Condition]:
    """A condition that reports what a look found (status, reason, message), such as
    UndeclaredGrants; None: not looked for, so absent."""
    if finding is None:
        return [c for c in conditions if c.type != type_]
    status, reason, message = finding
    return set_condition(
        conditions,
        type_=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        clock=clock,
    )


def ready_status_for(reason: Reason) -> ConditionStatus:
    if reason is Reason.RECONCILED:
        return ConditionStatus.TRUE
    if reason in TRANSIENT_REASONS:
        return ConditionStatus.UNKNOWN
    return ConditionStatus.FALSE


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def object_ready(obj: Mapping[str, Any]) -> bool:
    """is_ready for a resource as the API server returns it (a dict body)."""
    status = obj.get("status") or {}
    conditions = [Condition.model_validate(c) for c in status.get("conditions") or []]
    return is_ready(conditions, obj["metadata"].get("generation"))


def is_ready(conditions: Sequence[Condition], generation: int | None) -> bool:
    """Ready=True and computed for the current generation (what kstatus checks)."""
    ready = find_condition(conditions, READY)
    return (
        ready is not None
        and ready.status == ConditionStatus.TRUE.value
        and (generation is None or ready.observed_generation == generation)
    )
