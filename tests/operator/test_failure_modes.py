"""Azure's failure modes, the operator's own crashes, and quiet at rest."""

from __future__ import annotations

import itertools
import signal
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, authorization_client, msi_client
from support.operator import (
    OperatorProcess,
    apply,
    apply_json,
    get,
    wait_gone,
    wait_ready,
    wait_reason,
)
from support.policies import policy
from support.poll import wait_until
from support.world import RG_IDENTITIES, SUB

MI = {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}
DEV = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-dev"}}
WRITES = ("PUT", "PATCH", "DELETE", "POST")
PRINCIPAL = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def test_replication_delay_is_waited_out(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(cluster, "WorkloadIdentity", "fresh", {"managedIdentity": MI}, namespace)
    wait_ready(cluster, "wid", "fresh", namespace)
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "PUT",
            "pathPattern": "workspaces/ws-dev/providers/Microsoft.Authorization/roleAssignments/",
            "count": 2,
            "status": 400,
            "code": "PrincipalNotFound",
            "message": "Principal does not exist in the directory. If you are creating this "
            "principal and then "
            "immediately assigning a role, this error might be related to a replication delay.",
        },
    )
    apply(
        cluster,
        "MLRoleBinding",
        "fresh",
        {"role": {"builtIn": "Reader"}, "subjects": [{"workloadIdentity": "fresh"}], "scope": DEV},
        namespace,
    )
    waiting = wait_reason(cluster, "mlrb", "fresh", "WaitingForPrincipalReplication", namespace)
    assert waiting["status"] == "Unknown"
    assert "PrincipalNotFound" in waiting["message"]
    wait_ready(cluster, "mlrb", "fresh", namespace, timeout=60)
    cluster.kubectl("delete", "mlrb", "fresh", "-n", namespace)
    wait_gone(cluster, "mlrb", "fresh", namespace)


def test_throttling_honours_retry_after(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "PUT",
            "pathPattern": f"userAssignedIdentities/{namespace}-busy$",
            "count": 5,
            "status": 429,
            "code": "SubscriptionRequestsThrottled",
            "message": "Number of 'write' requests exceeded.",
            "retryAfter": 1,
        },
    )
    apply(cluster, "WorkloadIdentity", "busy", {"managedIdentity": MI}, namespace)
    wait_ready(cluster, "wid", "busy", namespace, timeout=90)
    attempts = [
        r
        for r in azlocal.admin("GET", "requests")
        if r["path"].endswith(f"/{namespace}-busy") and r["method"] == "PUT"
    ]
    assert [r["status"] for r in attempts][:5] == [429] * 5
    assert attempts[-1]["status"] == 201
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(attempts)]
    assert min(gaps) >= 0.9, f"retried before Retry-After elapsed: {gaps}"


