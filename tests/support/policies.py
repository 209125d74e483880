"""MLAccessPolicies the tests run under.

Every test namespace (the `namespace` fixture) carries BASELINE_LABEL and gets the
baseline: what the tests of identities, bindings and credentials need, and nothing
privileged. Tests of the guardrails use namespaces without it and write their own.
"""

from __future__ import annotations

from typing import Any

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.operator import apply_json
from support.world import SUB

API = "identity.aml.dev/v1alpha1"
BASELINE_LABEL = "aml-tests/baseline"
# Namespaces only their own test's policies select (the `guarded` fixture).
GUARD_LABEL = "aml-tests/guard"
GITHUB = "https://token.actions.githubusercontent.com"


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "MLAccessPolicy", "metadata": {"name": name}, "spec": spec}


def baseline_policy(azlocal: AzLocal) -> dict[str, Any]:
    return policy(
        "tests-baseline",
        {
            "namespaceSelector": {"matchLabels": {BASELINE_LABEL: "true"}},
            "scopes": [{"subscription": SUB}],
            "roles": [
                {
                    "builtIn": [
                        "Reader",
                        "AzureML Data Scientist",
                        "AzureML Registry User",
                        "Key Vault Secrets User",
                    ],
                    "mlRoles": ["*"],
                }
            ],
            "subjects": {
                "principalIds": [
                    {"principalId": "6f1b0f43-3d4f-4c6e-9a57-5b0b7f6f2c11"},
                    {"principalId": azlocal.principal("legacy-ci").object_id},
                ],
                "systemAssignedIdentityOf": [
                    f"/subscriptions/{SUB}/resourceGroups/*/providers/"
                    "Microsoft.MachineLearningServices/workspaces/*/computes/*"
                ],
            },
            "identities": {
                "managedIdentities": [{"resourceGroup": "rg-ml-identities"}],
                "servicePrincipals": {
                    "credentialKinds": ["Certificate", "ClientSecret"],
                    "maxCertificateDuration": "87600h",
                    "keyVaults": [azlocal.vault_url("kv-ml")],
                },
            },
            "federation": [
                {"issuer": GITHUB, "subjects": ["repo:contoso/*"]},
                {"issuer": "https://issuer.example", "subjects": ["*"]},
            ],
            "adoption": {"resourceGroups": [{"name": "rg-ml-identities"}]},
        },
    )


class Policies:
    """MLAccessPolicies a test writes for its namespace; deleted afterwards."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.names: set[str] = set()

    def put(self, suffix: str, **spec: Any) -> str:
        name = f"{self.namespace}-{suffix}"
        body = policy(
            name, {"namespaceSelector": {"matchLabels": {GUARD_LABEL: self.namespace}}, **spec}
        )
        apply_json(self.cluster, body)
        self.names.add(name)
        return name

    def delete(self, name: str) -> None:
        self.cluster.kubectl("delete", "mlaccesspolicy", name, "--ignore-not-found")
        self.names.discard(name)

    def delete_all(self) -> None:
        for name in list(self.names):
            self.delete(name)
