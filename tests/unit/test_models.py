"""The pydantic models read the manifests users write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aml_identity.api.mlaccesspolicy import MLAccessPolicy
from aml_identity.api.mlrole import MLRole
from aml_identity.api.mlrolebinding import MLRoleBinding
from aml_identity.api.workloadidentity import WorkloadIdentity

MODELS = {
    "WorkloadIdentity": WorkloadIdentity,
    "MLRoleBinding": MLRoleBinding,
    "MLRole": MLRole,
    "MLAccessPolicy": MLAccessPolicy,
}


def example_documents(repo: Path) -> list[dict[str, object]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((repo / "examples").rglob("*.yaml")):
        docs.extend(
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d["apiVersion"].startswith("identity.aml.dev/")
        )
    return docs


def test_every_example_parses(repo: Path) -> None:
    docs = example_documents(repo)
    assert {d["kind"] for d in docs} == set(MODELS)
    for doc in docs:
        MODELS[str(doc["kind"])].model_validate(doc)


def test_camel_case_wire_names_and_defaults() -> None:
    wid = WorkloadIdentity.model_validate(
        {
            "spec": {
                "managedIdentity": {"resourceGroup": "rg", "location": "westeurope"},
                "serviceAccounts": [{"name": "trainer"}],
                "federatedCredentials": [
                    {"name": "github", "issuer": "https://issuer.example", "subject": "s"}
                ],
            }
        }
    )
    assert wid.spec.managed_identity is not None
    assert wid.spec.managed_identity.resource_group == "rg"
    assert wid.spec.deletion_policy is None  # Delete if created, Orphan if adopted
    assert wid.spec.management_policy == "Manage"
    assert wid.spec.service_accounts[0].create is False
    assert wid.spec.federated_credentials[0].audiences == ["api://AzureADTokenExchange"]
    dumped = wid.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["managedIdentity"]["resourceGroup"] == "rg"


def test_default_audiences_are_not_shared_between_instances() -> None:
    fic = {"name": "gh1", "issuer": "https://i.example", "subject": "s"}
    one = WorkloadIdentity.model_validate(
        {
            "spec": {
                "managedIdentity": {"resourceGroup": "r", "location": "x"},
                "federatedCredentials": [fic],
            }
        }
    )
    one.spec.federated_credentials[0].audiences.append("other")
    two = WorkloadIdentity.model_validate(
        {
            "spec": {
                "managedIdentity": {"resourceGroup": "r", "location": "x"},
                "federatedCredentials": [fic],
            }
        }
    )
    assert two.spec.federated_credentials[0].audiences == ["api://AzureADTokenExchange"]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("ab", False),
        ("abc", True),
        ("-abc", False),
        ("a" * 128, True),
        ("a" * 129, False),
        ("ml_id-1", True),
        ("ml.id", False),
    ],
)
def test_identity_name_rules(name: str, ok: bool) -> None:
    spec = {"managedIdentity": {"resourceGroup": "rg", "location": "westeurope", "name": name}}
    if ok:
        WorkloadIdentity.model_validate({"spec": spec})
    else:
        with pytest.raises(ValueError, match="name"):
            WorkloadIdentity.model_validate({"spec": spec})


@pytest.mark.parametrize(
    ("group", "ok"),
    [
        ("rg-ml", True),
        ("rg.ml(prod)_1", True),
        ("rg.", False),
        ("rg ml", False),
        ("r" * 90, True),
        ("r" * 91, False),
    ],
)
def test_resource_group_rules(group: str, ok: bool) -> None:
    spec = {"managedIdentity": {"resourceGroup": group, "location": "westeurope"}}
    if ok:
        WorkloadIdentity.model_validate({"spec": spec})
    else:
        with pytest.raises(ValueError, match=r"resourceGroup|resource_group"):
            WorkloadIdentity.model_validate({"spec": spec})


def test_metrics_and_liveness_listen_on_loopback_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside a Pod nothing else should reach them; the chart sets 0.0.0.0 (its Pod IP)."""
    from aml_identity.settings import Settings

    for variable in ("METRICS_ADDRESS", "LIVENESS_ENDPOINT", "CLUSTER_ID"):
        monkeypatch.delenv(f"AML_IDENTITY_{variable}", raising=False)

    settings = Settings(AZURE_TENANT_ID="t", AZURE_SUBSCRIPTION_ID="s")
    assert settings.metrics_address == "127.0.0.1"
    assert settings.liveness_endpoint.startswith("http://127.0.0.1:")
    assert settings.cluster_id == "", "empty: the kube-system namespace's UID is read"


def test_the_cluster_id_is_read_from_the_cluster_only_when_unset() -> None:
    import asyncio

    from aml_identity.settings import Settings

    async def kube_system_uid() -> str:
        return "0b6f3c1e-2d4a-4f5b-8c9d-1e2f3a4b5c6d"

    unset = Settings(AZURE_TENANT_ID="t", AZURE_SUBSCRIPTION_ID="s")
    assert asyncio.run(unset.with_cluster_id(kube_system_uid)).cluster_id == (
        "0b6f3c1e-2d4a-4f5b-8c9d-1e2f3a4b5c6d"
    )
    named = Settings(AZURE_TENANT_ID="t", AZURE_SUBSCRIPTION_ID="s", cluster_id="prod")
    assert asyncio.run(named.with_cluster_id(kube_system_uid)).cluster_id == "prod"
