"""Guardrails: no namespace gets more through the operator than an MLAccessPolicy allows.

Each escalation path is refused at `kubectl apply` (the webhook) and by the reconcile
(authoritative: also with the webhook gone, and again after a policy is tightened, when
what was granted is revoked), with nothing left in Azure. The decision itself is tested
case by case in tests/unit/test_policy.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, authorization_client, msi_client
from support.operator import (
    API,
    OperatorProcess,
    apply,
    events,
    get,
    wait_message,
    wait_ready,
    wait_reason,
)
from support.policies import GITHUB, Policies
from support.poll import wait_until
from support.world import RG_IDENTITIES, RG_ML, SUB, WORKSPACE

MI = {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}
WS = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}}
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
RBAC_ADMIN = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
WS_RULE = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}}


def body(kind: str, name: str, spec: dict[str, Any], namespace: str | None, **meta: Any) -> str:
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    return json.dumps({"apiVersion": API, "kind": kind, "metadata": metadata, "spec": spec})


ATTACKER = "https://attacker.example/"


def vault_at(url: str, display_name: str) -> dict[str, Any]:
    """A service principal whose certificate the operator would keep in the vault at `url`."""
    vault = {"vaultUrl": url, "certificateName": "x"}
    return {
        "servicePrincipal": {
            "displayName": display_name,
            "credential": {"certificate": {"keyVault": vault}},
        }
    }


def refused(cluster: LocalCluster, manifest: str) -> str:
    """Apply; expect the webhook's refusal, return its message."""
    result = cluster.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, f"admitted: {manifest}"
    assert "denied the request" in result.stderr, result.stderr
    return result.stderr


def assignments_at(azlocal: AzLocal, scope: str, principal: str) -> set[str]:
    """Role definition GUIDs assigned to `principal` exactly at `scope`."""
    client = authorization_client(azlocal, admin_credential(azlocal))
    return {
        a.role_definition_id.rsplit("/", 1)[-1]
        for a in client.role_assignments.list_for_scope(
            scope, filter=f"principalId eq '{principal}'"
        )
        if a.scope.lower() == scope.lower()
    }


def federated_names(azlocal: AzLocal, identity: str) -> set[str]:
    msi = msi_client(azlocal, admin_credential(azlocal))
    return {c.name for c in msi.federated_identity_credentials.list(RG_IDENTITIES, identity)}


def issuer(cluster: LocalCluster) -> str:
    _, text = cluster.request("GET", "/.well-known/openid-configuration", anonymous=True)
    return str(json.loads(text)["issuer"])


def reason_is(cluster: LocalCluster, kind: str, name: str, namespace: str, reason: str) -> Any:
    return wait_reason(cluster, kind, name, reason, namespace, timeout=45)


def team_policy(policies: Policies) -> str:
    """What the ML team may do: data scientist work at ws-prod, identities in
    rg-ml-identities, GitHub Actions of contoso/ml-deploy."""
    return policies.put(
        "team",
        scopes=[WS_RULE],
        roles=[{"builtIn": ["AzureML Data Scientist", "Reader"]}],
        identities={"managedIdentities": [{"resourceGroup": RG_IDENTITIES}]},
        federation=[{"issuer": GITHUB, "subjects": ["repo:contoso/ml-deploy:*"]}],
    )


