"""The one access decision (reconcile/policy.py), as a table of cases.

The same functions answer at admission and at reconcile; tests/operator/test_guardrails.py
runs the escalation paths through both against a real control plane and azlocal.
"""

from __future__ import annotations

from typing import Any

import pytest

from aml_identity.api.mlaccesspolicy import MLAccessPolicySpec
from aml_identity.api.mlrole import MLRoleSpec
from aml_identity.reconcile.delegation import delegation_condition, principal_types
from aml_identity.reconcile.policy import (
    EXCLUSIVE_GRANTS,
    FederationRef,
    IdentityRequest,
    Policy,
    PolicyBook,
    PolicySet,
    RoleFacts,
    SubjectRef,
    check_binding,
    check_identity,
    key_vault_url_problem,
    ml_role_problem,
    privileged_reason,
    selects,
)

SUB = "00000000-0000-0000-0000-000000000001"
OTHER_SUB = "00000000-0000-0000-0000-000000000002"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-ml"
WS = RG + "/providers/Microsoft.MachineLearningServices/workspaces"
ISSUER = "https://127.0.0.1:6443"
GITHUB = "https://token.actions.githubusercontent.com"
VAULT_HOSTS = ["*.vault.azure.net"]
PRINCIPAL = "11111111-2222-3333-4444-555555555555"

DATA_SCIENTIST = RoleFacts("f6c7c914-8db3-469d-8ca1-694a8f32e121", "AzureML Data Scientist", True)
READER = RoleFacts("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", True)
OWNER = RoleFacts(
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Owner",
    True,
    privileged="Owner can grant access or change anything",
)
MONITOR = RoleFacts("9a1b", "ML Endpoint Monitor", False, ml_role="endpoint-monitor")

TEAM_A: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": {"team": "a"}},
    "scopes": [{"workspace": {"resourceGroup": "rg-ml", "name": "ws-team-a-*"}}],
    "roles": [
        {"builtIn": ["AzureML Data Scientist"]},
        {"mlRoles": ["endpoint-monitor"]},
        {"builtIn": ["Reader"], "scopes": [{"resourceGroup": {"name": "rg-ml"}}]},
    ],
    "subjects": {
        "principalIds": [{"principalId": PRINCIPAL, "principalType": "ServicePrincipal"}],
        "systemAssignedIdentityOf": [
            "/subscriptions/*/resourceGroups/rg-ml/providers/"
            "Microsoft.MachineLearningServices/workspaces/ws-team-a-*/computes/*"
        ],
    },
    "identities": {
        "managedIdentities": [{"resourceGroup": "rg-ml-identities", "locations": ["westeurope"]}],
        "servicePrincipals": {
            "maxCertificateDuration": "8760h",
            "keyVaults": ["https://kv-team-a.vault.azure.net/"],
        },
    },
    "federation": [{"issuer": GITHUB, "subjects": ["repo:contoso/ml-deploy:*"]}],
    "adoption": {"resourceGroups": [{"name": "rg-legacy"}]},
}
ADMINS: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": {"platform": "true"}},
    "scopes": [{"subscription": SUB}],
    "roles": [{"builtIn": ["Owner"], "privileged": True}, {"builtIn": ["Reader"]}],
}


def policy_set(
    namespace: str = "ml-team", labels: dict[str, str] | None = None, *specs: dict[str, Any]
) -> PolicySet:
    book = PolicyBook(
        tuple(Policy(f"p{i}", MLAccessPolicySpec.model_validate(s)) for i, s in enumerate(specs)),
        {namespace: labels or {}},
        SUB,
    )
    return book.for_namespace(namespace)


def team_a(*extra: dict[str, Any]) -> PolicySet:
    return policy_set("ml-team", {"team": "a"}, TEAM_A, *extra)


WI = SubjectRef("subjects[0]", workload_identity="trainer")


# --- bindings: (policies, role, scope, subjects) -> denied parts ---

