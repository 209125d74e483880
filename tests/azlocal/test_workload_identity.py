"""End to end on the real world: a Kubernetes service-account token, exchanged at azlocal
for an Azure token, may do exactly what its custom role allows."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import WorkloadIdentityCredential
from azure.mgmt.msi.models import Identity

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import ARM_SCOPE, Arm, authorization_client, msi_client, operator_credential
from support.world import ENDPOINT, ML_API, RG_IDENTITIES, RG_ML, WORKSPACE

AUDIENCE = "api://AzureADTokenExchange"


@pytest.fixture
def monitor_identity(azlocal: AzLocal, cluster: LocalCluster, namespace: str) -> Identity:
    """A managed identity federated with `monitor` in `namespace`, holding only a custom
    read-only endpoint role at the workspace; set up by the operator's own principal."""
    azlocal.admin("POST", "trusted-cas", text=cluster.ca_file.read_text())
    credential = operator_credential(azlocal)
    msi = msi_client(azlocal, credential)
    name = f"monitor-{uuid.uuid4().hex[:6]}"
    identity: Identity = msi.user_assigned_identities.create_or_update(
        RG_IDENTITIES, name, {"location": "westeurope"}
    )
    msi.federated_identity_credentials.create_or_update(
        RG_IDENTITIES,
        name,
        "kubernetes-monitor",
        {
            "issuer": cluster.issuer,
            "subject": f"system:serviceaccount:{namespace}:monitor",
            "audiences": [AUDIENCE],
        },
    )
    authorization = authorization_client(azlocal, credential)
    role = authorization.role_definitions.create_or_update(
        RG_ML,
        str(uuid.uuid4()),
        {
            "role_name": f"ML Endpoint Monitor {name}",
            "role_type": "CustomRole",
            "permissions": [
                {
                    "actions": [
                        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read",
                        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/read",
                    ]
                }
            ],
            "assignable_scopes": [RG_ML],
        },
    )
    authorization.role_assignments.create(
        WORKSPACE,
        str(uuid.uuid4()),
        {
            "role_definition_id": role.id,
            "principal_id": identity.principal_id,
            "principal_type": "ServicePrincipal",
        },
    )
    cluster.kubectl("create", "serviceaccount", "monitor", "-n", namespace)
    cluster.kubectl("create", "serviceaccount", "intruder", "-n", namespace)
    return identity


def token_file(
    cluster: LocalCluster, namespace: str, account: str, tmp_path: Path, audience: str = AUDIENCE
) -> str:
    token = cluster.kubectl(
        "create", "token", account, "-n", namespace, f"--audience={audience}"
    ).stdout.strip()
    path = tmp_path / f"{account}-{audience.replace(':', '_').replace('/', '_')}.jwt"
    path.write_text(token)
    return str(path)


def workload_credential(
    azlocal: AzLocal, client_id: str | None, path: str
) -> WorkloadIdentityCredential:
    assert client_id is not None
    return WorkloadIdentityCredential(
        tenant_id=azlocal.tenant_id,
        client_id=client_id,
        token_file_path=path,
        authority=azlocal.url,
        connection_verify=str(azlocal.ca_file),
    )


def test_least_privilege_with_a_federated_service_account(
    azlocal: AzLocal,
    cluster: LocalCluster,
    namespace: str,
    monitor_identity: Identity,
    tmp_path: Path,
) -> None:
    credential = workload_credential(
        azlocal, monitor_identity.client_id, token_file(cluster, namespace, "monitor", tmp_path)
    )
    arm = Arm(azlocal, credential, retry_total=0)
    endpoint = arm.send("GET", ENDPOINT, ML_API)
    assert endpoint.status_code == 200, endpoint.text()
    assert endpoint.json()["name"] == "churn-endpoint"
    assert arm.send("GET", f"{ENDPOINT}/deployments", ML_API).status_code == 200
    write = arm.send(
        "PUT", ENDPOINT, ML_API, {"location": "westeurope", "properties": {"authMode": "Key"}}
    )
    assert write.status_code == 403
    assert write.json()["error"]["code"] == "AuthorizationFailed"
    assert (
        f"object id '{monitor_identity.principal_id}' does not have authorization"
        in write.json()["error"]["message"]
    )
    # Not even the workspace itself: the role grants endpoints only.
    assert arm.send("GET", WORKSPACE, ML_API).status_code == 403
    log = [r for r in azlocal.admin("GET", "requests") if r["operation"] == "oauth2/token"]
    assert log[-1]["clientAuth"] == "federated"


def test_other_service_accounts_and_audiences_are_refused(
    azlocal: AzLocal,
    cluster: LocalCluster,
    namespace: str,
    monitor_identity: Identity,
    tmp_path: Path,
) -> None:
    intruder = workload_credential(
        azlocal, monitor_identity.client_id, token_file(cluster, namespace, "intruder", tmp_path)
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700213"):
        intruder.get_token(ARM_SCOPE)
    wrong_audience = workload_credential(
        azlocal,
        monitor_identity.client_id,
        token_file(cluster, namespace, "monitor", tmp_path, audience="api://something-else"),
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700212"):
        wrong_audience.get_token(ARM_SCOPE)
