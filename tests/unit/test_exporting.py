"""`aml-identity export`'s translation: Azure objects -> manifests that adopt them."""

from __future__ import annotations

from typing import Any

import pytest

from aml_identity.api.mlaccesspolicy import MLAccessPolicy
from aml_identity.api.mlrole import MLRole
from aml_identity.api.mlrolebinding import MLRoleBinding, Scope
from aml_identity.api.observed import FederatedCredential, Identity, RoleAssignment, RoleDefinition
from aml_identity.api.workloadidentity import WorkloadIdentity
from aml_identity.reconcile.binding import scope_id
from aml_identity.reconcile.exporting import (
    ExportScope,
    Found,
    consent_command,
    dns_label,
    export,
    operator_managed,
    parse_scope,
    scope_form,
    unique_names,
)
from aml_identity.reconcile.identity import Owner, desired_identity, plan_identity
from aml_identity.reconcile.names import ADOPTABLE_TAG, ownership_tags
from aml_identity.reconcile.role import plan_role

SUB = "00000000-0000-0000-0000-000000000001"
OTHER = "00000000-0000-0000-0000-000000000002"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-legacy"
WS = (
    f"/subscriptions/{SUB}/resourceGroups/rg-ml"
    "/providers/Microsoft.MachineLearningServices/workspaces/ws-prod"
)
ISSUER = "https://cluster.example"
AUD = ("api://AzureADTokenExchange",)
NS = "ml-team"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
CUSTOM = "11111111-2222-3333-4444-555555555555"


def identity(
    name: str, principal: str, tags: dict[str, str] | None = None, sub: str = SUB
) -> Identity:
    return Identity(
        f"/subscriptions/{sub}/resourceGroups/rg-legacy/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        name,
        "West Europe",
        tags or {},
        f"client-{principal}",
        principal,
        "tenant",
    )


def assignment(
    principal: str, guid: str, scope: str, condition: str | None = None, description: str = ""
) -> RoleAssignment:
    name = f"{principal}-{guid}-{len(scope)}"
    return RoleAssignment(
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        name,
        scope,
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        principal,
        "ServicePrincipal",
        condition,
        description,
    )


def built_in(guid: str, name: str) -> RoleDefinition:
    return RoleDefinition(
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        guid,
        name,
        "BuiltInRole",
        "",
        ("Microsoft.MachineLearningServices/workspaces/*/read",),
        (),
        (),
        (),
        ("/",),
    )


CUSTOM_ROLE = RoleDefinition(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM}",
    CUSTOM,
    "Legacy Model Deployer",
    "CustomRole",
    "Deploys models (made by hand).",
    ("Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read",),
    (),
    (),
    (),
    (RG, f"/subscriptions/{SUB}/resourceGroups/rg-ml"),
)
DEFINITIONS = {
    READER: built_in(READER, "Reader"),
    DATA_SCIENTIST: built_in(DATA_SCIENTIST, "AzureML Data Scientist"),
    CUSTOM: CUSTOM_ROLE,
}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def world() -> list[Found]:
    trainer = identity("Trainer_ID", "p1", {"owner": "team", ADOPTABLE_TAG: f"{NS}/trainer-id"})
    deployer = identity("deployer", "p2")
    return [
        Found(
            trainer,
            (
                FederatedCredential(
                    "k8s-trainer", ISSUER, f"system:serviceaccount:{NS}:trainer", AUD
                ),
                FederatedCredential(
                    "github",
                    "https://token.actions.githubusercontent.com",
                    "repo:contoso/ml:ref:refs/heads/main",
                    AUD,
                ),
                # Another namespace's account, through this cluster: not declarable.
                FederatedCredential("k8s-other", ISSUER, "system:serviceaccount:other:x", AUD),
                # This namespace's account under another name than the operator's.
                FederatedCredential("hand-made", ISSUER, f"system:serviceaccount:{NS}:etl", AUD),
            ),
            (
                assignment("p1", DATA_SCIENTIST, WS, description="granted by hand in 2023"),
                assignment("p1", CUSTOM, RG),
                assignment("p1", READER, f"/subscriptions/{SUB}"),
            ),
        ),
        Found(
            deployer,
            (),
            (
                assignment("p2", DATA_SCIENTIST, WS),
                assignment("p2", CUSTOM, RG, condition="@Resource[x] StringEquals 'y'"),
            ),
        ),
    ]


def exported() -> Any:
    return export(world(), DEFINITIONS, namespace=NS, default_subscription=SUB, issuer=ISSUER)


def test_parse_scope_forms() -> None:
    assert parse_scope("rg-legacy", SUB) == ExportScope(SUB, "rg-legacy")
    assert parse_scope(RG, OTHER) == ExportScope(SUB, "rg-legacy")
    assert parse_scope(f"/subscriptions/{OTHER}/", SUB) == ExportScope(OTHER)
    assert parse_scope(WS, SUB) == ExportScope(SUB, "rg-ml", WS)
    assert parse_scope(WS, SUB).id == WS
    assert parse_scope(RG, SUB).id == RG
    for bad in ("", "a/b", "/providers/x", "/subscriptions/s/locations/x"):
        with pytest.raises(ValueError, match="scope"):
            parse_scope(bad, SUB)


