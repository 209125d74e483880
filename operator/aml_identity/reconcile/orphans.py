"""Orphans: Azure objects this cluster's operator created whose custom resource no longer
exists (after deletionPolicy: Orphan, a restored backup, a cluster rebuilt under the same
id). Pure: the caller lists what Azure holds and which resources live; this module says
which objects are orphans and in what order to remove them.

Only what carries this cluster's id can be told apart from another cluster's: managed
identities (ARM tags) and applications (Graph tags). Role assignments carry the binding
that made them but no cluster id, so one counts as an orphan only when its principal is an
identity of this cluster. Custom roles carry neither and are not scanned.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from aml_identity.api.observed import Application, Identity, RoleAssignment
from aml_identity.reconcile.names import ADOPTABLE_TAG, MANAGED_BY, TAG_PREFIX, assignment_owner

# Removal order: grants first, then the principals they name.
KINDS = ("RoleAssignment", "Application", "ManagedIdentity")


@dataclass(frozen=True)
class Orphan:
    kind: str  # one of KINDS
    id: str  # ARM id, or the application's object id
    name: str
    owner: str  # the custom resource it belonged to: "<Kind> <namespace>/<name>"
    namespace: str
    uid: str
    # Managed identities and applications: the principal their grants name (if known).
    principal_id: str | None = None
    scope: str | None = None  # role assignments

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (KINDS.index(self.kind), self.owner, self.id)


def _ours(tags: dict[str, str], cluster_id: str) -> bool:
    """Created by this cluster's operator, and not an identity it adopted (an adopted
    one was someone else's before: releasing it never deletes it)."""
    return (
        tags.get(f"{TAG_PREFIX}.managed-by") == MANAGED_BY
        and tags.get(f"{TAG_PREFIX}.cluster") == cluster_id
        and ADOPTABLE_TAG not in tags
    )


def _owner(tags: dict[str, str]) -> tuple[str, str, str]:
    kind = tags.get(f"{TAG_PREFIX}.kind", "WorkloadIdentity")
    namespace = tags.get(f"{TAG_PREFIX}.namespace", "")
    name = tags.get(f"{TAG_PREFIX}.name", "")
    return f"{kind} {namespace}/{name}", namespace, tags.get(f"{TAG_PREFIX}.uid", "")


def tag_dict(tags: Iterable[str]) -> dict[str, str]:
    """Graph tags (key:value strings) as a mapping."""
    return dict(t.split(":", 1) for t in tags if ":" in t)


def find(
    *,
    cluster_id: str,
    live: Collection[str],
    identities: Iterable[Identity],
    applications: Iterable[tuple[Application, str | None]],
    assignments: Iterable[RoleAssignment],
    principals: Collection[str],
    recorded: Collection[str] = (),
    namespaces: Collection[str] = (),
) -> list[Orphan]:
    """`live`: uids of the custom resources that exist (lower case). `applications`: each
        with its service principal's object id, if it has one. `principals`: the principal
        ids of this cluster's live identities. `recorded`: the assignments live bindings record
    (lower-case names): one made by a binding that is gone but shared with a live one is
    that one's now. `namespaces`: the ones the operator watches
        (empty: all); a resource elsewhere is not known to be gone."""
    found: list[Orphan] = []

    def gone(namespace: str, uid: str) -> bool:
        watched = not namespaces or namespace in namespaces
        return watched and bool(uid) and uid.lower() not in live

    for identity in identities:
        if not _ours(identity.tags, cluster_id):
            continue
        owner, namespace, uid = _owner(identity.tags)
        if gone(namespace, uid):
            found.append(
                Orphan("ManagedIdentity", identity.id, identity.name, owner, namespace, uid,
                       identity.principal_id)
            )  # fmt: skip
    for application, principal in applications:
        tags = tag_dict(application.tags)
        if not _ours(tags, cluster_id):
            continue
        owner, namespace, uid = _owner(tags)
        if gone(namespace, uid):
            found.append(
                Orphan("Application", application.object_id, application.display_name, owner,
                       namespace, uid, principal)
            )  # fmt: skip
    ours = {p.lower() for p in principals} | {
        o.principal_id.lower() for o in found if o.principal_id
    }
    seen: set[str] = set()
    for assignment in assignments:
        maker = assignment_owner(assignment.description)
        if maker is None or assignment.principal_id.lower() not in ours:
            continue
        name = assignment.name.lower()
        if name in seen or name in recorded or not gone(maker.namespace, maker.uid):
            continue
        seen.add(name)
        found.append(
            Orphan("RoleAssignment", assignment.id, assignment.name,
                   f"MLRoleBinding {maker.ref}", maker.namespace, maker.uid,
                   assignment.principal_id, assignment.scope)
        )  # fmt: skip
    return sorted(found, key=lambda o: o.sort_key)


def counts(orphans: Iterable[Orphan]) -> dict[str, int]:
    """Orphans by kind, every kind present (the metric's samples)."""
    result = dict.fromkeys(KINDS, 0)
    for orphan in orphans:
        result[orphan.kind] += 1
    return result


def render(orphans: list[Orphan]) -> str:
    if not orphans:
        return "no orphans\n"
    lines = [f"{'KIND':<16} {'FORMER OWNER':<44} ID"]
    lines += [f"{o.kind:<16} {o.owner:<44} {o.id}" for o in orphans]
    return "\n".join(lines) + "\n"
