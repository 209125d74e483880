"""Undeclared grants of a WorkloadIdentity: list the role assignments to its principal
at the compared scopes, find those no MLRoleBinding declares, report them (condition,
event, metric) and, with spec.exclusiveGrants and a policy that allows it, remove them.

A binding declares an assignment when it records it (status.assignments: made by it,
shared, or adopted), when the assignment's description names it (it made it and has
not recorded it yet), or when its spec names the identity, the role and the scope
(whatever its state: Observe records nothing). The in-process record (Holders, from the
watch) answers first; what it cannot account for is checked against the bindings in the
cluster, and a finding is reported only after a grace period, so a binding applied with
its identity is never taken for absent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aml_identity.api.observed import RoleAssignment
from aml_identity.azure.errors import AzureFailure
from aml_identity.controllers.outcome import Deps, Event, Outcome, Progress
from aml_identity.kube.cluster import KubeError
from aml_identity.metrics import UNDECLARED_GRANTS
from aml_identity.reconcile.grants import (
    GRACE_SECONDS,
    GrantScan,
    declaration,
    describe,
    newly_found,
    scan_scopes,
    undeclared,
)
from aml_identity.reconcile.names import assignment_owner

BINDINGS = "mlrolebindings"
# How long one read of the cluster's MLRoleBindings serves the reports of every identity.
BINDINGS_MAX_AGE = 30.0


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
) -> tuple[GrantScan, Progress]:
    """`reported`: the names status.undeclaredGrants lists (already announced).
    `remove`: delete what is undeclared (spec.exclusiveGrants, allowed, managed);
    otherwise `kept_because` says why not, when it was asked for. Returns the scan, and
    the events and writes it made."""
    done = Progress()
    scopes = scan_scopes(deps.settings.grant_scopes, deps.settings.subscription_id)
    if not scopes:
        return GrantScan(scopes), done
    known = {n.lower() for n in reported}
    try:
        listed = [a for scope in scopes for a in await deps.gateway.assignments_within(scope)]
        held = deps.assignment_holders
        found = undeclared(listed, principal_id, lambda a: bool(held.get(a.name)), scopes)
        names = {
            a.role_definition_id.lower(): await deps.gateway.role_name(a.role_definition_id)
            for a in found
        }
        # The bindings in the cluster: read afresh before anything is removed; for a
        # report, a view up to BINDINGS_MAX_AGE old, shared by every identity.
        if found:
            bindings = await _bindings(deps, fresh=remove)
            found = _not_declared(deps, bindings, found, namespace, name, names)
    except (AzureFailure, KubeError) as error:
        why = error.summary if isinstance(error, AzureFailure) else str(error)
        return GrantScan(scopes, unreadable=why), done
    # Reported once seen for a grace period (or reported before): what a binding applied
    # at the same time is about to adopt is declared by then.
    now = time.monotonic()
    grace = min(GRACE_SECONDS, deps.settings.resync_seconds)
    sightings = deps.grant_sightings
    confirmed = sightings.confirmed(uid, (a.name for a in found), now, grace) | known
    found = [a for a in found if a.name.lower() in confirmed]
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
        if not sightings.may_remove(uid, assignment.name, now):
            not_removed = f"{assignment.name} (refused before; tried again hourly)"
            continue
        try:
            await deps.gateway.delete_assignment(assignment.scope, assignment.name)
        except AzureFailure as failure:
            sightings.refused(uid, assignment.name, now)
            not_removed = f"{assignment.name}: {failure.summary}"
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


async def _bindings(deps: Deps, *, fresh: bool) -> list[dict[str, Any]]:
    now = time.monotonic()
    seen = deps.bindings_seen
    max_age = min(BINDINGS_MAX_AGE, deps.settings.resync_seconds / 4)
    kept = None if fresh else seen.fresh(now, max_age)
    if kept is not None:
        return kept
    read = await deps.cluster.list_watched(BINDINGS, deps.settings.namespaces)
    seen.keep(read, now)
    return read


def _not_declared(
    deps: Deps,
    bindings: list[dict[str, Any]],
    candidates: list[RoleAssignment],
    namespace: str,
    identity: str,
    names: Mapping[str, str | None],
) -> list[RoleAssignment]:
    """Those of `candidates` that no MLRoleBinding accounts for: recorded in a binding's
    status, made by a binding that exists (or that this operator cannot see: another
    namespace's), or matching the spec of a binding naming the identity, whatever that
    binding's state (Observe, waiting, denied)."""
    settings = deps.settings
    recorded = {
        str(a.get("name", "")).lower()
        for b in bindings
        for a in (b.get("status") or {}).get("assignments") or []
    }
    live = {str(b["metadata"].get("uid", "")).lower() for b in bindings}
    watched = set(settings.namespaces)
    declarations = [
        d
        for b in bindings
        if b["metadata"].get("namespace") == namespace
        and (d := declaration(b, identity, settings.subscription_id)) is not None
    ]

    def declared(assignment: RoleAssignment) -> bool:
        if assignment.name.lower() in recorded:
            return True
        maker = assignment_owner(assignment.description)
        if maker is not None and (
            maker.uid in live or (watched and maker.namespace not in watched)
        ):
            return True
        role = names.get(assignment.role_definition_id.lower())
        return any(d.covers(assignment, role) for d in declarations)

    return [a for a in candidates if not declared(a)]


def apply(outcome: Outcome, scan: GrantScan, done: Progress) -> None:
    """Put the comparison into the identity's outcome: the condition, the status list
    (kept as it was when the assignments could not be listed), events and writes."""
    outcome.events += done.events
    outcome.azure_writes += done.writes
    outcome.grants = scan
    if scan.unreadable is None:
        outcome.status["undeclaredGrants"] = scan.status()
