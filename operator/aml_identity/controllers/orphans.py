"""Finding and removing orphans (reconcile/orphans.py decides which objects are): what
Azure holds with this cluster's id, against the custom resources that live. Removal is
only ever asked for (`aml-identity orphans --delete`), never automatic."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aml_identity import audit
from aml_identity.api.common import arm_id_part
from aml_identity.api.observed import Identity
from aml_identity.azure.errors import AzureFailure
from aml_identity.controllers.outcome import Deps
from aml_identity.metrics import ORPHANS
from aml_identity.reconcile.grants import scan_scopes
from aml_identity.reconcile.names import TAG_PREFIX
from aml_identity.reconcile.orphans import Orphan, counts, find, tag_dict

OWNERS = ("workloadidentities", "mlrolebindings")
log = logging.getLogger("aml_identity.orphans")


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


async def _identity_groups(deps: Deps) -> list[tuple[str, str]]:
    """Where the operator's identities can be: the resource groups the WorkloadIdentities
    name and those the MLAccessPolicies let namespaces create in (by name, not pattern).
    Its role (Managed Identity Contributor there) reads nothing else, by design."""
    settings = deps.settings
    default = settings.subscription_id
    groups: dict[tuple[str, str], tuple[str, str]] = {}

    def add(sub: str, group: str) -> None:
        groups.setdefault((sub.lower(), group.lower()), (sub, group))

    for body in await deps.cluster.list_watched("workloadidentities", settings.namespaces):
        mi = (body.get("spec") or {}).get("managedIdentity") or {}
        if mi.get("resourceGroup"):
            add(str(mi.get("subscriptionId") or default), str(mi["resourceGroup"]))
    for policy in await deps.cluster.list_cluster_custom("mlaccesspolicies"):
        spec = policy.get("spec") or {}
        rules = [
            *((spec.get("identities") or {}).get("managedIdentities") or []),
            *((spec.get("adoption") or {}).get("resourceGroups") or []),
        ]
        for rule in rules:
            group = str(rule.get("resourceGroup") or rule.get("name") or "")
            sub = str(rule.get("subscriptionId") or default)
            if group and not any(c in group + sub for c in "*?["):
                add(sub, group)
    return sorted(groups.values())


async def _identities(deps: Deps, groups: list[tuple[str, str]]) -> list[Identity]:
    """The identities of those groups; a group that is gone or not readable has none
    this scan can see (logged)."""
    found: list[Identity] = []
    for sub, group in groups:
        try:
            found += await deps.gateway.list_identities(sub, group)
        except AzureFailure as failure:
            log.info("orphan scan: cannot list identities in %s/%s: %s", sub, group, failure)
    return found


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
    identities = await _identities(deps, await _identity_groups(deps))
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
