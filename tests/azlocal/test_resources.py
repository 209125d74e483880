"""Resource groups and Azure ML resources, through azure-mgmt-core's ARM pipeline."""

from __future__ import annotations

from azlocal.server import AzLocal
from support.azure import Arm, admin_credential, operator_credential
from support.world import ENDPOINT, ML_API, RG_ML, SUB, WORKSPACE


def test_reads_for_the_operator(azlocal: AzLocal) -> None:
    arm = Arm(azlocal, operator_credential(azlocal), retry_total=0)
    group = arm.send("GET", RG_ML, "2021-04-01")
    assert group.status_code == 200
    assert group.json()["name"] == "rg-ml"
    assert group.json()["type"] == "Microsoft.Resources/resourceGroups"
    workspace = arm.send("GET", WORKSPACE, ML_API).json()
    assert workspace["identity"]["type"] == "SystemAssigned"
    computes = arm.send("GET", f"{WORKSPACE}/computes", ML_API).json()["value"]
    assert {c["name"] for c in computes} == {"gpu-cluster", "cpu-cluster"}
    endpoints = arm.send("GET", f"{WORKSPACE}/onlineEndpoints", ML_API).json()["value"]
    assert "churn-endpoint" in {e["name"] for e in endpoints}
    deployments = arm.send("GET", f"{ENDPOINT}/deployments", ML_API).json()["value"]
    assert {d["name"] for d in deployments} == {"blue", "green"}
    registry = arm.send(
        "GET", f"{RG_ML}/providers/Microsoft.MachineLearningServices/registries/ml-registry", ML_API
    )
    assert registry.status_code == 200
    missing = arm.send("GET", f"{WORKSPACE}/onlineEndpoints/nope", ML_API)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    # Every answer carries Azure's request headers.
    assert group.headers["x-ms-request-id"]
    assert group.headers["x-ms-correlation-request-id"]
    assert int(group.headers["x-ms-ratelimit-remaining-subscription-reads"]) > 0


def test_endpoint_writes_need_write_permission(azlocal: AzLocal) -> None:
    endpoint = f"{WORKSPACE}/onlineEndpoints/scratch-endpoint"
    body = {"location": "westeurope", "properties": {"authMode": "Key"}}
    denied = Arm(azlocal, operator_credential(azlocal), retry_total=0).send(
        "PUT", endpoint, ML_API, body
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AuthorizationFailed"
    assert (
        "perform action 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write'"
        in denied.json()["error"]["message"]
    )
    owner = Arm(azlocal, admin_credential(azlocal), retry_total=0)
    created = owner.send("PUT", endpoint, ML_API, body)
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Succeeded"
    assert owner.send("PUT", endpoint, ML_API, body).status_code == 200
    assert owner.send("DELETE", endpoint, ML_API).status_code == 200
    assert owner.send("DELETE", endpoint, ML_API).status_code == 204


def test_subscription_and_groups_for_the_owner(azlocal: AzLocal) -> None:
    owner = Arm(azlocal, admin_credential(azlocal), retry_total=0)
    subscription = owner.send("GET", f"/subscriptions/{SUB}", "2022-09-01").json()
    assert subscription["subscriptionId"] == SUB
    groups = owner.send("GET", f"/subscriptions/{SUB}/resourcegroups", "2022-09-01").json()
    assert {g["name"] for g in groups["value"]} == {"rg-ml", "rg-ml-identities"}
    unknown = owner.send("GET", "/subscriptions/99999999-9999-9999-9999-999999999999", "2022-09-01")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "SubscriptionNotFound"


def test_jobs_computes_and_workspace_writes_follow_rbac(azlocal: AzLocal) -> None:
    operator = Arm(azlocal, operator_credential(azlocal), retry_total=0)
    owner = Arm(azlocal, admin_credential(azlocal), retry_total=0)
    job = f"{WORKSPACE}/jobs/nightly-train"
    denied = operator.send("PUT", job, ML_API, {"properties": {"jobType": "Command"}})
    assert denied.status_code == 403
    assert "workspaces/jobs/write" in denied.json()["error"]["message"]
    assert owner.send("PUT", job, ML_API, {"properties": {"jobType": "Command"}}).status_code == 201
    assert operator.send("GET", job, ML_API).json()["properties"]["jobType"] == "Command"
    compute = f"{WORKSPACE}/computes/new-cluster"
    assert operator.send("PUT", compute, ML_API, {}).status_code == 403
    assert owner.send("PUT", compute, ML_API, {}).status_code == 201
    assert owner.send("DELETE", compute, ML_API).status_code == 200
    assert operator.send("DELETE", WORKSPACE, ML_API).status_code == 403