BINDINGS: list[tuple[str, PolicySet, RoleFacts, str, list[SubjectRef], set[str]]] = [
    (
        "allowed role at an allowed workspace",
        team_a(),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1",
        [WI],
        set(),
    ),
    (
        "under an allowed workspace",
        team_a(),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1/onlineEndpoints/e",
        [WI],
        set(),
    ),
    ("another team's workspace", team_a(), DATA_SCIENTIST, WS + "/ws-team-b", [WI], {"role"}),
    ("a glob never crosses a name", team_a(), DATA_SCIENTIST, WS + "/ws-team-ab", [WI], {"role"}),
    (
        "narrower rule never implies the resource group",
        team_a(),
        DATA_SCIENTIST,
        RG,
        [WI],
        {"role"},
    ),
    ("a role's own scopes", team_a(), READER, RG, [WI], set()),
    ("subscription scope", team_a(), DATA_SCIENTIST, f"/subscriptions/{SUB}", [WI], {"role"}),
    (
        "another subscription",
        team_a(),
        DATA_SCIENTIST,
        f"/subscriptions/{OTHER_SUB}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-team-a-1",
        [WI],
        {"role"},
    ),
    ("Owner is not listed", team_a(), OWNER, WS + "/ws-team-a-1", [WI], {"role"}),
    ("Owner by its id is the same role", team_a(), OWNER, WS + "/ws-team-a-1", [WI], {"role"}),
    ("a listed MLRole", team_a(), MONITOR, WS + "/ws-team-a-1", [WI], set()),
    (
        "an unlisted MLRole",
        team_a(),
        RoleFacts("x", "Other", False, ml_role="other"),
        WS + "/ws-team-a-1",
        [WI],
        {"role"},
    ),
    (
        "a listed principal",
        team_a(),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1",
        [SubjectRef("subjects[0]", principal_id=PRINCIPAL, principal_type="ServicePrincipal")],
        set(),
    ),
    (
        "a listed principal of another type",
        team_a(),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1",
        [SubjectRef("subjects[0]", principal_id=PRINCIPAL, principal_type="User")],
        {"subjects[0]"},
    ),
    (
        "an unlisted principal, next to an allowed subject",
        team_a(),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1",
        [
            WI,
            SubjectRef(
                "subjects[1]",
                principal_id="99999999-2222-3333-4444-555555555555",
                principal_type="User",
            ),
        ],
        {"subjects[1]"},
    ),
    (
        "a compute of the team's workspace",
        team_a(),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1",
        [SubjectRef("subjects[0]", system_assigned_identity_of=WS + "/ws-team-a-1/computes/cpu")],
        set(),
    ),
    (
        "any other resource's identity",
        team_a(),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1",
        [SubjectRef("subjects[0]", system_assigned_identity_of=WS + "/ws-team-b/computes/cpu")],
        {"subjects[0]"},
    ),
    (
        "no policy selects the namespace",
        policy_set("ml-team", {"team": "b"}, TEAM_A),
        DATA_SCIENTIST,
        WS + "/ws-team-a-1",
        [WI],
        {"role"},
    ),
    (
        "privileged only with privileged: true",
        policy_set("ops", {"platform": "true"}, ADMINS),
        OWNER,
        f"/subscriptions/{SUB}/resourceGroups/rg-x",
        [WI],
        set(),
    ),
    (
        "privileged role listed without privileged",
        policy_set("ops", {"platform": "true"}, {**ADMINS, "roles": [{"builtIn": ["Owner"]}]}),
        OWNER,
        RG,
        [WI],
        {"role"},
    ),
    (
        "union: the second policy adds Owner",
        policy_set("ml-team", {"team": "a", "platform": "true"}, TEAM_A, ADMINS),
        OWNER,
        WS + "/ws-team-a-1",
        [WI],
        set(),
    ),
    (
        "union is per policy: a subject from one, a role from the other",
        policy_set("ml-team", {"team": "a", "platform": "true"}, TEAM_A, ADMINS),
        OWNER,
        WS + "/ws-team-a-1",
        [SubjectRef("subjects[0]", principal_id=PRINCIPAL, principal_type="ServicePrincipal")],
        {"subjects[0]"},
    ),
    ("dot segments", team_a(), DATA_SCIENTIST, WS + "/ws-team-a-1/../ws-team-b", [WI], {"role"}),
]


@pytest.mark.parametrize(
    ("policies", "role", "scope", "subjects", "denied"),
    [case[1:] for case in BINDINGS],
    ids=[case[0] for case in BINDINGS],
)
def test_binding_decisions(
    policies: PolicySet, role: RoleFacts, scope: str, subjects: list[SubjectRef], denied: set[str]
) -> None:
    verdict = check_binding(policies, role, scope, subjects)
    assert {d.part for d in verdict.denials} == denied
    assert verdict.allowed == (not denied)