def test_names_are_dns_labels_unique_and_stable() -> None:
    assert dns_label("Trainer_ID") == "trainer-id"
    assert dns_label("AzureML Data Scientist-ws-prod") == "azureml-data-scientist-ws-prod"
    long = dns_label("x" * 100)
    assert len(long) == 63
    assert long != dns_label("x" * 99)
    assert dns_label("__") == "x"
    names = unique_names({"a": ("Trainer_ID",), "b": ("trainer-id",), "c": ("other",)})
    assert names["c"] == "other"
    assert names["a"] != names["b"]
    assert names["a"].startswith("trainer-id-")
    again = unique_names({"b": ("trainer-id",), "a": ("Trainer_ID",), "c": ("other",)})
    assert again == names, "a name does not depend on the order"


def test_workload_identities_adopt_and_declare_federation_as_the_operator_writes_it() -> None:
    out = exported()
    wids = {o["metadata"]["name"]: o for o in by_kind(out.objects, "WorkloadIdentity")}
    assert sorted(wids) == ["deployer", "trainer-id"]
    trainer = wids["trainer-id"]
    assert trainer["metadata"] == {
        "name": "trainer-id",
        "namespace": NS,
        "annotations": {"identity.aml.dev/adopt": "true"},
    }
    assert trainer["spec"] == {
        "managedIdentity": {
            "resourceGroup": "rg-legacy",
            "location": "westeurope",
            "name": "Trainer_ID",
        },
        "serviceAccounts": [{"name": "trainer"}],
        "federatedCredentials": [
            {
                "name": "github",
                "issuer": "https://token.actions.githubusercontent.com",
                "subject": "repo:contoso/ml:ref:refs/heads/main",
                "audiences": list(AUD),
            }
        ],
    }
    assert wids["deployer"]["spec"] == {
        "managedIdentity": {
            "resourceGroup": "rg-legacy",
            "location": "westeurope",
            "name": "deployer",
        }
    }
    notes = "\n".join(out.notes)
    assert "k8s-other" in notes
    assert "hand-made" in notes
    for body in wids.values():
        WorkloadIdentity.model_validate(body)


def test_exported_identity_plans_no_change_when_adopted() -> None:
    """The zero-write rule, for the identity: the planner finds nothing to do."""
    found = world()[0]
    body = by_kind(exported().objects, "WorkloadIdentity")[1]
    resource = WorkloadIdentity.model_validate(body)
    owner = Owner(NS, "trainer-id", "uid", "cluster")
    desired = desired_identity(resource.spec, owner, default_subscription=SUB, issuer=ISSUER)
    plan = plan_identity(
        desired,
        found.identity,
        list(found.credentials),
        owner_uid="uid",
        adopt=True,
        consent=f"{NS}/trainer-id",
    )
    assert plan.blocked is None
    assert plan.empty, plan.changes


def test_subscription_only_when_not_the_default() -> None:
    elsewhere = Found(identity("far", "p9", sub=OTHER), (), ())
    out = export([elsewhere], {}, namespace=NS, default_subscription=SUB, issuer=ISSUER)
    (wid,) = out.objects
    assert wid["spec"]["managedIdentity"]["subscriptionId"] == OTHER


def test_assignments_group_by_role_scope_and_condition() -> None:
    out = exported()
    bindings = {o["metadata"]["name"]: o["spec"] for o in by_kind(out.objects, "MLRoleBinding")}
    assert set(bindings) == {
        "azureml-data-scientist-ws-prod",
        "reader-subscription",
        *(n for n in bindings if n.startswith("legacy-model-deployer-rg-legacy-")),
    }
    scientist = bindings["azureml-data-scientist-ws-prod"]
    assert scientist == {
        "role": {"builtIn": "AzureML Data Scientist"},
        "subjects": [{"workloadIdentity": "deployer"}, {"workloadIdentity": "trainer-id"}],
        "scope": {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}},
        "description": "granted by hand in 2023",
    }
    assert bindings["reader-subscription"]["scope"] == {"resourceId": f"/subscriptions/{SUB}"}
    # The same custom role at the same scope under two conditions: two bindings.
    deployers = [s for n, s in bindings.items() if n.startswith("legacy-model-deployer")]
    assert len(deployers) == 2
    assert {d.get("condition") for d in deployers} == {None, "@Resource[x] StringEquals 'y'"}
    assert all(d["role"] == {"mlRole": "legacy-model-deployer"} for d in deployers)
    for name, spec in bindings.items():
        MLRoleBinding.model_validate({"metadata": {"name": name}, "spec": spec})
    # Apply order: roles, identities, bindings.
    kinds = [o["kind"] for o in out.objects]
    assert kinds == sorted(kinds, key=["MLRole", "WorkloadIdentity", "MLRoleBinding"].index)


