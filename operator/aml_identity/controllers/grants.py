"""Undeclared grants of a WorkloadIdentity: list the role assignments to its principal
at the compared scopes, find those no MLRoleBinding declares, report them (condition,
event, metric) and, with spec.exclusiveGrants and a policy that allows it, remove them.

A binding declares an assignment when it records it (status.assignments: made by it,
shared, or adopted) or when the assignment's description names a live binding (one
that made it and has not recorded it yet). The in-process record (Holders, from the
watch) answers first; only what it cannot account for is checked against the bindings
in the cluster, so a binding the watch has not delivered yet is never taken for absent.
"""

from __future__ import annotations

import time
from typing import Any

from aml_identity.api.common import TRANSIENT_REASONS, Condition
from aml_identity.api.observed import RoleAssignment
from aml_identity.azure.errors import AzureFailure
from aml_identity.controllers.outcome import Deps, Event, Outcome, Progress
from aml_identity.kube.cluster import KubeError
from aml_identity.metrics import UNDECLARED_GRANTS
from aml_identity.reconcile.conditions import READY, find_condition
from aml_identity.reconcile.grants import (
    GRACE_SECONDS,
    GrantScan,
    describe,
    newly_found,
    scan_scopes,
    undeclared,
)
from aml_identity.reconcile.names import assignment_owner

BINDINGS = "mlrolebindings"


async def compare(
    deps: Deps,
    *,
    namespace: str,
    name: str,
    uid: str,
    principal_id: str,
    reported: list[str],
    remove: bool,
    kept_because: str | None = None,
) -> tuple[GrantScan | None, Progress]:
    """`reported`: the names status.undeclaredGrants lists (already announced).
    `remove`: delete what is undeclared (spec.exclusiveGrants, allowed, managed);
    otherwise `kept_because` says why not, when it was asked for. The scan is None while
    a binding that names this identity is still working: what it is about to record
    (or adopt) is not yet declared, and must be neither reported nor removed."""
    done = Progress()
    scopes = scan_scopes(deps.settings.grant_scopes, deps.settings.subscription_id)
    if not scopes:
        return GrantScan(scopes), done
    try:
        listed = [a for scope in scopes for a in await deps.gateway.assignments_within(scope)]
        held = deps.assignment_holders
        found = undeclared(listed, principal_id, lambda a: bool(held.get(a.name)), scopes)
        if found:
            found, settling = await _not_in_cluster(deps, found, namespace, name)
            if settling:
                return None, done
    except (AzureFailure, KubeError) as error:
        return GrantScan(scopes, unreadable=str(error)), done
    # Reported once seen for a grace period (or reported before): what a binding applied
    # at the same time is about to adopt is declared by then.
    grace = min(GRACE_SECONDS, deps.settings.resync_seconds)
    confirmed = deps.grant_sightings.confirmed(
        uid, (a.name for a in found), time.monotonic(), grace
    ) | {n.lower() for n in reported}
    found = [a for a in found if a.name.lower() in confirmed]
    names = {
        a.role_definition_id.lower(): await deps.gateway.role_name(a.role_definition_id)
        for a in found
    }
    new = newly_found(reported, found)
    if new:
        done.note(
            "UndeclaredGrant",
            f"{len(new)} role assignment(s) to this identity are declared by no "
            "MLRoleBinding: " + "; ".join(describe(a, names) for a in new),
            warning=True,
        )
    removed: list[RoleAssignment] = []
    not_removed: str | None = None
    for assignment in found if remove else []:
        try:
            await deps.gateway.delete_assignment(assignment.scope, assignment.name)
        except AzureFailure as failure:
            not_removed = f"{assignment.name}: {failure}"
            if assignment in new:  # once per finding; the condition keeps saying it
                done.note("UndeclaredGrant", f"cannot remove {not_removed}", warning=True)
            continue
        removed.append(assignment)
        done.wrote(
            Event(
                "Warning",
                "RemovedUndeclaredGrant",
                f"Removed {describe(assignment, names)}: no MLRoleBinding declares it and "
                "spec.exclusiveGrants is true",
            )
        )
    left = tuple(a for a in found if a not in removed)
    UNDECLARED_GRANTS.labels(namespace, name).set(len(left))
    scan = GrantScan(
        scopes,
        undeclared=left,
        removed=tuple(removed),
        kept_because=kept_because if left else None,
        not_removed=not_removed,
        role_names=names,
    )
    return scan, done


async def _not_in_cluster(
    deps: Deps, candidates: list[RoleAssignment], namespace: str, identity: str
) -> tuple[list[RoleAssignment], bool]:
    """Those of `candidates` no MLRoleBinding in the cluster records or names as maker,
    and whether a binding naming `identity` is still working on its spec."""
    cluster, namespaces = deps.cluster, deps.settings.namespaces
    if namespaces:
        bindings = [b for ns in namespaces for b in await cluster.list_custom(BINDINGS, ns)]
    else:
        bindings = await cluster.list_cluster_custom(BINDINGS)
    recorded = {
        str(a.get("name", "")).lower()
        for b in bindings
        for a in (b.get("status") or {}).get("assignments") or []
    }
    live = {str(b["metadata"].get("uid", "")).lower() for b in bindings}

    def declared(assignment: RoleAssignment) -> bool:
        maker = assignment_owner(assignment.description)
        return assignment.name.lower() in recorded or (maker is not None and maker.uid in live)

    settling = any(
        b["metadata"].get("namespace") == namespace and names_identity(b, identity) and working(b)
        for b in bindings
    )
    return [a for a in candidates if not declared(a)], settling


def names_identity(binding: dict[str, Any], identity: str) -> bool:
    subjects = (binding.get("spec") or {}).get("subjects") or []
    return any(s.get("workloadIdentity") == identity for s in subjects)


def working(body: dict[str, Any]) -> bool:
    """Not done with its current spec: no Ready condition for this generation yet, or one
    that says it is still under way (a binding a person must fix is done, for now)."""
    status = body.get("status") or {}
    conditions = [Condition.model_validate(c) for c in status.get("conditions") or []]
    ready = find_condition(conditions, READY)
    if ready is None or ready.observed_generation != body["metadata"].get("generation"):
        return True
    return ready.reason in {reason.value for reason in TRANSIENT_REASONS}


def apply(outcome: Outcome, scan: GrantScan | None, done: Progress) -> None:
    """Put the comparison into the identity's outcome: the condition, the status list
    (kept as it was when the assignments could not be listed, or not compared this
    time), events and writes."""
    outcome.events += done.events
    outcome.azure_writes += done.writes
    if scan is None:
        return
    outcome.grants = scan
    if scan.unreadable is None:
        outcome.status["undeclaredGrants"] = scan.status()