def test_denial_names_the_missing_rule() -> None:
    message = check_binding(team_a(), OWNER, f"/subscriptions/{SUB}", [WI]).message
    assert "namespace ml-team may not bind Owner" in message
    assert "no MLAccessPolicy selecting ml-team allows it" in message
    none = check_binding(policy_set("ml-team", {}), READER, RG, [WI]).message
    assert "no MLAccessPolicy selects namespace ml-team, so nothing is allowed" in none
    privileged = check_binding(
        policy_set("ops", {"platform": "true"}, {**ADMINS, "roles": [{"builtIn": ["Owner"]}]}),
        OWNER,
        RG,
        [WI],
    ).message
    assert "privileged" in privileged
    assert "without privileged: true" in privileged


def test_audit_reports_but_does_not_enforce() -> None:
    audit = {**TEAM_A, "enforcement": "Audit"}
    verdict = check_binding(policy_set("ml-team", {"team": "a"}, audit), OWNER, RG, [WI])
    assert verdict.denials
    assert verdict.audit
    assert not verdict.enforced
    # One enforcing policy among the selecting ones enforces.
    both = policy_set("ml-team", {"team": "a"}, audit, {**TEAM_A, "roles": []})
    assert check_binding(both, OWNER, RG, [WI]).enforced


# --- privileged roles ---


@pytest.mark.parametrize(
    ("actions", "not_actions", "custom", "privileged"),
    [
        (["*"], [], False, True),
        (
            ["*"],
            ["Microsoft.Authorization/*/write", "Microsoft.Authorization/*/delete"],
            False,
            True,
        ),
        (["*/read"], [], False, False),
        (["Microsoft.Authorization/*"], [], False, True),
        (["Microsoft.Authorization/*/write"], [], True, True),
        (["Microsoft.Authorization/roleAssignments/write"], [], True, True),
        (["Microsoft.Authorization/*/read"], [], True, False),
        (["Microsoft.Storage/*"], [], True, True),
        (["*/write"], [], True, True),
        (["Microsoft.Storage/*"], [], False, False),
        (["Microsoft.MachineLearningServices/workspaces/*/read"], [], True, False),
        (["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/*"], [], True, False),
    ],
)
def test_privileged_actions(
    actions: list[str], not_actions: list[str], custom: bool, privileged: bool
) -> None:
    why = privileged_reason(guid="", actions=actions, not_actions=not_actions, custom=custom)
    assert (why is not None) == privileged


@pytest.mark.parametrize(
    "guid",
    [
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "B24988AC-6180-42A0-AB88-20F7382DD24C",
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    ],
)
def test_privileged_built_in_roles_by_id(guid: str) -> None:
    assert privileged_reason(guid=guid, actions=[], not_actions=[], custom=False)


def ml_role(actions: list[str], privileged: bool = False) -> MLRoleSpec:
    return MLRoleSpec.model_validate(
        {
            "roleName": "r",
            "permissions": {"actions": actions},
            "assignableScopes": [RG],
            "privileged": privileged,
        }
    )


def test_ml_role_guard() -> None:
    assert ml_role_problem(ml_role(["*"])) is not None
    assert ml_role_problem(ml_role(["Microsoft.Authorization/*/write"])) is not None
    assert ml_role_problem(ml_role(["Microsoft.Compute/*"])) is not None
    assert ml_role_problem(ml_role(["*"], privileged=True)) is None
    assert (
        ml_role_problem(ml_role([f"{'Microsoft.MachineLearningServices'}/workspaces/read"])) is None
    )


# --- identities ---


def identity(**fields: Any) -> IdentityRequest:
    base: dict[str, Any] = {
        "namespace": "ml-team",
        "name": "trainer",
        "managed_identity": (SUB, "rg-ml-identities", "westeurope"),
    }
    return IdentityRequest(**{**base, **fields})


def fed(name: str, issuer: str, subject: str) -> tuple[FederationRef, ...]:
    return (FederationRef(name, issuer, subject),)