def test_every_escalation_path_is_refused_at_apply(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
) -> None:
    namespace, policies = guarded
    legacy = azlocal.principal("legacy-ci").object_id
    team_policy(policies)
    wid = {"workloadIdentity": "pipeline"}

    def binding(name: str, role: dict[str, str], scope: dict[str, Any], *subjects: Any) -> str:
        spec = {"role": role, "subjects": list(subjects or [wid]), "scope": scope}
        return body("MLRoleBinding", name, spec, namespace)

    def identity(name: str, spec: dict[str, Any], **meta: Any) -> str:
        return body("WorkloadIdentity", name, {"managedIdentity": MI, **spec}, namespace, **meta)

    cases = {
        "Owner on the workspace": (
            binding("owner", {"builtIn": "Owner"}, WS),
            f"namespace {namespace} may not bind Owner",
        ),
        "Owner by its role definition id": (
            binding("owner-by-id", {"roleDefinitionId": OWNER}, WS),
            f"namespace {namespace} may not bind Owner",
        ),
        "User Access Administrator on rg-ml": (
            binding(
                "uaa",
                {"builtIn": "User Access Administrator"},
                {"resourceGroup": {"name": "rg-ml"}},
            ),
            "may not bind User Access Administrator",
        ),
        "Owner at subscription scope": (
            binding("sub-owner", {"builtIn": "Owner"}, {"resourceId": f"/subscriptions/{SUB}"}),
            f"may not bind Owner at /subscriptions/{SUB}",
        ),
        "a broader scope than the rule": (
            binding("broad", {"builtIn": "Reader"}, {"resourceGroup": {"name": "rg-ml"}}),
            f"may not bind Reader at {RG_ML}",
        ),
        "another team's principal": (
            binding(
                "steal",
                {"builtIn": "Reader"},
                WS,
                {"principalId": legacy, "principalType": "ServicePrincipal"},
            ),
            f"may not grant Reader to ServicePrincipal {legacy}",
        ),
        "this cluster's issuer for another namespace": (
            identity(
                "cross",
                {
                    "federatedCredentials": [
                        {
                            "name": "other-ns",
                            "issuer": issuer(cluster),
                            "subject": "system:serviceaccount:kube-system:default",
                        }
                    ]
                },
            ),
            f"only service accounts of namespace {namespace} may be federated",
        ),
        "a repository the policy does not trust": (
            identity(
                "mallory",
                {
                    "federatedCredentials": [
                        {"name": "github", "issuer": GITHUB, "subject": "repo:mallory/x:ref:main"}
                    ]
                },
            ),
            f"may not trust {GITHUB} for subject repo:mallory/x:ref:main",
        ),
        "managed identities elsewhere": (
            body(
                "WorkloadIdentity",
                "elsewhere",
                {"managedIdentity": {"resourceGroup": "rg-ml", "location": "westeurope"}},
                namespace,
            ),
            "may not create managed identities in resource group rg-ml",
        ),
        "adopting another team's identity": (
            identity("adopt", {}, annotations={"identity.aml.dev/adopt": "true"}),
            f"may not adopt identities in resource group {RG_IDENTITIES}",
        ),
        "a Key Vault URL that is no vault": (
            body("WorkloadIdentity", "vault", vault_at(ATTACKER, "x"), namespace),
            "keyVault.vaultUrl https://attacker.example/ is not a Key Vault of this cloud",
        ),
        "a service principal no policy allows": (
            body("WorkloadIdentity", "sp", {"servicePrincipal": {"displayName": "x"}}, namespace),
            "may not create service principals",
        ),
        "an MLRole with *": (
            body(
                "MLRole",
                f"star-{namespace}",
                {
                    "roleName": f"star {namespace}",
                    "permissions": {"actions": ["*"]},
                    "assignableScopes": [RG_ML],
                },
                None,
            ),
            "is privileged (its actions include *)",
        ),
        "an MLRole that writes role assignments": (
            body(
                "MLRole",
                f"authz-{namespace}",
                {
                    "roleName": f"authz {namespace}",
                    "permissions": {"actions": ["Microsoft.Authorization/*/write"]},
                    "assignableScopes": [RG_ML],
                },
                None,
            ),
            "is privileged (its actions allow Microsoft.Authorization/roleAssignments/write)",
        ),
    }
    for case, (manifest, message) in cases.items():
        stderr = refused(cluster, manifest)
        assert message in stderr, f"{case}: {stderr}"
    # What the policy allows is admitted, by the same webhook.
    cluster.kubectl("apply", "-f", "-", input=binding("allowed", {"builtIn": "Reader"}, WS, wid))
    # Nothing was created for any refused request.
    assert get(cluster, "mlrb", "owner", namespace) is None
    assert assignments_at(azlocal, WORKSPACE, legacy) == set()
    msi = msi_client(azlocal, admin_credential(azlocal))
    names = {i.name for i in msi.user_assigned_identities.list_by_resource_group(RG_IDENTITIES)}
    assert not {n for n in names if n.startswith(namespace)}


