"""How a policy verdict shapes a reconcile's outcome: one place for every kind."""

from __future__ import annotations

import contextlib

from aml_identity.api.common import Reason
from aml_identity.controllers.outcome import Event, Outcome
from aml_identity.metrics import POLICY_DENIALS, POLICY_VIOLATIONS, UNDECLARED_GRANTS
from aml_identity.reconcile.policy import Verdict

# Outcomes a denial replaces: what was allowed is done, so the denial is the news. Any
# other outcome (retry, Azure failure) stays, with the denial added to its message, so
# retries and alerts keep working.
_REPLACED = frozenset({Reason.RECONCILED, Reason.DRIFT_DETECTED})


def revoked(what: str) -> Event:
    """The one event for a grant taken back because no policy allows it any more."""
    return Event("Warning", "Revoked", f"Revoked {what}: no MLAccessPolicy allows it any more")


def removed_credential(name: str, excluded: frozenset[str]) -> Event:
    """A federated credential removed: revoked when a policy denies it (in `excluded`),
    otherwise dropped from the spec."""
    if name in excluded:
        return revoked(f"federated credential {name}")
    return Event("Normal", "FederatedCredential", f"Removed federated credential {name}")


def _no_violation(kind: str, namespace: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        POLICY_VIOLATIONS.remove(kind, namespace, name)


def forget(kind: str, namespace: str, name: str) -> None:
    """A deleted resource violates nothing any more (nor holds undeclared grants)."""
    _no_violation(kind, namespace, name)
    if kind == "WorkloadIdentity":
        with contextlib.suppress(KeyError):
            UNDECLARED_GRANTS.remove(namespace, name)


def with_verdict(
    outcome: Outcome, verdict: Verdict, kind: str, namespace: str, name: str
) -> Outcome:
    """Enforced denials make the resource Ready=False PolicyDenied (what was allowed is
    still done); in Audit they are reported in the PolicyViolation condition."""
    denied = verdict.enforced
    reported = tuple(d for d in verdict.denials if d not in denied)
    if reported:
        message = "; ".join(d.message for d in reported)
        outcome.policy_violation = message
        outcome.events.append(Event("Warning", Reason.POLICY_VIOLATION.value, message))
        POLICY_VIOLATIONS.labels(kind, namespace, name).set(1)
    else:
        _no_violation(kind, namespace, name)
    if not denied:
        return outcome
    POLICY_DENIALS.labels(kind, "reconcile").inc()
    message = "; ".join(d.message for d in denied)
    outcome.events.append(Event("Warning", Reason.POLICY_DENIED.value, message))
    if outcome.reason in _REPLACED:
        done = f" (the rest: {outcome.message})" if outcome.message else ""
        outcome.reason = Reason.POLICY_DENIED
        outcome.message = message + done
        outcome.retry_after = None
    else:
        outcome.message = f"{outcome.message}; also {message}"
    return outcome
