"""The CRDs on the real API server: accepted, rejected with clear messages, explained."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import LocalCluster

API = "identity.aml.dev/v1alpha1"


def manifest(kind: str, name: str, spec: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API, "kind": kind, "metadata": metadata, "spec": spec}


def apply(cluster: LocalCluster, obj: dict[str, Any]) -> tuple[int, str]:
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=aml-tests",
        "-f",
        "-",
        input=json.dumps(obj),
        check=False,
    )
    return result.returncode, result.stderr


MI = {"resourceGroup": "rg-ml-identities", "location": "westeurope"}
WORKSPACE = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}}


def test_crds_are_established(crds: list[str], cluster: LocalCluster) -> None:
    for name in crds:
        crd = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True"
        assert conditions.get("NamesAccepted") == "True"


def test_examples_are_accepted(crds: list[str], cluster: LocalCluster, repo: Path) -> None:
    docs: list[dict[str, Any]] = []
    for path in sorted((repo / "examples").rglob("*.yaml")):
        docs.extend(
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d["apiVersion"].startswith("identity.aml.dev/")
        )
    cluster.kubectl("create", "namespace", "ml-team", check=False)
    for doc in docs:
        code, err = apply(cluster, doc)
        assert code == 0, f"{doc['kind']}/{doc['metadata']['name']} rejected: {err}"
    stored = json.loads(
        cluster.kubectl("get", "wid", "training-pipeline", "-n", "ml-team", "-o", "json").stdout
    )
    # Defaults come from the schema, applied by the API server. deletionPolicy has none:
    # unset means Delete for what the operator created, Orphan for what it adopted.
    assert "deletionPolicy" not in stored["spec"]
    assert stored["spec"]["managementPolicy"] == "Manage"


INVALID: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "both-forms",
        "WorkloadIdentity",
        {"managedIdentity": MI, "servicePrincipal": {"displayName": "x"}},
        "managedIdentity and servicePrincipal are mutually exclusive: set exactly one",
    ),
    (
        "no-form",
        "WorkloadIdentity",
        {"serviceAccounts": [{"name": "trainer"}]},
        "set one of managedIdentity (a user-assigned managed identity) or servicePrincipal",
    ),
    (
        "bad-rg",
        "WorkloadIdentity",
        {"managedIdentity": {**MI, "resourceGroup": "rg-ml."}},
        "resource group names are 1-90 letters, digits, underscores, hyphens, periods and "
        "parentheses, and cannot end with a period",
    ),
    (
        "rg-with-space",
        "WorkloadIdentity",
        {"managedIdentity": {**MI, "resourceGroup": "rg ml"}},
        "cannot end with a period",
    ),
    (
        "long-name",
        "WorkloadIdentity",
        {"managedIdentity": {**MI, "name": "i" * 129}},
        "spec.managedIdentity.name: Too long: may not be more than 128",
    ),
    (
        "bad-name",
        "WorkloadIdentity",
        {"managedIdentity": {**MI, "name": "_starts-badly"}},
        "name must be 3-128 letters, digits, hyphens and underscores, starting with a letter",
    ),
    (
        "duplicate-sa",
        "WorkloadIdentity",
        {"managedIdentity": MI, "serviceAccounts": [{"name": "a"}, {"name": "a"}]},
        '.spec.serviceAccounts: duplicate entries for key [name="a"]',
    ),
    (
        "duplicate-subject",
        "MLRoleBinding",
        {
            "role": {"builtIn": "Reader"},
            "subjects": [
                {"workloadIdentity": "a"},
                {"workloadIdentity": "b"},
                {"workloadIdentity": "a"},
            ],
            "scope": {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}},
        },
        "spec.subjects: Invalid value: each subject may be listed once",
    ),
    (
        "twenty-one-credentials",
        "WorkloadIdentity",
        {
            "managedIdentity": MI,
            "serviceAccounts": [{"name": f"sa-{i}"} for i in range(11)],
            "federatedCredentials": [
                {"name": f"ext-{i}", "issuer": "https://issuer.example", "subject": f"s{i}"}
                for i in range(10)
            ],
        },
        "Azure allows at most 20 federated credentials per identity "
        "(serviceAccounts plus federatedCredentials)",
    ),
    (
        "two-roles",
        "MLRoleBinding",
        {
            "role": {"builtIn": "Reader", "mlRole": "monitor"},
            "subjects": [{"workloadIdentity": "w"}],
            "scope": WORKSPACE,
        },
        "role: set exactly one of builtIn, mlRole or roleDefinitionId",
    ),
    (
        "no-scope",
        "MLRoleBinding",
        {"role": {"builtIn": "Reader"}, "subjects": [{"workloadIdentity": "w"}]},
        "spec.scope: Required value",
    ),
    (
        "empty-scope",
        "MLRoleBinding",
        {"role": {"builtIn": "Reader"}, "subjects": [{"workloadIdentity": "w"}], "scope": {}},
        "scope: set exactly one of workspace, registry, resourceGroup or resourceId",
    ),
    (
        "principal-without-type",
        "MLRoleBinding",
        {
            "role": {"builtIn": "Reader"},
            "subjects": [{"principalId": "6f1b0f43-3d4f-4c6e-9a57-5b0b7f6f2c11"}],
            "scope": WORKSPACE,
        },
        "principalId and principalType go together",
    ),
    (
        "no-subjects",
        "MLRoleBinding",
        {"role": {"builtIn": "Reader"}, "subjects": [], "scope": WORKSPACE},
        "spec.subjects: Invalid value: 0: spec.subjects in body should have at least 1 items",
    ),
    (
        "cert-and-secret",
        "WorkloadIdentity",
        {
            "servicePrincipal": {
                "displayName": "x",
                "credential": {"certificate": {}, "clientSecret": {}},
            }
        },
        "set exactly one of certificate or clientSecret",
    ),
    (
        "renew-after-expiry",
        "WorkloadIdentity",
        {
            "servicePrincipal": {
                "displayName": "x",
                "credential": {"certificate": {"duration": "24h", "renewBefore": "48h"}},
            }
        },
        "renewBefore must be shorter than duration",
    ),
]


@pytest.mark.parametrize(("name", "kind", "spec", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_resources_are_rejected_with_a_clear_message(
    crds: list[str],
    cluster: LocalCluster,
    namespace: str,
    name: str,
    kind: str,
    spec: dict[str, Any],
    message: str,
) -> None:
    code, err = apply(cluster, manifest(kind, name, spec, namespace))
    assert code != 0, f"{name} was accepted"
    assert message in err, err


def test_mlrole_needs_permissions_and_scopes(crds: list[str], cluster: LocalCluster) -> None:
    code, err = apply(
        cluster,
        manifest(
            "MLRole",
            "no-actions",
            {
                "roleName": "Empty",
                "permissions": {"notActions": ["*/write"]},
                "assignableScopes": ["/subscriptions/00000000-0000-0000-0000-000000000001"],
            },
            None,
        ),
    )
    assert code != 0
    assert "a role needs at least one entry in actions or dataActions" in err


def test_mlaccesspolicy_schema(crds: list[str], cluster: LocalCluster) -> None:
    def policy(spec: dict[str, Any]) -> tuple[int, str]:
        return apply(cluster, manifest("MLAccessPolicy", "schema-check", spec, None))

    code, err = policy(
        {
            "namespaceSelector": {},
            "scopes": [{"subscription": "s", "resourceGroup": {"name": "rg-ml"}}],
        }
    )
    assert code != 0
    assert "scope rule: set exactly one of subscription, resourceGroup, workspace" in err
    code, err = policy({"namespaceSelector": {}, "enforcement": "Sometimes"})
    assert code != 0
    assert "Unsupported value" in err
    code, err = policy({"scopes": []})
    assert code != 0
    assert "namespaceSelector: Required value" in err
    code, err = policy(
        {"namespaceSelector": {}, "federation": [{"issuer": "http://x", "subjects": ["*"]}]}
    )
    assert code != 0
    assert "federation[0].issuer" in err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("resourceGroup", "rg-other", "resourceGroup is immutable: an identity cannot move"),
        ("name", "renamed-identity", "name is immutable: Azure cannot rename an identity"),
        ("location", "northeurope", "location is immutable"),
        (
            "subscriptionId",
            "00000000-0000-0000-0000-000000000002",
            "subscriptionId is immutable",
        ),
    ],
)
def test_immutable_managed_identity_fields(
    crds: list[str], cluster: LocalCluster, namespace: str, field: str, value: str, message: str
) -> None:
    original = manifest(
        "WorkloadIdentity",
        "immutable",
        {
            "managedIdentity": {
                **MI,
                "name": "fixed-name",
                "subscriptionId": "00000000-0000-0000-0000-000000000001",
            }
        },
        namespace,
    )
    code, err = apply(cluster, original)
    assert code == 0, err
    changed = copy.deepcopy(original)
    changed["spec"]["managedIdentity"][field] = value
    code, err = apply(cluster, changed)
    assert code != 0, f"changing {field} was accepted"
    assert message in err, err
    # Mutable fields still change.
    tagged = copy.deepcopy(original)
    tagged["spec"]["managedIdentity"]["tags"] = {"team": "ml"}
    code, err = apply(cluster, tagged)
    assert code == 0, err


def test_switching_identity_form_is_rejected(
    crds: list[str], cluster: LocalCluster, namespace: str
) -> None:
    code, err = apply(
        cluster, manifest("WorkloadIdentity", "sw", {"managedIdentity": MI}, namespace)
    )
    assert code == 0, err
    code, err = apply(
        cluster,
        manifest("WorkloadIdentity", "sw", {"servicePrincipal": {"displayName": "sw"}}, namespace),
    )
    assert code != 0
    assert "cannot switch between managedIdentity and servicePrincipal" in err


def test_kubectl_explain_teaches_the_api(crds: list[str], cluster: LocalCluster) -> None:
    out = cluster.kubectl("explain", "wid.spec.managedIdentity").stdout
    assert "A user-assigned managed identity" in out
    assert "Existing resource group that holds the identity" in out
    out = cluster.kubectl("explain", "mlrb.spec.scope").stdout
    assert "Prefer the narrowest scope" in out
    assert "An Azure ML workspace" in out
    out = cluster.kubectl("explain", "mlroles.spec.permissions.actions").stdout
    assert "Control-plane operations" in out
    out = cluster.kubectl("explain", "mlap.spec.roles.privileged").stdout
    assert "Set true to allow a privileged role" in out
    out = cluster.kubectl("explain", "mlap.spec").stdout
    assert "namespaceSelector" in out
    assert "federation" in out


def test_printer_columns_show_status(
    crds: list[str], cluster: LocalCluster, namespace: str
) -> None:
    code, err = apply(
        cluster, manifest("WorkloadIdentity", "cols", {"managedIdentity": MI}, namespace)
    )
    assert code == 0, err
    status = {
        "status": {
            "clientId": "11111111-2222-3333-4444-555555555555",
            "principalId": "66666666-7777-8888-9999-000000000000",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Reconciled",
                    "message": "identity and 1 federated credential match the spec",
                    "lastTransitionTime": "2026-11-26T12:00:00Z",
                    "observedGeneration": 1,
                }
            ],
        }
    }
    cluster.kubectl(
        "patch",
        "wid",
        "cols",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    table = cluster.kubectl("get", "wid", "cols", "-n", namespace).stdout.splitlines()
    assert table[0].split()[:6] == ["NAME", "READY", "REASON", "CLIENT", "ID", "PRINCIPAL"]
    assert table[1].split()[:4] == [
        "cols",
        "True",
        "Reconciled",
        "11111111-2222-3333-4444-555555555555",
    ]
    wide = cluster.kubectl("get", "wid", "cols", "-n", namespace, "-o", "wide").stdout
    assert "identity and 1 federated credential match the spec" in wide
    # The status subresource: a status write through the main resource is ignored.
    cluster.kubectl(
        "patch",
        "wid",
        "cols",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"status": {"clientId": "ignored"}}),
    )
    stored = json.loads(cluster.kubectl("get", "wid", "cols", "-n", namespace, "-o", "json").stdout)
    assert stored["status"]["clientId"] == "11111111-2222-3333-4444-555555555555"


def test_category_lists_every_kind(crds: list[str], cluster: LocalCluster) -> None:
    resources = cluster.kubectl("api-resources", "--categories=aml-identity", "-o", "name").stdout
    assert sorted(resources.split()) == sorted(crds)
