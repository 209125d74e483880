"""Undeclared grants: a role assignment to an identity the operator manages that no
MLRoleBinding declares is reported (condition, one event, metric, the access report), and
removed with spec.exclusiveGrants once an MLAccessPolicy allows it; declared grants and
other principals' assignments are never touched."""

from __future__ import annotations

import json
import time
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, authorization_client, grant_by_hand, msi_client
from support.operator import OperatorProcess, apply, events, get, wait_ready
from support.policies import Policies
from support.poll import wait_until
from support.world import RG_IDENTITIES, RG_ML, SUB, WORKSPACE

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
ROLES = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"


def grants_condition(cluster: LocalCluster, name: str, namespace: str) -> dict[str, Any]:
    obj = get(cluster, "wid", name, namespace) or {}
    found = [
        c
        for c in (obj.get("status") or {}).get("conditions", [])
        if c["type"] == "UndeclaredGrants"
    ]
    return found[0] if found else {}


def wait_grants(
    cluster: LocalCluster, name: str, namespace: str, status: str, what: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = grants_condition(cluster, name, namespace)
        return found if found.get("status") == status else None

    return wait_until(probe, timeout=45, what=what)


def resyncs(operator: OperatorProcess, namespace: str, name: str) -> int:
    """How many times the operator has compared the identity with Azure (its log line)."""
    return operator.logs().count(f"WorkloadIdentity {namespace}/{name}: Reconciled")


def two_more_resyncs(operator: OperatorProcess, namespace: str, name: str) -> None:
    looked = resyncs(operator, namespace, name)
    wait_until(
        lambda: resyncs(operator, namespace, name) >= looked + 2,
        timeout=30,
        what=f"two more resyncs of {namespace}/{name}",
    )


def metric(operator: OperatorProcess, namespace: str, name: str) -> float | None:
    for line in operator.metrics().splitlines():
        labels, _, value = line.rpartition(" ")
        if labels.startswith("aml_identity_undeclared_grants{") and all(
            f'{key}="{v}"' in labels for key, v in (("namespace", namespace), ("name", name))
        ):
            return float(value)
    return None


def test_an_undeclared_grant_is_reported_then_removed_with_exclusive_grants(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
) -> None:
    namespace, policies = guarded
    allowed: dict[str, Any] = {
        "scopes": [{"resourceGroup": {"name": "rg-ml"}}],
        "roles": [{"builtIn": ["Reader"]}],
        "identities": {"managedIdentities": [{"resourceGroup": RG_IDENTITIES}]},
    }
    policies.put("team", **allowed)
    mi = {"managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}}
    apply(cluster, "WorkloadIdentity", "tracked", mi, namespace)
    binding = {
        "role": {"builtIn": "Reader"},
        "subjects": [{"workloadIdentity": "tracked"}],
        "scope": {"resourceGroup": {"name": "rg-ml"}},
    }
    apply(cluster, "MLRoleBinding", "declared", binding, namespace)
    principal = wait_ready(cluster, "wid", "tracked", namespace)["status"]["principalId"]
    [declared] = wait_ready(cluster, "mlrb", "declared", namespace)["status"]["assignments"]

    # The binding's own grant is declared: nothing to report.
    clean = wait_grants(cluster, "tracked", namespace, "False", "UndeclaredGrants=False")
    assert clean["reason"] == "AllGrantsDeclared"

    # Someone grants the identity more by hand, at the workspace.
    admin = authorization_client(azlocal, admin_credential(azlocal))
    by_hand = grant_by_hand(azlocal, WORKSPACE, ROLES + DATA_SCIENTIST, principal)
    found = wait_grants(cluster, "tracked", namespace, "True", "UndeclaredGrants=True")
    assert found["reason"] == "UndeclaredGrants"
    assert by_hand in found["message"]
    assert f"AzureML Data Scientist at {WORKSPACE}" in found["message"]
    assert WORKSPACE in found["message"]
    assert declared["name"] not in found["message"]
    status = (get(cluster, "wid", "tracked", namespace) or {})["status"]
    assert status["undeclaredGrants"] == [
        {
            "name": by_hand,
            "scope": WORKSPACE,
            "roleDefinitionId": ROLES + DATA_SCIENTIST,
            "roleName": "AzureML Data Scientist",
        }
    ]
    assert status["conditions"][0]["type"] == "Ready"
    assert status["conditions"][0]["status"] == "True"  # reported, not a failure
    assert metric(operator, namespace, "tracked") == 1.0

    # One event per new finding, not one per resync (the operator resyncs every 5 s).
    two_more_resyncs(operator, namespace, "tracked")
    warnings = [
        m
        for t, r, m in events(cluster, namespace, "tracked")
        if t == "Warning" and r == "UndeclaredGrant"
    ]
    assert len(warnings) == 1, warnings
    assert by_hand in warnings[0]

    # The access report lists it.
    report = json.loads(operator.cli("report", "-o", "json").stdout)
    mine = [f for f in report["findings"] if f["identity"] == f"{namespace}/tracked"]
    assert [f["kind"] for f in mine if f["kind"] == "UndeclaredGrant"] == ["UndeclaredGrant"]

    # Declared afterwards by a binding that writes nothing (Observe): no longer reported;
    # that binding gone, reported again.
    widened = {**allowed, "roles": [{"builtIn": ["Reader", "AzureML Data Scientist"]}]}
    policies.put("team", **widened)
    observer = {
        "role": {"builtIn": "AzureML Data Scientist"},
        "subjects": [{"workloadIdentity": "tracked"}],
        "scope": {"resourceId": WORKSPACE},
        "managementPolicy": "Observe",
    }
    apply(cluster, "MLRoleBinding", "observer", observer, namespace)
    wait_grants(cluster, "tracked", namespace, "False", "declared by the Observe binding")
    cluster.kubectl("delete", "mlrb", "observer", "-n", namespace)
    wait_grants(cluster, "tracked", namespace, "True", "reported again")
    policies.put("team", **allowed)

    # exclusiveGrants needs a policy that allows it: refused at apply without one.
    exclusive = {**mi, "exclusiveGrants": True}
    refused = cluster.kubectl(
        "apply",
        "-f",
        "-",
        check=False,
        input=json.dumps(
            {
                "apiVersion": "identity.aml.dev/v1alpha1",
                "kind": "WorkloadIdentity",
                "metadata": {"name": "tracked", "namespace": namespace},
                "spec": exclusive,
            }
        ),
    )
    assert refused.returncode != 0
    assert "spec.identities.exclusiveGrants" in refused.stderr, refused.stderr

    # Before it is allowed: a grant an Observe binding declares (it records nothing, but
    # its spec names the identity, the role and the scope), and another principal's
    # grant at the same scope. Neither may go.
    other = azlocal.principal("legacy-ci").object_id
    observed_grant = grant_by_hand(azlocal, WORKSPACE, ROLES + READER, principal)
    others_grant = grant_by_hand(azlocal, WORKSPACE, ROLES + READER, other)
    watching = {**binding, "scope": {"resourceId": WORKSPACE}, "managementPolicy": "Observe"}
    apply(cluster, "MLRoleBinding", "watching", watching, namespace)

    # Allowed: the hand-made grant goes; the declared ones and the identity stay.
    policies.put(
        "team", **{**allowed, "identities": {**allowed["identities"], "exclusiveGrants": True}}
    )
    apply(cluster, "WorkloadIdentity", "tracked", exclusive, namespace)

    def removed() -> bool:
        try:
            admin.role_assignments.get(WORKSPACE, by_hand)
        except ResourceNotFoundError:
            return True
        return False

    wait_until(removed, timeout=45, what="the undeclared grant to be removed")
    wait_grants(cluster, "tracked", namespace, "False", "UndeclaredGrants=False again")
    assert admin.role_assignments.get(WORKSPACE, observed_grant).principal_id == principal
    assert admin.role_assignments.get(WORKSPACE, others_grant).principal_id == other
    for grant in (others_grant, observed_grant):
        admin.role_assignments.delete(WORKSPACE, grant)
    assert admin.role_assignments.get(RG_ML, declared["name"]).principal_id == principal
    assert any(
        t == "Warning" and r == "RemovedUndeclaredGrant" and by_hand in m
        for t, r, m in events(cluster, namespace, "tracked")
    )
    wait_until(
        lambda: metric(operator, namespace, "tracked") == 0.0,
        timeout=15,
        what="the metric to drop to 0",
    )
    assert (get(cluster, "wid", "tracked", namespace) or {})["status"]["undeclaredGrants"] == []


def test_a_grant_a_binding_is_about_to_adopt_is_never_reported_or_removed(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
) -> None:
    """An identity adopted with its grants (what `aml-identity export` writes), applied
    together with the binding that declares them: the identity's first look comes before
    the binding's (which waits for the identity to be Ready), and the grant the binding
    is about to adopt must be neither reported nor removed."""
    namespace, policies = guarded
    policies.put(
        "team",
        scopes=[{"resourceGroup": {"name": "rg-ml"}}],
        roles=[{"builtIn": ["Reader"]}],
        identities={"exclusiveGrants": True},
        adoption={"resourceGroups": [{"name": RG_IDENTITIES}]},
    )
    msi = msi_client(azlocal, admin_credential(azlocal))
    consent = {"aml-identity.adoptable-by": f"{namespace}/adopter"}
    existing = msi.user_assigned_identities.create_or_update(
        RG_IDENTITIES, f"{namespace}-adopter", {"location": "westeurope", "tags": consent}
    )
    admin = authorization_client(azlocal, admin_credential(azlocal))
    by_hand = grant_by_hand(azlocal, RG_ML, ROLES + READER, existing.principal_id)
    since = time.time()
    mi = {
        "managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"},
        "exclusiveGrants": True,
    }
    binding = {
        "role": {"builtIn": "Reader"},
        "subjects": [{"workloadIdentity": "adopter"}],
        "scope": {"resourceGroup": {"name": "rg-ml"}},
    }
    apply(
        cluster,
        "WorkloadIdentity",
        "adopter",
        mi,
        namespace,
        annotations={"identity.aml.dev/adopt": "true"},
    )
    apply(cluster, "MLRoleBinding", "adopting", binding, namespace)
    [record] = wait_ready(cluster, "mlrb", "adopting", namespace)["status"]["assignments"]
    assert (record["name"], record["created"]) == (by_hand, False)
    wait_grants(cluster, "adopter", namespace, "False", "UndeclaredGrants=False")
    two_more_resyncs(operator, namespace, "adopter")
    deletes = [
        r
        for r in azlocal.admin("GET", "requests")
        if r["method"] == "DELETE" and by_hand in r["path"] and r["time"] >= since
    ]
    assert deletes == []
    assert admin.role_assignments.get(RG_ML, by_hand).principal_id == existing.principal_id
    reasons = {r for _, r, _ in events(cluster, namespace, "adopter")}
    assert not reasons & {"RemovedUndeclaredGrant", "UndeclaredGrant"}