IDENTITIES: list[tuple[str, PolicySet, IdentityRequest, set[str]]] = [
    ("an allowed place", team_a(), identity(), set()),
    (
        "another resource group",
        team_a(),
        identity(managed_identity=(SUB, "rg-ml", "westeurope")),
        {"identity"},
    ),
    (
        "another region",
        team_a(),
        identity(managed_identity=(SUB, "rg-ml-identities", "eastus")),
        {"identity"},
    ),
    (
        "another subscription",
        team_a(),
        identity(managed_identity=(OTHER_SUB, "rg-ml-identities", "westeurope")),
        {"identity"},
    ),
    ("no policy", policy_set("ml-team", {}, TEAM_A), identity(), {"identity"}),
    (
        "this cluster, own namespace",
        team_a(),
        identity(federated=fed("own", ISSUER, "system:serviceaccount:ml-team:x")),
        set(),
    ),
    (
        "this cluster, another namespace",
        team_a(),
        identity(federated=fed("steal", ISSUER + "/", "system:serviceaccount:other:x")),
        {"federatedCredentials[steal]"},
    ),
    (
        "this cluster, a subject that is no service account",
        team_a(),
        identity(federated=fed("any", ISSUER, "system:serviceaccount:ml-team:x:y")),
        {"federatedCredentials[any]"},
    ),
    (
        "an allowed repository",
        team_a(),
        identity(federated=fed("gh", GITHUB, "repo:contoso/ml-deploy:environment:prod")),
        set(),
    ),
    (
        "another repository",
        team_a(),
        identity(federated=fed("gh", GITHUB, "repo:mallory/ml-deploy:ref:main")),
        {"federatedCredentials[gh]"},
    ),
    (
        "an unlisted issuer",
        team_a(),
        identity(federated=fed("x", "https://issuer.example.com", "repo:contoso/ml-deploy:x")),
        {"federatedCredentials[x]"},
    ),
    (
        "another audience than the token exchange's",
        team_a(),
        identity(
            federated=(
                FederationRef("gh", GITHUB, "repo:contoso/ml-deploy:x", ("api://other-app",)),
            )
        ),
        {"federatedCredentials[gh]"},
    ),
    (
        "an audience the rule lists",
        team_a(
            {
                **TEAM_A,
                "federation": [
                    {
                        "issuer": GITHUB,
                        "subjects": ["repo:contoso/ml-deploy:*"],
                        "audiences": ["api://other-app"],
                    }
                ],
            }
        ),
        identity(
            federated=(
                FederationRef("gh", GITHUB, "repo:contoso/ml-deploy:x", ("api://other-app",)),
            )
        ),
        set(),
    ),
    (
        "adoption where allowed",
        team_a(),
        identity(managed_identity=(SUB, "rg-legacy", "westeurope"), adopt=True),
        set(),
    ),
    (
        "adoption in an allowed group",
        team_a({**TEAM_A, "identities": {"managedIdentities": [{"resourceGroup": "rg-legacy"}]}}),
        identity(managed_identity=(SUB, "rg-legacy", "westeurope"), adopt=True),
        set(),
    ),
    ("adoption elsewhere", team_a(), identity(adopt=True), {"identity"}),
    (
        "a service principal with a certificate",
        team_a(),
        identity(
            managed_identity=None,
            service_principal=True,
            credential_kind="Certificate",
            credential_duration="720h",
        ),
        set(),
    ),
    (
        "a client secret is denied unless listed",
        team_a(),
        identity(
            managed_identity=None,
            service_principal=True,
            credential_kind="ClientSecret",
            credential_duration="720h",
        ),
        {"identity"},
    ),
    (
        "a certificate longer than allowed",
        team_a(),
        identity(
            managed_identity=None,
            service_principal=True,
            credential_kind="Certificate",
            credential_duration="9000h",
        ),
        {"identity"},
    ),
    (
        "a listed Key Vault",
        team_a(),
        identity(
            managed_identity=None,
            service_principal=True,
            credential_kind="Certificate",
            credential_duration="720h",
            key_vault_url="https://kv-team-a.vault.azure.net/",
        ),
        set(),
    ),
    (
        "an unlisted Key Vault",
        team_a(),
        identity(
            managed_identity=None,
            service_principal=True,
            credential_kind="Certificate",
            credential_duration="720h",
            key_vault_url="https://kv-team-b.vault.azure.net/",
        ),
        {"identity"},
    ),
    (
        "no service principals",
        policy_set("ml-team", {"team": "a"}, {**TEAM_A, "identities": {}}),
        identity(managed_identity=None, service_principal=True),
        {"identity"},
    ),
]