def test_custom_roles_are_exported_exactly_and_adopted_without_a_put() -> None:
    (role,) = by_kind(exported().objects, "MLRole")
    assert role["metadata"] == {
        "name": "legacy-model-deployer",
        "annotations": {"identity.aml.dev/adopt": "true"},
    }
    assert role["spec"] == {
        "roleName": "Legacy Model Deployer",
        "description": "Deploys models (made by hand).",
        "permissions": {"actions": list(CUSTOM_ROLE.actions)},
        "assignableScopes": list(CUSTOM_ROLE.assignable_scopes),
    }
    spec = MLRole.model_validate(role).spec
    plan = plan_role(spec, "derived-guid", None, CUSTOM_ROLE, adopt=True)
    assert (plan.guid, plan.put, plan.blocked) == (CUSTOM, False, None)


def test_privileged_custom_role_says_so() -> None:
    wide = RoleDefinition(**{**CUSTOM_ROLE.__dict__, "actions": ("Microsoft.Storage/*",)})
    found = Found(identity("x", "p1"), (), (assignment("p1", CUSTOM, RG),))
    out = export([found], {CUSTOM: wide}, namespace=NS, default_subscription=SUB, issuer=ISSUER)
    (role,) = by_kind(out.objects, "MLRole")
    assert role["spec"]["privileged"] is True
    rules = out.policy["spec"]["roles"]
    assert rules == [
        {
            "mlRoles": ["legacy-model-deployer"],
            "scopes": [{"resourceGroup": {"name": "rg-legacy"}}],
            "privileged": True,
        }
    ]


def test_scope_forms_round_trip_to_the_same_arm_id() -> None:
    cases = {
        WS: {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}},
        WS.replace("workspaces", "registries"): {
            "registry": {"resourceGroup": "rg-ml", "name": "ws-prod"}
        },
        RG: {"resourceGroup": {"name": "rg-legacy"}},
        f"/subscriptions/{OTHER}/resourceGroups/rg-x": {
            "resourceGroup": {"subscriptionId": OTHER, "name": "rg-x"}
        },
        f"/subscriptions/{SUB}": {"resourceId": f"/subscriptions/{SUB}"},
        f"{WS}/onlineEndpoints/e1": {"resourceId": f"{WS}/onlineEndpoints/e1"},
        "/providers/Microsoft.Management/managementGroups/mg": {
            "resourceId": "/providers/Microsoft.Management/managementGroups/mg"
        },
    }
    for arm_id, form in cases.items():
        assert scope_form(arm_id, SUB) == form
        assert scope_id(Scope.model_validate(form), SUB).lower() == arm_id.lower()


def test_unknown_role_is_named_by_id() -> None:
    found = Found(identity("x", "p1"), (), (assignment("p1", READER, RG),))
    out = export([found], {}, namespace=NS, default_subscription=SUB, issuer=ISSUER)
    (binding,) = by_kind(out.objects, "MLRoleBinding")
    assert binding["spec"]["role"] == {
        "roleDefinitionId": assignment("p1", READER, RG).role_definition_id
    }
    assert any("could not be read" in n for n in out.notes)


def test_policy_and_consents() -> None:
    out = exported()
    policy = MLAccessPolicy.model_validate(out.policy)
    assert out.policy["metadata"]["name"] == f"adopt-{NS}"
    assert out.policy["spec"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NS}
    }
    assert out.policy["spec"]["adoption"] == {"resourceGroups": [{"name": "rg-legacy"}]}
    assert policy.spec.adoption.resource_groups[0].name == "rg-legacy"
    assert out.policy["spec"]["federation"] == [
        {
            "issuer": "https://token.actions.githubusercontent.com",
            "subjects": ["repo:contoso/ml:ref:refs/heads/main"],
        }
    ]
    assert {"subscription": SUB} in out.policy["spec"]["scopes"]
    builtins = [r for r in out.policy["spec"]["roles"] if "builtIn" in r]
    assert {"builtIn": ["Reader"], "scopes": [{"subscription": SUB}]} in builtins
    # The trainer consents already; the deployer's owner has to.
    (consent,) = out.consents
    assert consent == (world()[1].identity.id, f"{NS}/deployer")
    assert consent_command(*consent) == (
        f"az tag update --resource-id {consent[0]} --operation merge "
        f"--tags aml-identity.adoptable-by={NS}/deployer"
    )


def test_operator_managed_identities_are_recognised() -> None:
    assert operator_managed(
        identity("x", "p", ownership_tags("c", "WorkloadIdentity", NS, "x", "u"))
    )
    assert not operator_managed(identity("x", "p", {ADOPTABLE_TAG: f"{NS}/x"}))