def test_no_policy_denies_everything_and_policies_add_up(
    operator: OperatorProcess, cluster: LocalCluster, guarded: tuple[str, Policies]
) -> None:
    namespace, policies = guarded

    def binding(name: str, role: str) -> str:
        spec = {"role": {"builtIn": role}, "subjects": [{"workloadIdentity": "x"}], "scope": WS}
        return body("MLRoleBinding", name, spec, namespace)

    assert f"no MLAccessPolicy selects namespace {namespace}, so nothing is allowed" in refused(
        cluster, binding("reader", "Reader")
    )
    policies.put("readers", scopes=[WS_RULE], roles=[{"builtIn": ["Reader"]}])
    cluster.kubectl("apply", "-f", "-", input=binding("reader", "Reader"))
    assert "may not bind AzureML Data Scientist" in refused(
        cluster, binding("scientist", "AzureML Data Scientist")
    )
    policies.put("scientists", scopes=[WS_RULE], roles=[{"builtIn": ["AzureML Data Scientist"]}])
    cluster.kubectl("apply", "-f", "-", input=binding("scientist", "AzureML Data Scientist"))


def test_tightening_a_policy_revokes_role_assignments(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
) -> None:
    namespace, policies = guarded
    legacy = azlocal.principal("legacy-ci").object_id
    subjects = {"principalIds": [{"principalId": legacy, "principalType": "ServicePrincipal"}]}
    roles = [{"builtIn": ["Owner"], "privileged": True}, {"builtIn": ["Reader"]}]
    name = policies.put("grants", scopes=[WS_RULE], roles=roles, subjects=subjects)
    subject = [{"principalId": legacy, "principalType": "ServicePrincipal"}]
    for binding, role in (("owner", "Owner"), ("reader", "Reader")):
        spec = {"role": {"builtIn": role}, "subjects": subject, "scope": WS}
        apply(cluster, "MLRoleBinding", binding, spec, namespace)
        wait_ready(cluster, "mlrb", binding, namespace)
    assert assignments_at(azlocal, WORKSPACE, legacy) == {OWNER, READER}

    # Owner is no longer privileged-allowed: its assignment goes, Reader's stays.
    roles[0] = {"builtIn": ["Owner"]}
    policies.put("grants", scopes=[WS_RULE], roles=roles, subjects=subjects)
    denied = reason_is(cluster, "mlrb", "owner", namespace, "PolicyDenied")
    assert denied["status"] == "False"
    assert "it is privileged" in denied["message"]
    assert "without privileged: true" in denied["message"]
    wait_until(
        lambda: assignments_at(azlocal, WORKSPACE, legacy) == {READER},
        timeout=30,
        what="the Owner assignment to be revoked",
    )
    assert any(
        t == "Warning" and r == "Revoked" and "no MLAccessPolicy allows it" in m
        for t, r, m in events(cluster, namespace, "owner")
    )
    # The change reached the binding as a re-check, not only through the resync.
    annotations = get(cluster, "mlrb", "owner", namespace)["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["reconcile.identity.aml.dev/policy-changed"].startswith(f"{name}@")
    assert wait_ready(cluster, "mlrb", "reader", namespace)

    # The namespace tries to shelter the Reader grant before the next tightening: a
    # subject that never resolves (the binding waits) and managementPolicy Observe.
    spec = {
        "role": {"builtIn": "Reader"},
        "subjects": [*subject, {"workloadIdentity": "never-created"}],
        "scope": WS,
        "managementPolicy": "Observe",
    }
    apply(cluster, "MLRoleBinding", "reader", spec, namespace)
    reason_is(cluster, "mlrb", "reader", namespace, "WaitingForDependency")
    # The principal is no longer a subject the policy allows: Reader goes too.
    policies.put("grants", scopes=[WS_RULE], roles=roles)
    denied = wait_message(cluster, "mlrb", "reader", "may not grant Reader", namespace)
    assert f"may not grant Reader to ServicePrincipal {legacy}" in denied["message"]
    wait_until(
        lambda: assignments_at(azlocal, WORKSPACE, legacy) == set(),
        timeout=30,
        what="the Reader assignment to be revoked",
    )


def test_tightening_a_policy_revokes_federation(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
) -> None:
    namespace, policies = guarded
    team = team_policy(policies)
    spec = {
        "managedIdentity": MI,
        "serviceAccounts": [{"name": "trainer", "create": True}],
        "federatedCredentials": [
            {"name": "deploy", "issuer": GITHUB, "subject": "repo:contoso/ml-deploy:env:prod"}
        ],
    }
    apply(cluster, "WorkloadIdentity", "pipeline", spec, namespace)
    wait_ready(cluster, "wid", "pipeline", namespace, timeout=60)
    identity = f"{namespace}-pipeline"
    assert federated_names(azlocal, identity) == {"k8s-trainer", "deploy"}

    # GitHub is no longer trusted: that federation is revoked, the service account's stays.
    policies.put(
        "team",
        scopes=[WS_RULE],
        roles=[{"builtIn": ["Reader"]}],
        identities={"managedIdentities": [{"resourceGroup": RG_IDENTITIES}]},
    )
    denied = reason_is(cluster, "wid", "pipeline", namespace, "PolicyDenied")
    assert f"may not trust {GITHUB}" in denied["message"]
    wait_until(
        lambda: federated_names(azlocal, identity) == {"k8s-trainer"},
        timeout=30,
        what="the GitHub federation to be revoked",
    )

    # No policy at all: the identity may not be used through the operator.
    policies.delete(team)
    denied = wait_message(cluster, "wid", "pipeline", "no MLAccessPolicy selects", namespace)
    assert denied["reason"] == "PolicyDenied"
    wait_until(
        lambda: federated_names(azlocal, identity) == set(),
        timeout=30,
        what="every federation to be revoked",
    )
    assert any(r == "Revoked" for _, r, _ in events(cluster, namespace, "pipeline"))


def test_the_reconcile_refuses_when_the_webhook_is_down(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
    webhook_down: None,
) -> None:
    namespace, policies = guarded
    team_policy(policies)
    spec = {
        "managedIdentity": MI,
        "federatedCredentials": [
            {
                "name": "other-ns",
                "issuer": issuer(cluster),
                "subject": "system:serviceaccount:kube-system:default",
            }
        ],
    }
    apply(cluster, "WorkloadIdentity", "cross", spec, namespace)
    denied = reason_is(cluster, "wid", "cross", namespace, "PolicyDenied")
    assert f"only service accounts of namespace {namespace}" in denied["message"]
    # The allowed part (the identity) exists; the forbidden federation was never made.
    assert federated_names(azlocal, f"{namespace}-cross") == set()

    apply(
        cluster,
        "MLRoleBinding",
        "owner",
        {
            "role": {"roleDefinitionId": OWNER},
            "subjects": [{"workloadIdentity": "cross"}],
            "scope": WS,
        },
        namespace,
    )
    denied = reason_is(cluster, "mlrb", "owner", namespace, "PolicyDenied")
    assert f"namespace {namespace} may not bind Owner" in denied["message"]
    assert any(
        t == "Warning" and r == "PolicyDenied" for t, r, _ in events(cluster, namespace, "owner")
    )

    apply(cluster, "WorkloadIdentity", "vault", vault_at(ATTACKER, f"{namespace}-vault"), namespace)
    denied = reason_is(cluster, "wid", "vault", namespace, "PolicyDenied")
    assert "https://attacker.example/ is not a Key Vault of this cloud" in denied["message"]
    assert not [
        a for a in azlocal.ctx.store.applications.values() if a.display_name == f"{namespace}-vault"
    ]

    role = f"star-{namespace}"
    apply(
        cluster,
        "MLRole",
        role,
        {"roleName": role, "permissions": {"actions": ["*"]}, "assignableScopes": [RG_ML]},
    )
    try:
        denied = reason_is(cluster, "mlrole", role, "", "PolicyDenied")
        assert "set spec.privileged: true" in denied["message"]
        client = authorization_client(azlocal, admin_credential(azlocal))
        assert not [d for d in client.role_definitions.list(RG_ML) if d.role_name == role]
    finally:
        cluster.kubectl("delete", "mlrole", role, "--wait=false")


@pytest.fixture
def constrain_operator(azlocal: AzLocal) -> Iterator[Callable[[str], None]]:
    """Put a condition on the operator's RBAC Administrator assignment on rg-ml, as an
    administrator following docs/install.md would; restored exactly afterwards."""
    admin = authorization_client(azlocal, admin_credential(azlocal))
    oid = azlocal.principal("aml-identity-operator").object_id
    seeded = next(
        a
        for a in admin.role_assignments.list_for_scope(RG_ML, filter=f"principalId eq '{oid}'")
        if a.scope == RG_ML and a.role_definition_id.endswith(RBAC_ADMIN)
    )
    store = azlocal.ctx.store
    original = dataclasses.replace(store.role_assignments[seeded.name])

    def constrain(text: str) -> None:
        admin.role_assignments.create(
            RG_ML,
            seeded.name,
            {
                "role_definition_id": seeded.role_definition_id,
                "principal_id": oid,
                "principal_type": "ServicePrincipal",
                "condition": text,
                "condition_version": "2.0",
            },
        )

    try:
        yield constrain
    finally:
        store.role_assignments[original.name] = original


def test_audit_reports_and_the_azure_condition_still_blocks(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
    constrain_operator: Callable[[str], None],
) -> None:
    namespace, policies = guarded
    legacy = azlocal.principal("legacy-ci").object_id
    policies.put("audit", enforcement="Audit", scopes=[WS_RULE], roles=[{"builtIn": ["Reader"]}])
    subject = [{"principalId": legacy, "principalType": "ServicePrincipal"}]
    manifest = body(
        "MLRoleBinding",
        "reader",
        {"role": {"builtIn": "Reader"}, "subjects": subject, "scope": WS},
        namespace,
    )
    admitted = cluster.kubectl("apply", "-f", "-", input=manifest)
    assert "MLAccessPolicy (Audit)" in admitted.stderr  # kubectl prints the warning
    obj = wait_ready(cluster, "mlrb", "reader", namespace)
    violation = next(c for c in obj["status"]["conditions"] if c["type"] == "PolicyViolation")
    assert violation["status"] == "True"
    assert f"may not grant Reader to ServicePrincipal {legacy}" in violation["message"]
    labels = f'kind="MLRoleBinding",name="reader",namespace="{namespace}"'
    assert f"aml_identity_policy_violations{{{labels}}} 1.0" in operator.metrics()
    assert assignments_at(azlocal, WORKSPACE, legacy) == {READER}

    # The Azure-side wall, printed from the live policies (Owner is in none of them).
    answer = operator.cli("azure-condition", "--scope", RG_ML)
    assert answer.returncode == 0, answer.stderr
    printed = answer.stdout
    assert READER in printed
    assert OWNER not in printed
    constrain_operator(printed)
    apply(
        cluster,
        "MLRoleBinding",
        "owner",
        {"role": {"builtIn": "Owner"}, "subjects": subject, "scope": WS},
        namespace,
    )
    blocked = reason_is(cluster, "mlrb", "owner", namespace, "Forbidden")
    assert "ABAC condition not fulfilled" in blocked["message"]
    assert OWNER not in assignments_at(azlocal, WORKSPACE, legacy)


def test_an_mlrole_made_privileged_revokes_its_bindings(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    guarded: tuple[str, Policies],
) -> None:
    namespace, policies = guarded
    legacy = azlocal.principal("legacy-ci").object_id
    role = f"reader-{namespace}"
    actions = ["Microsoft.MachineLearningServices/workspaces/read"]
    spec: dict[str, Any] = {
        "roleName": role,
        "permissions": {"actions": actions},
        "assignableScopes": [RG_ML],
    }
    apply(cluster, "MLRole", role, spec)
    try:
        guid = wait_ready(cluster, "mlrole", role)["status"]["roleDefinitionName"]
        policies.put(
            "custom",
            scopes=[WS_RULE],
            roles=[{"mlRoles": [role]}],
            subjects={"principalIds": [{"principalId": legacy}]},
        )
        subject = [{"principalId": legacy, "principalType": "ServicePrincipal"}]
        binding = {"role": {"mlRole": role}, "subjects": subject, "scope": WS}
        apply(cluster, "MLRoleBinding", "custom", binding, namespace)
        wait_ready(cluster, "mlrb", "custom", namespace)
        assert guid in assignments_at(azlocal, WORKSPACE, legacy)

        # A platform admin makes the role privileged: the binding now needs a privileged
        # rule, and is re-checked at once.
        privileged = {
            **spec,
            "privileged": True,
            "permissions": {"actions": [*actions, "Microsoft.Authorization/*/write"]},
        }
        apply(cluster, "MLRole", role, privileged)
        denied = reason_is(cluster, "mlrb", "custom", namespace, "PolicyDenied")
        assert "it is privileged" in denied["message"]
        annotations = (get(cluster, "mlrb", "custom", namespace) or {})["metadata"]["annotations"]
        assert annotations["reconcile.identity.aml.dev/policy-changed"].startswith(
            f"mlrole/{role}@"
        )
        wait_until(
            lambda: guid not in assignments_at(azlocal, WORKSPACE, legacy),
            timeout=30,
            what="the custom role's assignment to be revoked",
        )
    finally:
        cluster.kubectl("delete", "mlrb", "custom", "-n", namespace, "--ignore-not-found")
        cluster.kubectl("delete", "mlrole", role, "--wait=false")