@pytest.mark.parametrize(
    ("policies", "request_", "denied"),
    [case[1:] for case in IDENTITIES],
    ids=[case[0] for case in IDENTITIES],
)
def test_identity_decisions(
    policies: PolicySet, request_: IdentityRequest, denied: set[str]
) -> None:
    verdict = check_identity(policies, request_, cluster_issuer=ISSUER, vault_hosts=VAULT_HOSTS)
    assert {d.part for d in verdict.denials} == denied


def test_an_unlisted_audience_is_named_in_the_denial() -> None:
    request_ = identity(
        federated=(FederationRef("gh", GITHUB, "repo:contoso/ml-deploy:x", ("api://x",)),)
    )
    verdict = check_identity(team_a(), request_, cluster_issuer=ISSUER, vault_hosts=VAULT_HOSTS)
    assert "with audience api://x" in verdict.message


def test_cluster_issuer_rule_holds_in_audit() -> None:
    audit = policy_set("ml-team", {"team": "a"}, {**TEAM_A, "enforcement": "Audit"})
    request_ = identity(federated=fed("steal", ISSUER, "system:serviceaccount:other:x"))
    verdict = check_identity(audit, request_, cluster_issuer=ISSUER, vault_hosts=VAULT_HOSTS)
    assert verdict.denies("federatedCredentials[steal]")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://kv-ml.vault.azure.net/", True),
        ("https://kv-ml.vault.azure.net", True),
        ("http://kv-ml.vault.azure.net/", False),
        ("https://attacker.example.com/", False),
        ("https://kv-ml.vault.azure.net.attacker.example.com/", False),
        ("https://user@kv-ml.vault.azure.net/", False),
        ("https://kv-ml.vault.azure.net/path", False),
        ("https://kv-ml.vault.azure.net/?x=1", False),
    ],
)
def test_key_vault_urls(url: str, ok: bool) -> None:
    assert (key_vault_url_problem(url, VAULT_HOSTS) is None) == ok


def test_label_selectors() -> None:
    spec = MLAccessPolicySpec.model_validate(
        {
            "namespaceSelector": {
                "matchLabels": {"team": "a"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "frozen", "operator": "DoesNotExist"},
                ],
            }
        }
    )
    assert selects(spec.namespace_selector, {"team": "a", "tier": "dev"})
    assert not selects(spec.namespace_selector, {"team": "a", "tier": "test"})
    assert not selects(spec.namespace_selector, {"team": "a", "tier": "dev", "frozen": "1"})
    everything = MLAccessPolicySpec.model_validate({"namespaceSelector": {}})
    assert selects(everything.namespace_selector, {})


def test_delegation_condition_names_the_allowed_roles() -> None:
    book = PolicyBook(
        (Policy("a", MLAccessPolicySpec.model_validate(TEAM_A)),), {"ml-team": {"team": "a"}}, SUB
    )
    types = principal_types(book)
    assert types == {"ServicePrincipal"}
    text = delegation_condition([DATA_SCIENTIST.guid, READER.guid.upper()], types)
    assert (
        "@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] "
        "ForAnyOfAnyValues:GuidEquals "
        "{acdd72a7-3385-48ef-bd42-f606fba81ae7, f6c7c914-8db3-469d-8ca1-694a8f32e121}"
    ) in text
    assert (
        "@Resource[Microsoft.Authorization/roleAssignments:PrincipalType] "
        "ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal'}"
    ) in text
    assert "!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})" in text
    with pytest.raises(ValueError, match="deny all"):
        delegation_condition([], types)


def test_exclusive_grants_need_a_policy_that_allows_them() -> None:
    request_ = identity(exclusive_grants=True)
    denied = check_identity(team_a(), request_, cluster_issuer=ISSUER, vault_hosts=VAULT_HOSTS)
    assert {d.part for d in denied.denials} == {EXCLUSIVE_GRANTS}  # the identity is allowed
    assert "spec.identities.exclusiveGrants" in denied.message
    allowing = {
        "namespaceSelector": {},
        "identities": {"exclusiveGrants": True},
    }
    allowed = check_identity(
        team_a(allowing), request_, cluster_issuer=ISSUER, vault_hosts=VAULT_HOSTS
    )
    assert allowed.allowed
    asked_not = check_identity(team_a(), identity(), cluster_issuer=ISSUER, vault_hosts=VAULT_HOSTS)
    assert asked_not.allowed
