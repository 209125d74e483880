"""Finding and removing orphans (reconcile/orphans.py decides which objects are): what
Azure holds with this cluster's id, against the custom resources that live. Removal is
only ever asked for (`aml-identity orphans --delete`), never automatic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aml_identity import audit
from aml_identity.api.common import arm_id_part
from aml_identity.controllers.outcome import Deps
from aml_identity.metrics import ORPHANS
from aml_identity.reconcile.grants import scan_scopes
from aml_identity.reconcile.names import TAG_PREFIX
from aml_identity.reconcile.orphans import Orphan, counts, find, tag_dict

OWNERS = ("workloadidentities", "mlrolebindings")


@dataclass
class Live:
    """What the cluster holds: the uids of the WorkloadIdentities and MLRoleBindings, the
    identities' principal ids, and the assignments the bindings record."""

    uids: set[str] = field(default_factory=set)
    principals: set[str] = field(default_factory=set)
    recorded: set[str] = field(default_factory=set)
    identities: int = 0  # WorkloadIdentities


async def _live(deps: Deps) -> Live:
    cluster, namespaces = deps.cluster, deps.settings.namespaces
    live = Live()
    for plural in OWNERS:
        bodies = await cluster.list_watched(plural, namespaces)
        live.uids |= {str(b["metadata"]["uid"]).lower() for b in bodies}
        if plural == "workloadidentities":
            live.identities = len(bodies)
        for body in bodies:
            status = body.get("status") or {}
            if status.get("principalId"):
                live.principals.add(str(status["principalId"]))
            live.recorded |= {
                str(a.get("name", "")).lower() for a in status.get("assignments") or []
            }
    return live


@dataclass(frozen=True)
class Scan:
    orphans: list[Orphan]
    # Objects tagged with this cluster whose resource lives: none while the cluster has
    # WorkloadIdentities means the cluster id (or the kube context) is not the operator's.
    owned_live: int
    live_identities: int


async def scan(deps: Deps) -> Scan:
    """Read only: identities of the operator's subscription, applications tagged with
    this cluster, role assignments at the compared scopes (or the subscription); then
    the resources in the cluster."""
    settings = deps.settings
    # Azure first: an object made after its resource was read would otherwise be taken
    # for an orphan (its resource created after the cluster was read).
    identities = await deps.gateway.list_identities(settings.subscription_id)
    tag = f"{TAG_PREFIX}.cluster:{settings.cluster_id}"
    applications = await deps.graph.applications_tagged(tag)
    scopes = scan_scopes(settings.grant_scopes or ["subscription"], settings.subscription_id)
    assignments = [a for scope in scopes for a in await deps.gateway.assignments_within(scope)]
    live = await _live(deps)
    with_principals = []
    for application in applications:
        principal = None
        if tag_dict(application.tags).get(f"{TAG_PREFIX}.uid", "").lower() not in live.uids:
            # Only a gone resource's application: its grants may be orphans too.
            found = await deps.graph.get_service_principal(application.app_id)
            principal = found.object_id if found else None
        with_principals.append((application, principal))
    orphans = find(
        cluster_id=settings.cluster_id,
        live=live.uids,
        identities=identities,
        applications=with_principals,
        assignments=assignments,
        principals=live.principals,
        recorded=live.recorded,
        namespaces=settings.namespaces,
    )
    tagged = [i.tags for i in identities] + [tag_dict(a.tags) for a in applications]
    owned_live = sum(
        1
        for tags in tagged
        if tags.get(f"{TAG_PREFIX}.cluster") == settings.cluster_id
        and tags.get(f"{TAG_PREFIX}.uid", "").lower() in live.uids
    )
    return Scan(orphans, owned_live, live.identities)


def record(orphans: list[Orphan]) -> None:
    for kind, count in counts(orphans).items():
        ORPHANS.labels(kind).set(count)


async def remove(deps: Deps, orphans: list[Orphan], done: Callable[[Orphan], None]) -> None:
    """Delete them, grants first (the order `find` gives), calling `done` after each;
    a failure stops there and raises. The resources are read once more first: one
    created (or restored) since the scan keeps what is its."""
    live = await _live(deps)
    for orphan in orphans:
        if orphan.uid.lower() in live.uids:
            continue
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
                sub = arm_id_part(orphan.id, "subscriptions")
                group = arm_id_part(orphan.id, "resourceGroups")
                await deps.gateway.delete_identity(sub, group, orphan.name)
        done(orphan)
