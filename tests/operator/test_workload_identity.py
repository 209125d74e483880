"""WorkloadIdentity (managed identity) against the real control plane and azlocal."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, msi_client
from support.operator import (
    OperatorProcess,
    apply,
    events,
    get,
    wait_gone,
    wait_message,
    wait_ready,
    wait_reason,
)
from support.poll import wait_until
from support.world import RG_IDENTITIES

MI = {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}


def test_create_update_delete(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "trainer",
        {
            "managedIdentity": {**MI, "tags": {"team": "ml"}},
            "serviceAccounts": [{"name": "trainer", "create": True}],
        },
        namespace,
    )
    obj = wait_ready(cluster, "wid", "trainer", namespace)
    status = obj["status"]
    msi = msi_client(azlocal, admin_credential(azlocal))
    name = f"{namespace}-trainer"
    identity = msi.user_assigned_identities.get(RG_IDENTITIES, name)
    assert (status["clientId"], status["principalId"]) == (
        identity.client_id,
        identity.principal_id,
    )
    assert status["tenantId"] == azlocal.tenant_id
    assert status["resourceId"] == identity.id
    assert identity.tags["team"] == "ml"
    assert identity.tags["aml-identity.uid"] == obj["metadata"]["uid"]
    assert identity.tags["aml-identity.cluster"] == "tests"
    [credential] = list(msi.federated_identity_credentials.list(RG_IDENTITIES, name))
    assert credential.name == "k8s-trainer"
    assert credential.issuer == cluster.issuer
    assert credential.subject == f"system:serviceaccount:{namespace}:trainer"
    assert credential.audiences == ["api://AzureADTokenExchange"]
    account = get(cluster, "sa", "trainer", namespace)
    assert account is not None
    assert (
        account["metadata"]["annotations"]["azure.workload.identity/client-id"]
        == identity.client_id
    )
    assert (
        account["metadata"]["annotations"]["azure.workload.identity/tenant-id"] == azlocal.tenant_id
    )
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "Created managed identity" in events

    # Update: new tag, an extra federated credential; the old credential stays.
    apply(
        cluster,
        "WorkloadIdentity",
        "trainer",
        {
            "managedIdentity": {**MI, "tags": {"team": "ml", "env": "prod"}},
            "serviceAccounts": [{"name": "trainer", "create": True}],
            "federatedCredentials": [
                {
                    "name": "github-main",
                    "issuer": "https://token.actions.githubusercontent.com",
                    "subject": "repo:contoso/ml:ref:refs/heads/main",
                }
            ],
        },
        namespace,
    )
    wait_ready(cluster, "wid", "trainer", namespace)
    assert msi.user_assigned_identities.get(RG_IDENTITIES, name).tags["env"] == "prod"
    names = {c.name for c in msi.federated_identity_credentials.list(RG_IDENTITIES, name)}
    assert names == {"k8s-trainer", "github-main"}

    # Dropped from the spec: removed from Azure.
    apply(
        cluster,
        "WorkloadIdentity",
        "trainer",
        {
            "managedIdentity": {**MI, "tags": {"team": "ml", "env": "prod"}},
            "serviceAccounts": [{"name": "trainer", "create": True}],
        },
        namespace,
    )
    wait_ready(cluster, "wid", "trainer", namespace)
    assert {c.name for c in msi.federated_identity_credentials.list(RG_IDENTITIES, name)} == {
        "k8s-trainer"
    }

    # A service account dropped from the spec loses its federation and its annotations.
    cluster.kubectl("create", "serviceaccount", "batch", "-n", namespace)
    two = [{"name": "trainer", "create": True}, {"name": "batch"}]
    apply(
        cluster,
        "WorkloadIdentity",
        "trainer",
        {"managedIdentity": MI, "serviceAccounts": two},
        namespace,
    )
    wait_ready(cluster, "wid", "trainer", namespace)
    batch = get(cluster, "sa", "batch", namespace)
    assert batch is not None
    assert (
        batch["metadata"]["annotations"]["azure.workload.identity/client-id"] == identity.client_id
    )
    apply(
        cluster,
        "WorkloadIdentity",
        "trainer",
        {"managedIdentity": MI, "serviceAccounts": two[:1]},
        namespace,
    )
    wait_ready(cluster, "wid", "trainer", namespace)

    def released() -> bool:
        account = get(cluster, "sa", "batch", namespace) or {}
        annotations = account.get("metadata", {}).get("annotations") or {}
        return "azure.workload.identity/client-id" not in annotations

    wait_until(released, what="the dropped service account's annotations to go")
    assert get(cluster, "sa", "batch", namespace) is not None, "one we did not create stays"

    cluster.kubectl("delete", "wid", "trainer", "-n", namespace, "--wait=false")
    wait_gone(cluster, "wid", "trainer", namespace)
    with pytest.raises(ResourceNotFoundError):  # gone with its WorkloadIdentity
        msi.user_assigned_identities.get(RG_IDENTITIES, name)
    wait_until(
        lambda: get(cluster, "sa", "trainer", namespace) is None,
        what="the created service account to go",
    )


def test_identity_deleted_out_of_band_is_recreated(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "drift",
        {"managedIdentity": MI, "serviceAccounts": [{"name": "drift", "create": True}]},
        namespace,
    )
    before = wait_ready(cluster, "wid", "drift", namespace)["status"]["principalId"]
    msi = msi_client(azlocal, admin_credential(azlocal))
    msi.user_assigned_identities.delete(RG_IDENTITIES, f"{namespace}-drift")

    def recreated() -> str | None:
        obj = get(cluster, "wid", "drift", namespace)
        principal = (obj or {}).get("status", {}).get("principalId")
        return principal if principal and principal != before else None

    after = wait_until(recreated, timeout=30, what="the identity to be recreated by the resync")
    assert (
        msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-drift").principal_id == after
    )
    assert (
        len(list(msi.federated_identity_credentials.list(RG_IDENTITIES, f"{namespace}-drift"))) == 1
    )
    assert "aml_identity_drift_corrections_total" in operator.metrics()
    # The resync loop posts its events itself (not through kopf's handler context).
    recreated_event = wait_until(
        lambda: [e for e in events(cluster, namespace, "drift") if e[1] == "Recreated"],
        timeout=30,
        what="the Recreated event",
    )
    assert recreated_event[0][0] == "Warning"
    assert after in recreated_event[0][2]


def test_an_identity_we_did_not_create_is_not_owned(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    msi = msi_client(azlocal, admin_credential(azlocal))
    existing = msi.user_assigned_identities.create_or_update(
        RG_IDENTITIES,
        f"{namespace}-legacy",
        {"location": "westeurope", "tags": {"owner": "someone"}},
    )
    # The owner's own federation, which the spec declares too (as `aml-identity export`
    # writes it): adopting keeps it, and releasing never removes it.
    theirs_fic = {"issuer": "https://issuer.example", "subject": "legacy-ci"}
    msi.federated_identity_credentials.create_or_update(
        RG_IDENTITIES,
        f"{namespace}-legacy",
        "theirs",
        {**theirs_fic, "audiences": ["api://AzureADTokenExchange"]},
    )
    spec = {
        "managedIdentity": MI,
        "serviceAccounts": [{"name": "legacy-sa", "create": True}],
        "federatedCredentials": [{"name": "theirs", **theirs_fic}],
    }
    apply(cluster, "WorkloadIdentity", "legacy", spec, namespace)
    found = wait_reason(cluster, "wid", "legacy", "NotOwned", namespace)
    assert found["status"] == "False"
    assert "was not created by this WorkloadIdentity" in found["message"]
    assert msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-legacy").tags == {
        "owner": "someone"
    }
    # Adoption takes two parties: the resource asks (annotation, allowed by a policy) ...
    cluster.kubectl("annotate", "wid", "legacy", "-n", namespace, "identity.aml.dev/adopt=true")
    refused = wait_message(cluster, "wid", "legacy", "does not consent", namespace)
    assert f"aml-identity.adoptable-by={namespace}/legacy" in refused["message"]
    # ... and the identity's owner consents with a tag naming the one resource.
    theirs = {"owner": "someone", "aml-identity.adoptable-by": f"{namespace}/legacy"}
    msi.user_assigned_identities.update(RG_IDENTITIES, f"{namespace}-legacy", {"tags": theirs})
    obj = wait_ready(cluster, "wid", "legacy", namespace)
    assert obj["status"]["principalId"] == existing.principal_id
    adopted = msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-legacy").tags
    # Adoption writes nothing: the owner's tags stay exactly as they are (no ownership
    # tags); the resource knows its identity by the principal id in its status.
    assert adopted == theirs
    assert obj["status"]["adoptedFederatedCredentials"] == ["theirs"]

    def credentials() -> set[str]:
        listed = msi.federated_identity_credentials.list(RG_IDENTITIES, f"{namespace}-legacy")
        return {c.name for c in listed}

    assert credentials() == {"theirs", "k8s-legacy-sa"}
    assert obj["status"]["adopted"] is True
    # The owner withdraws consent: the identity is no longer managed (nothing written to
    # it, its tags stay the owner's), until the tag is back.
    msi.user_assigned_identities.update(
        RG_IDENTITIES, f"{namespace}-legacy", {"tags": {"owner": "someone"}}
    )
    withdrawn = wait_message(cluster, "wid", "legacy", "withdrawn consent", namespace)
    assert withdrawn["reason"] == "NotOwned"
    assert msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-legacy").tags == {
        "owner": "someone"
    }
    msi.user_assigned_identities.update(RG_IDENTITIES, f"{namespace}-legacy", {"tags": theirs})
    wait_ready(cluster, "wid", "legacy", namespace)
    # Deleting the resource releases the adopted identity to its owner (Orphan by default):
    # the credential it made goes, the owner's stays.
    cluster.kubectl("delete", "wid", "legacy", "-n", namespace)
    wait_gone(cluster, "wid", "legacy", namespace)
    assert msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-legacy").tags == theirs
    assert credentials() == {"theirs"}


def test_observe_mode_never_writes(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "watcher",
        {"managedIdentity": MI, "managementPolicy": "Observe"},
        namespace,
    )
    found = wait_reason(cluster, "wid", "watcher", "DriftDetected", namespace)
    assert found["status"] == "False"
    obj = get(cluster, "wid", "watcher", namespace)
    assert obj is not None
    assert obj["status"]["pendingChanges"] == [
        f"create managed identity {namespace}-watcher in {RG_IDENTITIES} (westeurope)"
    ]
    msi = msi_client(azlocal, admin_credential(azlocal))
    with pytest.raises(ResourceNotFoundError):  # Observe mode creates nothing
        msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-watcher")
    cluster.kubectl("delete", "wid", "watcher", "-n", namespace)
    wait_gone(cluster, "wid", "watcher", namespace)


def test_liveness_and_metrics_endpoints(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    import urllib.request

    apply(cluster, "WorkloadIdentity", "counted", {"managedIdentity": MI}, namespace)
    wait_ready(cluster, "wid", "counted", namespace)

    def alive() -> bool:
        try:
            with urllib.request.urlopen(operator.liveness_url, timeout=5) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until(alive, timeout=30, what="the liveness endpoint")
    metrics = operator.metrics()
    assert 'aml_identity_reconciles_total{kind="WorkloadIdentity",result="ready"}' in metrics
    assert "aml_identity_azure_requests_total{" in metrics


def test_orphan_policy_leaves_azure_alone(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "keeper",
        {"managedIdentity": MI, "deletionPolicy": "Orphan"},
        namespace,
    )
    principal = wait_ready(cluster, "wid", "keeper", namespace)["status"]["principalId"]
    cluster.kubectl("delete", "wid", "keeper", "-n", namespace)
    wait_gone(cluster, "wid", "keeper", namespace)
    msi = msi_client(azlocal, admin_credential(azlocal))
    assert (
        msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-keeper").principal_id
        == principal
    )
    msi.user_assigned_identities.delete(RG_IDENTITIES, f"{namespace}-keeper")


def test_no_secret_in_logs_events_or_status(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(cluster, "WorkloadIdentity", "quiet", {"managedIdentity": MI}, namespace)
    obj = wait_ready(cluster, "wid", "quiet", namespace)
    secret = azlocal.issued.secrets["aml-identity-operator"]
    events = cluster.kubectl("get", "events", "-A", "-o", "json").stdout
    assert secret not in operator.logs()
    assert secret not in events
    assert secret not in str(obj)


def test_a_service_account_held_by_another_workload_identity_is_not_taken(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    """Two WorkloadIdentities naming one service account: the first keeps it, the second
    reports Conflict, and deleting the second leaves the first's annotations alone."""
    accounts = {"serviceAccounts": [{"name": "contested", "create": True}]}
    apply(cluster, "WorkloadIdentity", "holder", {"managedIdentity": MI, **accounts}, namespace)
    holder = wait_ready(cluster, "wid", "holder", namespace)["status"]["clientId"]

    def annotation() -> str:
        account = get(cluster, "sa", "contested", namespace)
        assert account is not None
        return str(account["metadata"]["annotations"]["azure.workload.identity/client-id"])

    assert annotation() == holder
    apply(cluster, "WorkloadIdentity", "taker", {"managedIdentity": MI, **accounts}, namespace)
    found = wait_reason(cluster, "wid", "taker", "Conflict", namespace)
    assert found["status"] == "False"
    assert (
        "service account contested is already bound to WorkloadIdentity holder"
        in (found["message"])
    )
    taker = get(cluster, "wid", "taker", namespace)
    assert taker is not None
    assert taker["status"]["clientId"] != holder
    assert annotation() == holder
    cluster.kubectl("delete", "wid", "taker", "-n", namespace)
    wait_gone(cluster, "wid", "taker", namespace)
    assert annotation() == holder, "deleting the other WorkloadIdentity stripped the holder's"