def test_deletion_waits_while_access_is_revoked(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(cluster, "WorkloadIdentity", "revoked", {"managedIdentity": MI}, namespace)
    wait_ready(cluster, "wid", "revoked", namespace)
    admin = authorization_client(azlocal, admin_credential(azlocal))
    operator_id = azlocal.principal("aml-identity-operator").object_id
    scope = f"{SUB and '/subscriptions/' + SUB}/resourceGroups/{RG_IDENTITIES}"
    [grant] = [
        a
        for a in admin.role_assignments.list_for_scope(
            scope, filter=f"principalId eq '{operator_id}'"
        )
        if a.scope.lower() == scope.lower()
    ]
    admin.role_assignments.delete(scope, grant.name)
    try:
        cluster.kubectl("delete", "wid", "revoked", "-n", namespace, "--wait=false")
        blocked = wait_reason(cluster, "wid", "revoked", "DeletionBlocked", namespace)
        assert "AuthorizationFailed" in blocked["message"]
        obj = get(cluster, "wid", "revoked", namespace)
        assert obj is not None
        assert "identity.aml.dev/finalizer" in obj["metadata"]["finalizers"]
    finally:
        admin.role_assignments.create(
            scope,
            grant.name,
            {
                "role_definition_id": grant.role_definition_id,
                "principal_id": operator_id,
                "principal_type": "ServicePrincipal",
            },
        )
    wait_gone(cluster, "wid", "revoked", namespace, timeout=120)
    with pytest.raises(ResourceNotFoundError):  # deleted once access returned
        msi_client(azlocal, admin_credential(azlocal)).user_assigned_identities.get(
            RG_IDENTITIES, f"{namespace}-revoked"
        )


def test_many_service_accounts_write_credentials_one_at_a_time(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    azlocal.admin("PATCH", "settings", {"ficWriteSeconds": 0.2})
    try:
        accounts = [{"name": f"job-{i}", "create": True} for i in range(6)]
        apply(
            cluster,
            "WorkloadIdentity",
            "fanout",
            {"managedIdentity": MI, "serviceAccounts": accounts},
            namespace,
        )
        wait_ready(cluster, "wid", "fanout", namespace)
    finally:
        azlocal.admin("PATCH", "settings", {"ficWriteSeconds": 0.05})
    writes = [
        r
        for r in azlocal.admin("GET", "requests")
        if f"/{namespace}-fanout/federatedIdentityCredentials/" in r["path"]
    ]
    assert len(writes) == 6
    assert all(r["status"] == 201 for r in writes), [r["status"] for r in writes]


def test_no_azure_writes_at_rest(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "settled",
        {"managedIdentity": MI, "serviceAccounts": [{"name": "settled", "create": True}]},
        namespace,
    )
    wait_ready(cluster, "wid", "settled", namespace)
    apply(
        cluster,
        "MLRoleBinding",
        "settled",
        {
            "role": {"builtIn": "Reader"},
            "subjects": [{"workloadIdentity": "settled"}],
            "scope": DEV,
        },
        namespace,
    )
    binding = wait_ready(cluster, "mlrb", "settled", namespace)
    # Other tests' namespaces may still be cleaning up: look only at these resources.
    ours = [f"/{namespace}-settled", *(a["name"] for a in binding["status"]["assignments"])]
    versions = {k: (get(cluster, k, "settled", namespace) or {}) for k in ("wid", "mlrb")}
    azlocal.admin("DELETE", "requests")
    lines = [f"WorkloadIdentity {namespace}/settled: ", f"MLRoleBinding {namespace}/settled: "]
    before = [operator.logs().count(line) for line in lines]

    def synced_twice() -> bool:
        logs = operator.logs()
        return all(logs.count(line) >= n + 2 for line, n in zip(lines, before, strict=True))

    wait_until(synced_twice, timeout=60, interval=1, what="two resync cycles (5 s each)")
    # Nothing changed, so nothing was written to Kubernetes either: not even a timestamp.
    for kind, seen in versions.items():
        now = get(cluster, kind, "settled", namespace) or {}
        assert now["metadata"]["resourceVersion"] == seen["metadata"]["resourceVersion"], kind
        assert "lastSyncTime" not in now["status"]
    requests = [r for r in azlocal.admin("GET", "requests") if any(o in r["path"] for o in ours)]
    reads = [r for r in requests if r["method"] == "GET"]
    writes = [
        r
        for r in requests
        if r["method"] in WRITES and not r["path"].endswith("/oauth2/v2.0/token")
    ]
    assert reads, "the resync did not look at Azure"
    assert writes == [], writes


def test_operator_killed_mid_reconcile_leaves_no_duplicates(
    cluster: LocalCluster, azlocal: AzLocal, crds_installed: None, namespace: str, tmp_path: Path
) -> None:
    first = OperatorProcess(cluster, azlocal, tmp_path, resync=5).start()
    try:
        azlocal.admin("PATCH", "settings", {"latencyMs": 400})
        accounts = [{"name": f"w-{i}", "create": True} for i in range(4)]
        apply(
            cluster,
            "WorkloadIdentity",
            "crash",
            {"managedIdentity": MI, "serviceAccounts": accounts},
            namespace,
        )
        wait_until(
            lambda: any(
                f"/{namespace}-crash/federatedIdentityCredentials/" in r["path"]
                for r in azlocal.admin("GET", "requests")
            ),
            timeout=60,
            what="the operator to start writing federated credentials",
        )
        first.stop(signal.SIGKILL)
    finally:
        azlocal.admin("PATCH", "settings", {"latencyMs": 0})
        first.stop()
    second = OperatorProcess(cluster, azlocal, tmp_path, resync=5).start()
    try:
        wait_ready(cluster, "wid", "crash", namespace, timeout=90)
    finally:
        second.stop()
    msi = msi_client(azlocal, admin_credential(azlocal))
    names = [
        i.name
        for i in msi.user_assigned_identities.list_by_resource_group(RG_IDENTITIES)
        if i.name.startswith(f"{namespace}-crash")
    ]
    assert names == [f"{namespace}-crash"]
    credentials = sorted(
        c.name for c in msi.federated_identity_credentials.list(RG_IDENTITIES, f"{namespace}-crash")
    )
    assert credentials == [f"k8s-w-{i}" for i in range(4)]


def test_a_namespace_whose_azure_containers_never_existed_is_deleted_promptly(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, bare_namespace: str
) -> None:
    """Nothing was ever created in a resource group that does not exist: deleting the
    resources (here, with their namespace) must not wait on Azure, nor flood the log with
    events the terminating namespace refuses."""
    ns = bare_namespace
    missing = f"rg-never-{ns}"
    cluster.kubectl("label", "namespace", ns, f"aml-tests/never={ns}")
    apply_json(
        cluster,
        policy(
            f"{ns}-never",
            {
                "namespaceSelector": {"matchLabels": {"aml-tests/never": ns}},
                "scopes": [{"subscription": SUB}],
                "roles": [{"builtIn": ["Reader"]}],
                "identities": {"managedIdentities": [{"resourceGroup": missing}]},
                "subjects": {"principalIds": [{"principalId": PRINCIPAL}]},
            },
        ),
    )
    try:
        apply(
            cluster,
            "WorkloadIdentity",
            "nowhere",
            {"managedIdentity": {"resourceGroup": missing, "location": "westeurope"}},
            ns,
        )
        apply(
            cluster,
            "MLRoleBinding",
            "nowhere",
            {
                "role": {"builtIn": "Reader"},
                "subjects": [
                    {
                        "principalId": PRINCIPAL,
                        "principalType": "ServicePrincipal",
                    }
                ],
                "scope": {"resourceGroup": {"name": missing}},
            },
            ns,
        )
        # The operator may not read identities there (Azure checks access before
        # existence); it may read role assignments in the whole subscription (its
        # read-only role for undeclared grants), so for the binding Azure says the
        # resource group is missing.
        wid = wait_reason(cluster, "wid", "nowhere", "Forbidden", ns)
        assert missing in wid["message"]
        binding = wait_reason(cluster, "mlrb", "nowhere", "InvalidSpec", ns)
        assert f"Resource group '{missing}' could not be found" in binding["message"]
        logged = len(operator.logs().splitlines())
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
        wait_until(
            lambda: cluster.kubectl("get", "namespace", ns, check=False).returncode != 0,
            timeout=60,
            what=f"namespace {ns} to be deleted",
        )
        after = operator.logs().splitlines()[logged:]
        noisy = [line for line in after if ns in line and ("ERROR" in line or "WARNING" in line)]
        assert len(noisy) <= 4, "\n".join(noisy)
    finally:
        cluster.kubectl("delete", "mlaccesspolicy", f"{ns}-never", "--ignore-not-found")


def test_an_identity_whose_resource_group_was_deleted_is_let_go(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """Deleting a resource group deletes what is in it: ARM then answers every request
    under it with 404 ResourceGroupNotFound (injected here; azlocal's resource groups are
    fixed). The identity is gone, so its WorkloadIdentity goes too, instead of waiting."""
    apply(cluster, "WorkloadIdentity", "rg-deleted", {"managedIdentity": MI}, namespace)
    wait_ready(cluster, "wid", "rg-deleted", namespace)
    gone = {
        "pathPattern": f"resourceGroups/{RG_IDENTITIES}/providers/Microsoft.ManagedIdentity/",
        "count": 1000,
        "status": 404,
        "code": "ResourceGroupNotFound",
        "message": f"Resource group '{RG_IDENTITIES}' could not be found.",
    }
    for method in ("GET", "DELETE"):
        azlocal.admin("POST", "faults", {**gone, "method": method})
    try:
        cluster.kubectl("delete", "wid", "rg-deleted", "-n", namespace, "--wait=false")
        wait_gone(cluster, "wid", "rg-deleted", namespace, timeout=30)
    finally:
        azlocal.admin("DELETE", "faults")
