"""Deterministic names and the ownership tags of Azure objects the operator creates.

Deterministic names make creates idempotent (a PUT under the same name after a crash
finds the object it made) and make role assignments recognisable as ours.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

# Fixed forever: changing it would orphan every role assignment already created.
NAMESPACE = uuid.UUID("3f0b8a4e-1c2d-5e6f-8a9b-0c1d2e3f4a5b")
TAG_PREFIX = "aml-identity"
MANAGED_BY = "aml-identity-operator"
IDENTITY_NAME_MAX = 128
FIC_NAME_MAX = 120
ADOPT_ANNOTATION = "identity.aml.dev/adopt"
# Set on an Azure object by its owner: "<namespace>/<name>" of the one WorkloadIdentity
# that may adopt it (the second party of adoption's two-party consent). Never removed by
# the operator, so it also marks the object as adopted (Orphan on delete by default).
ADOPTABLE_TAG = f"{TAG_PREFIX}.adoptable-by"


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


def _fit(base: str, limit: int, *hash_parts: str) -> str:
    """`base` if it fits, else a cut of it with a hash of the full parts appended."""
    if len(base) <= limit:
        return base
    suffix = "-" + _short_hash(*hash_parts)
    return base[: limit - len(suffix)].rstrip("-_") + suffix


def identity_name(namespace: str, name: str) -> str:
    """Default managed-identity name: <namespace>-<name>, within Azure's 3-128 rule."""
    base = re.sub(r"[^a-zA-Z0-9_-]", "-", f"{namespace}-{name}")
    return _fit(base, IDENTITY_NAME_MAX, namespace, name)


def service_account_credential_name(service_account: str) -> str:
    """Federated credential for a service account (same namespace as the identity).

    The `k8s-` prefix is reserved: spec.federatedCredentials may not use it.
    """
    base = "k8s-" + re.sub(r"[^a-zA-Z0-9_-]", "-", service_account)
    if base != "k8s-" + service_account:  # dots were replaced: keep names distinct
        base = f"{base}-{_short_hash(service_account)}"
    return _fit(base, FIC_NAME_MAX, service_account)


def definition_guid(role_definition_id: str) -> str:
    """The GUID of a role definition id (or of a bare GUID), in lower case."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def role_assignment_name(scope: str, role_definition_id: str, principal_id: str) -> str:
    """uuid5 over (scope, role definition GUID, principal id), case-insensitive."""
    role_guid = definition_guid(role_definition_id)
    key = f"{scope.rstrip('/').lower()}|{role_guid}|{principal_id.lower()}"
    return str(uuid.uuid5(NAMESPACE, key))


@dataclass(frozen=True, order=True)
class AssignmentOwner:
    """The MLRoleBinding that created a role assignment, as its description records it
    (role assignments have no tags)."""

    namespace: str
    name: str
    uid: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def marker(self) -> str:
        return f"[{MANAGED_BY}: MLRoleBinding {self.ref} uid={self.uid}]"


_OWNER_MARKER = re.compile(
    rf"\[{MANAGED_BY}: MLRoleBinding ([^/\s]+)/(\S+) uid=([0-9a-fA-F-]{{36}})\]\s*$"
)


def assignment_description(text: str | None, owner: AssignmentOwner) -> str:
    """The description of a role assignment a binding creates: the spec's text, then the
    owner marker (last, so the text may contain anything)."""
    return f"{text.rstrip()} {owner.marker}" if text and text.strip() else owner.marker


def assignment_owner(description: str | None) -> AssignmentOwner | None:
    """The binding that created an assignment, from its description; None when it was not
    made by a binding (or was made before bindings recorded themselves)."""
    found = _OWNER_MARKER.search(description or "")
    if found is None:
        return None
    namespace, name, uid = found.groups()
    return AssignmentOwner(namespace, name, uid.lower())


def role_definition_name(cluster_id: str, ml_role: str) -> str:
    """GUID of the custom role an MLRole owns (cluster-scoped name)."""
    return str(uuid.uuid5(NAMESPACE, f"mlrole|{cluster_id.lower()}|{ml_role}"))


def ownership_tags(
    cluster_id: str, kind: str, namespace: str, name: str, uid: str
) -> dict[str, str]:
    """Tags marking an Azure object as created by one custom resource."""
    return {
        f"{TAG_PREFIX}.managed-by": MANAGED_BY,
        f"{TAG_PREFIX}.cluster": cluster_id,
        f"{TAG_PREFIX}.kind": kind,
        f"{TAG_PREFIX}.namespace": namespace,
        f"{TAG_PREFIX}.name": name,
        f"{TAG_PREFIX}.uid": uid,
    }


def owned_by(tags: dict[str, str], uid: str) -> bool:
    return (
        tags.get(f"{TAG_PREFIX}.uid") == uid and tags.get(f"{TAG_PREFIX}.managed-by") == MANAGED_BY
    )


def application_unique_name(cluster_id: str, namespace: str, name: str, uid: str) -> str:
    """The uniqueName of the application a WorkloadIdentity owns: stable across
    operator restarts, so creating it is an upsert that cannot make a duplicate."""
    return "aml-identity-" + str(
        uuid.uuid5(NAMESPACE, f"app|{cluster_id}|{namespace}|{name}|{uid}")
    )


def ownership_tag_list(tags: dict[str, str]) -> list[str]:
    """Graph applications carry tags as strings: key:value."""
    return [f"{key}:{value}" for key, value in sorted(tags.items())]


def owned_by_list(tags: tuple[str, ...] | list[str], uid: str) -> bool:
    return owned_by(dict(t.split(":", 1) for t in tags if ":" in t), uid)