def test_a_kubernetes_refusal_after_azure_writes_is_reported_in_status(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    """The service account cannot be created (a quota allows none): the managed identity
    that was just created is still recorded, with a status and an event that say why."""
    cluster.kubectl(
        "create", "quota", "no-more-accounts", "-n", namespace, "--hard=count/serviceaccounts=1"
    )
    wait_until(
        lambda: (
            "count/serviceaccounts"
            in cluster.kubectl(
                "get", "quota", "no-more-accounts", "-n", namespace, "-o", "json"
            ).stdout
            and '"used"'
            in cluster.kubectl(
                "get", "quota", "no-more-accounts", "-n", namespace, "-o", "json"
            ).stdout
        ),
        timeout=30,
        what="the quota to be counted",
    )
    spec = {"managedIdentity": MI, "serviceAccounts": [{"name": "over-quota", "create": True}]}
    apply(cluster, "WorkloadIdentity", "refused", spec, namespace)
    found = wait_reason(cluster, "wid", "refused", "Forbidden", namespace)
    assert "Kubernetes API" in found["message"]
    assert "quota" in found["message"]
    obj = get(cluster, "wid", "refused", namespace)
    assert obj is not None
    assert obj["status"]["clientId"], "the identity made is not recorded"
    wait_until(
        lambda: any(e[1] == "Created" for e in events(cluster, namespace, "refused")),
        timeout=30,
        what="the Created event of the identity",
    )
    cluster.kubectl("delete", "quota", "no-more-accounts", "-n", namespace)
    cluster.kubectl("delete", "wid", "refused", "-n", namespace)
    wait_gone(cluster, "wid", "refused", namespace)
