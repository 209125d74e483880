"""Finding and removing orphans (reconcile/orphans.py decides which objects are): what
Azure holds with this cluster's id, against the custom resources that live. Removal is
only ever asked for (`aml-identity orphans --delete`), never automatic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aml_identity import audit
from aml_identity.controllers.outcome import Deps
from aml_identity.metrics import ORPHANS
from aml_identity.reconcile.grants import scan_scopes
from aml_identity.reconcile.names import TAG_PREFIX
from aml_identity.reconcile.orphans import Orphan, counts, find

OWNERS = ("workloadidentities", "mlrolebindings")


@dataclass
class Live:
    """What the cluster holds: the uids of the WorkloadIdentities and MLRoleBindings, the
    identities' principal ids, and the assignments the bindings record."""

    uids: set[str] = field(default_factory=set)
    principals: set[str] = field(default_factory=set)
    recorded: set[str] = field(default_factory=set)


async def _live(deps: Deps) -> Live:
    cluster, namespaces = deps.cluster, deps.settings.namespaces
    live = Live()
    for plural in OWNERS:
        if namespaces:
            bodies = [b for ns in namespaces for b in await cluster.list_custom(plural, ns)]
        else:
            bodies = await cluster.list_cluster_custom(plural)
        live.uids |= {str(b["metadata"]["uid"]).lower() for b in bodies}
        for body in bodies:
            status = body.get("status") or {}
            if status.get("principalId"):
                live.principals.add(str(status["principalId"]))
            live.recorded |= {
                str(a.get("name", "")).lower() for a in status.get("assignments") or []
            }
    return live


async def scan(deps: Deps) -> list[Orphan]:
    """Read only: identities of the operator's subscription, applications tagged with
    this cluster, role assignments at the compared scopes (or the subscription)."""
    settings = deps.settings
    # Resources first: an object created after this read belongs to a resource read here.
    live = await _live(deps)
    identities = await deps.gateway.list_identities(settings.subscription_id)
    tag = f"{TAG_PREFIX}.cluster:{settings.cluster_id}"
    applications = []
    for application in await deps.graph.applications_tagged(tag):
        principal = await deps.graph.get_service_principal(application.app_id)
        applications.append((application, principal.object_id if principal else None))
    scopes = scan_scopes(settings.grant_scopes or ["subscription"], settings.subscription_id)
    assignments = [a for scope in scopes for a in await deps.gateway.assignments_within(scope)]
    return find(
        cluster_id=settings.cluster_id,
        live=live.uids,
        identities=identities,
        applications=applications,
        assignments=assignments,
        principals=live.principals,
        recorded=live.recorded,
        namespaces=settings.namespaces,
    )


def record(orphans: list[Orphan]) -> None:
    for kind, count in counts(orphans).items():
        ORPHANS.labels(kind).set(count)


async def remove(deps: Deps, orphans: list[Orphan], done: Callable[[Orphan], None]) -> None:
    """Delete them, grants first (the order `find` gives), calling `done` after each;
    a failure stops there and raises."""
    for orphan in orphans:
        # Audited for the resource it belonged to: its request ids lead back to it.
        kind, _, ref = orphan.owner.partition(" ")
        former = audit.Subject(kind, orphan.namespace, ref.partition("/")[2], orphan.uid, 0)
        with audit.following(former):
            if orphan.kind == "RoleAssignment":
                assert orphan.scope is not None
                await deps.gateway.delete_assignment(orphan.scope, orphan.name)
            elif orphan.kind == "Application":
                await deps.graph.delete_application(orphan.id)
            else:
                sub, group = _sub_and_group(orphan.id)
                await deps.gateway.delete_identity(sub, group, orphan.name)
        done(orphan)


def _sub_and_group(arm_id: str) -> tuple[str, str]:
    parts = arm_id.split("/")
    lower = [p.lower() for p in parts]
    return parts[lower.index("subscriptions") + 1], parts[lower.index("resourcegroups") + 1]
