"""The pure planners: names, managed identities, bindings, custom roles, errors."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from aml_identity.api.common import Reason
from aml_identity.api.mlrole import MLRoleSpec
from aml_identity.api.observed import FederatedCredential, Identity, RoleAssignment, RoleDefinition
from aml_identity.api.workloadidentity import WorkloadIdentitySpec
from aml_identity.azure.errors import TABLE, classify, kubernetes_failure
from aml_identity.controllers.outcome import Outcome
from aml_identity.handlers.shell import result_label
from aml_identity.reconcile import names
from aml_identity.reconcile.binding import (
    BindingPlan,
    Owned,
    Principal,
    plan_binding,
    role_definition_id,
)
from aml_identity.reconcile.identity import Owner, SpecError, desired_identity, plan_identity
from aml_identity.reconcile.names import ADOPTABLE_TAG
from aml_identity.reconcile.role import definition_body, plan_role

OWNER = Owner("ml-team", "trainer", "uid-1", "prod-cluster")
ISSUER = "https://oidc.example/cluster"
GROUP = "/subscriptions/s/resourceGroups/rg"
SCOPE = f"{GROUP}/providers/Microsoft.MachineLearningServices/workspaces/w"
ROLES = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
READER = ROLES + "acdd72a7-3385-48ef-bd42-f606fba81ae7"
OTHER_ROLE = ROLES + "b24988ac-6180-42a0-ab88-20f7382dd24c"


def spec(**extra: object) -> WorkloadIdentitySpec:
    return WorkloadIdentitySpec.model_validate(
        {"managedIdentity": {"resourceGroup": "rg-id", "location": "westeurope"}, **extra}
    )


# --- names ---------------------------------------------------------------------------


def test_identity_names_fit_azure_rules() -> None:
    assert names.identity_name("ml-team", "trainer") == "ml-team-trainer"
    long = names.identity_name("n" * 63, "x" * 200)
    assert len(long) == 128
    assert long != names.identity_name("n" * 63, "x" * 199), "cut names stay distinct"
    assert names.identity_name("a", "b.c") == "a-b-c"


def test_service_account_credential_names_are_distinct() -> None:
    assert names.service_account_credential_name("trainer") == "k8s-trainer"
    dotted = names.service_account_credential_name("a.b")
    assert dotted.startswith("k8s-a-b-")
    assert dotted != names.service_account_credential_name("a-b")


def test_role_assignment_names_are_deterministic_and_case_insensitive() -> None:
    a = names.role_assignment_name(SCOPE, READER, "P1")
    assert a == names.role_assignment_name(SCOPE.upper() + "/", READER.lower(), "p1")
    assert uuid.UUID(a).version == 5
    assert a != names.role_assignment_name(SCOPE, OTHER_ROLE, "p1")


# --- managed identity plan -----------------------------------------------------------


def test_desired_identity_from_spec() -> None:
    desired = desired_identity(
        spec(
            serviceAccounts=[{"name": "trainer"}],
            federatedCredentials=[{"name": "github", "issuer": "https://gh", "subject": "repo:x"}],
        ),
        OWNER,
        default_subscription="sub-1",
        issuer=ISSUER,
    )
    assert (desired.subscription, desired.resource_group, desired.name) == (
        "sub-1",
        "rg-id",
        "ml-team-trainer",
    )
    assert desired.tags["aml-identity.uid"] == "uid-1"
    assert desired.tags["aml-identity.cluster"] == "prod-cluster"
    assert [c.name for c in desired.federated_credentials] == ["k8s-trainer", "github"]
    assert desired.federated_credentials[0].subject == "system:serviceaccount:ml-team:trainer"
    assert desired.federated_credentials[0].issuer == ISSUER


def test_reserved_prefix_and_duplicate_trust_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="k8s- is reserved"):
        desired_identity(
            spec(federatedCredentials=[{"name": "k8s-x", "issuer": "https://a", "subject": "s"}]),
            OWNER,
            default_subscription="s",
            issuer=ISSUER,
        )
    with pytest.raises(SpecError, match="same issuer and subject"):
        desired_identity(
            spec(
                federatedCredentials=[
                    {"name": "one", "issuer": "https://a", "subject": "s"},
                    {"name": "two", "issuer": "https://a", "subject": "s"},
                ]
            ),
            OWNER,
            default_subscription="s",
            issuer=ISSUER,
        )


def observed_identity(tags: dict[str, str], location: str = "westeurope") -> Identity:
    return Identity(
        "/subscriptions/s/x", "ml-team-trainer", location, tags, "client", "principal", "tenant"
    )


def test_plan_create_then_nothing() -> None:
    desired = desired_identity(
        spec(serviceAccounts=[{"name": "trainer"}]), OWNER, default_subscription="s", issuer=ISSUER
    )
    first = plan_identity(desired, None, [], owner_uid="uid-1", adopt=False)
    assert first.create
    assert [c.name for c in first.put_credentials] == ["k8s-trainer"]
    settled = plan_identity(
        desired,
        observed_identity(desired.tags),
        list(desired.federated_credentials),
        owner_uid="uid-1",
        adopt=False,
    )
    assert settled.empty
    assert settled.changes == ()


def test_plan_corrects_drift_and_removes_stale_credentials() -> None:
    desired = desired_identity(
        spec(serviceAccounts=[{"name": "trainer"}]), OWNER, default_subscription="s", issuer=ISSUER
    )
    changed = FederatedCredential(
        "k8s-trainer",
        ISSUER,
        "system:serviceaccount:other:trainer",
        ("api://AzureADTokenExchange",),
    )
    stale = FederatedCredential("old", ISSUER, "x", ("api://AzureADTokenExchange",))
    plan = plan_identity(
        desired,
        observed_identity({**desired.tags, "extra": "1"}),
        [changed, stale],
        owner_uid="uid-1",
        adopt=False,
    )
    assert plan.tags == desired.tags
    assert [c.subject for c in plan.put_credentials] == ["system:serviceaccount:ml-team:trainer"]
    assert plan.delete_credentials == ("old",)


def test_credentials_not_read_plan_no_credential_change_but_still_the_identity() -> None:
    desired = desired_identity(
        spec(serviceAccounts=[{"name": "trainer"}]), OWNER, default_subscription="s", issuer=ISSUER
    )
    skipped = plan_identity(
        desired, observed_identity({**desired.tags, "extra": "1"}), None, owner_uid="uid-1",
        adopt=False,
    )  # fmt: skip
    assert skipped.tags == desired.tags
    assert skipped.put_credentials == ()
    assert skipped.delete_credentials == ()
    # A missing identity is created with its credentials whether or not they were read.
    created = plan_identity(desired, None, None, owner_uid="uid-1", adopt=False)
    assert created.create
    assert [c.name for c in created.put_credentials] == ["k8s-trainer"]


def test_plan_refuses_what_is_not_ours_unless_adopted() -> None:
    desired = desired_identity(spec(), OWNER, default_subscription="s", issuer=ISSUER)
    theirs = observed_identity({"owner": "someone"})
    blocked = plan_identity(desired, theirs, [], owner_uid="uid-1", adopt=False)
    assert blocked.blocked is not None
    assert blocked.blocked[0] is Reason.NOT_OWNED
    unconsented = plan_identity(
        desired, theirs, [], owner_uid="uid-1", adopt=True, consent="ml-team/trainer"
    )
    assert unconsented.blocked is not None
    assert "aml-identity.adoptable-by=ml-team/trainer" in unconsented.blocked[1]
    wrong = observed_identity({"owner": "someone", ADOPTABLE_TAG: "other/trainer"})
    assert plan_identity(
        desired, wrong, [], owner_uid="uid-1", adopt=True, consent="ml-team/trainer"
    ).blocked
    consenting = observed_identity({"owner": "someone", ADOPTABLE_TAG: "ml-team/trainer"})
    theirs_credential = FederatedCredential("their-ci", "https://ci", "repo:x", ("aud",))
    adopted = plan_identity(
        desired,
        consenting,
        [theirs_credential],
        owner_uid="uid-1",
        adopt=True,
        consent="ml-team/trainer",
    )
    assert adopted.blocked is None
    # Adoption writes nothing by itself: the owner's tags stay exactly as they are (no
    # ownership tags are added); their credentials are never deleted.
    assert adopted.tags is None
    assert adopted.empty
    assert adopted.delete_credentials == ()
    # Afterwards the identity is recognised by the principal recorded in the status (and
    # its consent tag), still without our tags.
    again = plan_identity(
        desired,
        consenting,
        [theirs_credential],
        owner_uid="uid-1",
        adopt=False,
        consent="ml-team/trainer",
        known_principal="principal",
    )
    assert again.blocked is None
    assert again.empty
    # The owner withdraws consent (removes the tag): the resource that adopted it (its
    # status says so) writes nothing more, not even its ownership tags.
    withdrawn = plan_identity(
        desired,
        observed_identity({"owner": "someone"}),
        [theirs_credential],
        owner_uid="uid-1",
        adopt=False,
        consent="ml-team/trainer",
        known_principal="principal",
        adopted=True,
    )
    assert withdrawn.blocked is not None
    assert withdrawn.blocked[0] is Reason.NOT_OWNED
    assert "withdrawn consent" in withdrawn.blocked[1]
    # Tags the spec asks for are added to the owner's, and only those.
    tagged = desired_identity(
        spec(
            managedIdentity={
                "resourceGroup": "rg-id",
                "location": "westeurope",
                "tags": {"team": "ml"},
            }
        ),
        OWNER,
        default_subscription="s",
        issuer=ISSUER,
    )
    retagged = plan_identity(
        tagged, consenting, [], owner_uid="uid-1", adopt=True, consent="ml-team/trainer"
    )
    assert retagged.tags == {**consenting.tags, "team": "ml"}
    nothing = plan_identity(desired, None, [], owner_uid="uid-1", adopt=True, consent="x/y")
    assert nothing.blocked is not None
    assert "nothing to adopt" in nothing.blocked[1]
    stripped = plan_identity(
        desired, theirs, [], owner_uid="uid-1", adopt=False, known_principal="principal"
    )
    assert stripped.blocked is None, "the identity this resource created, tags stripped"
    assert stripped.tags == desired.tags
    moved = plan_identity(
        desired, observed_identity(desired.tags, "northeurope"), [], owner_uid="uid-1", adopt=False
    )
    assert moved.blocked is not None
    assert moved.blocked[0] is Reason.INVALID_SPEC


# --- binding plan --------------------------------------------------------------------


BINDING = names.AssignmentOwner("ml-team", "readers", "0f6b5d3e-3d0c-4c55-9c1e-0d6a1f6e9a01")
OTHER_BINDING = names.AssignmentOwner("ml-ops", "audit", "7c1f7f7a-5b9e-4a43-8a11-2a3b5c7d9e0f")


def assignment(
    name: str,
    principal: str,
    role: str = READER,
    condition: str | None = None,
    owner: names.AssignmentOwner | None = None,
) -> RoleAssignment:
    """An observed assignment; `owner`: the binding its description names."""
    return RoleAssignment(
        f"{SCOPE}/providers/Microsoft.Authorization/roleAssignments/{name}",
        name,
        SCOPE,
        role,
        principal,
        "ServicePrincipal",
        condition,
        names.assignment_description(None, owner) if owner else "",
    )


CONDITION = (
    "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'x'"
)


def test_binding_rewrites_its_own_assignment_when_the_condition_differs() -> None:
    p1 = Principal("wid a", "p1", "ServicePrincipal")
    ours = names.role_assignment_name(SCOPE, READER, "p1")

    def plan(observed: str | None, desired: str | None) -> BindingPlan:
        return plan_binding(
            scope=SCOPE,
            role_definition=READER,
            principals=[p1],
            observed={"p1": [assignment(ours, "p1", condition=observed, owner=BINDING)]},
            owned=[Owned(ours, SCOPE, "p1", READER, True)],
            binding=BINDING,
            condition=desired,
        )

    # A condition added, tightened or removed in the spec: the same assignment again.
    for observed, desired in ((None, CONDITION), (CONDITION, CONDITION + "x"), (CONDITION, None)):
        changed = plan(observed, desired)
        assert [u.name for u in changed.updates] == [ours], (observed, desired)
        assert (changed.creates, changed.deletes, changed.empty) == ((), (), False)
        assert "set the condition" in changed.changes[0]
    assert plan(CONDITION, CONDITION).empty
    assert plan(None, "").empty, "no condition and an empty one are the same to Azure"


def test_binding_never_adopts_an_assignment_with_another_condition() -> None:
    p1 = Principal("wid a", "p1", "ServicePrincipal")
    theirs = "11111111-1111-1111-1111-111111111111"
    for observed, desired in ((None, CONDITION), (CONDITION, None)):
        plan = plan_binding(
            scope=SCOPE,
            role_definition=READER,
            principals=[p1],
            observed={"p1": [assignment(theirs, "p1", condition=observed)]},
            owned=[],
            binding=BINDING,
            condition=desired,
        )
        assert (plan.keep, plan.creates, plan.updates, plan.deletes) == ((), (), (), ())
        [conflict] = plan.conflicts
        assert conflict.assignment == theirs
        assert "differs from the spec's" in conflict.message
    # The same condition: adopted as before, and never deleted.
    adopted = plan_binding(
        scope=SCOPE,
        role_definition=READER,
        principals=[p1],
        observed={"p1": [assignment(theirs, "p1", condition=CONDITION)]},
        owned=[],
        binding=BINDING,
        condition=CONDITION,
    )
    assert [(k.name, k.created) for k in adopted.keep] == [(theirs, False)]
    assert adopted.conflicts == ()


def test_binding_creates_missing_and_keeps_present() -> None:
    p1, p2 = (
        Principal("wid a", "p1", "ServicePrincipal"),
        Principal("wid b", "p2", "ServicePrincipal"),
    )
    ours = names.role_assignment_name(SCOPE, READER, "p1")
    plan = plan_binding(
        scope=SCOPE,
        role_definition=READER,
        principals=[p1, p2],
        observed={"p1": [assignment(ours, "p1", owner=BINDING)], "p2": []},
        owned=[],
        binding=BINDING,
    )
    assert [c.principal.principal_id for c in plan.creates] == ["p2"]
    assert plan.creates[0].name == names.role_assignment_name(SCOPE, READER, "p2")
    assert [k.name for k in plan.keep] == [ours]
    assert plan.deletes == ()


def test_binding_never_deletes_what_it_did_not_create() -> None:
    p1 = Principal("wid a", "p1", "ServicePrincipal")
    theirs = assignment("11111111-1111-1111-1111-111111111111", "p1")
    plan = plan_binding(
        scope=SCOPE,
        role_definition=READER,
        principals=[p1],
        observed={"p1": [theirs]},
        owned=[],
        binding=BINDING,
    )
    assert plan.empty
    assert plan.keep[0].created is False
    # Subject removed: the adopted assignment is not deleted; a created one is.
    created = Owned("ours", SCOPE, "p1", READER, True)
    adopted = Owned(theirs.name, SCOPE, "p1", READER, False)
    plan = plan_binding(
        scope=SCOPE,
        role_definition=READER,
        principals=[],
        observed={},
        owned=[created, adopted],
        binding=BINDING,
    )
    assert [d.name for d in plan.deletes] == ["ours"]


def test_role_change_creates_new_and_deletes_old() -> None:
    p1 = Principal("wid a", "p1", "ServicePrincipal")
    old = Owned(names.role_assignment_name(SCOPE, READER, "p1"), SCOPE, "p1", READER, True)
    plan = plan_binding(
        scope=SCOPE,
        role_definition=OTHER_ROLE,
        principals=[p1],
        observed={"p1": [assignment(old.name, "p1", owner=BINDING)]},
        owned=[old],
        binding=BINDING,
    )
    assert [c.name for c in plan.creates] == [names.role_assignment_name(SCOPE, OTHER_ROLE, "p1")]
    assert [d.name for d in plan.deletes] == [old.name]


def test_binding_records_itself_and_shares_another_bindings_assignment() -> None:
    p1 = Principal("wid a", "p1", "ServicePrincipal")
    name = names.role_assignment_name(SCOPE, READER, "p1")

    def plan(
        observed: RoleAssignment, owned: list[Owned], condition: str | None = None
    ) -> BindingPlan:
        return plan_binding(
            scope=SCOPE,
            role_definition=READER,
            principals=[p1],
            observed={"p1": [observed]},
            owned=owned,
            binding=BINDING,
            condition=condition,
            description="readers of w",
        )

    # Another binding's assignment (same triple, same name): shared, never ours.
    shared = plan(assignment(name, "p1", owner=OTHER_BINDING), [])
    assert shared.empty
    [kept] = shared.keep
    assert (kept.created, kept.owner) == (False, "ml-ops/audit")
    assert shared.shared == (kept,)
    # Even when a status written before bindings recorded themselves says created.
    legacy = plan(
        assignment(name, "p1", owner=OTHER_BINDING), [Owned(name, SCOPE, "p1", READER, True)]
    )
    assert (legacy.keep[0].created, legacy.deletes) == (False, ())
    # Under another condition it is a conflict that names the owning binding.
    [conflict] = plan(assignment(name, "p1", owner=OTHER_BINDING), [], CONDITION).conflicts
    assert "MLRoleBinding ml-ops/audit" in conflict.message
    # Ours without the owner in its description (written by an earlier version): written
    # again with it; a marker-less assignment this binding never recorded is not ours.
    [update] = plan(assignment(name, "p1"), [Owned(name, SCOPE, "p1", READER, True)]).updates
    assert (update.name, update.condition_changed) == (name, False)
    assert plan(assignment(name, "p1"), []).keep[0].created is False
    # Ours with the spec's description and owner: nothing to do.
    current = replace(
        assignment(name, "p1"), description=names.assignment_description("readers of w", BINDING)
    )
    assert plan(current, []).empty
    assert plan(current, []).keep[0].created is True


def test_a_shared_record_no_longer_wanted_is_released() -> None:
    """A record another binding owned may have been handed over since: the controller's
    release decides from the assignment's description, so the plan hands it on."""
    shared = Owned("x", SCOPE, "p1", READER, False, "ml-ops/audit")
    adopted = Owned("y", SCOPE, "p2", READER, False)
    plan = plan_binding(
        scope=SCOPE,
        role_definition=READER,
        principals=[],
        observed={},
        owned=[shared, adopted],
        binding=BINDING,
    )
    assert plan.deletes == (shared,)


def test_owner_marker_round_trips_and_ignores_look_alikes() -> None:
    described = names.assignment_description("team: [x] readers", BINDING)
    assert names.assignment_owner(described) == BINDING
    assert described.startswith("team: [x] readers ")
    assert names.assignment_owner(names.assignment_description(None, BINDING)) == BINDING
    assert names.assignment_owner("granted by hand") is None
    assert names.assignment_owner(None) is None
    # Only at the end: text quoting a marker in the middle does not make an owner.
    assert names.assignment_owner(BINDING.marker + " and more") is None


def test_role_definition_ids() -> None:
    guid = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert role_definition_id(guid, SCOPE, "default") == READER
    assert role_definition_id(READER, SCOPE, "default") == READER


# --- custom role plan ----------------------------------------------------------------


ROLE = MLRoleSpec.model_validate(
    {
        "roleName": "ML Endpoint Monitor",
        "permissions": {
            "actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"]
        },
        "assignableScopes": ["/subscriptions/s/resourceGroups/rg-ml"],
    }
)


def definition(
    guid: str, *, role_type: str = "CustomRole", actions: tuple[str, ...] | None = None
) -> RoleDefinition:
    body = definition_body(ROLE)
    return RoleDefinition(
        f"/x/{guid}",
        guid,
        "ML Endpoint Monitor",
        role_type,
        body["description"],
        actions if actions is not None else tuple(body["permissions"][0]["actions"]),
        (),
        (),
        (),
        ("/subscriptions/s/resourceGroups/rg-ml",),
    )


def test_role_plan() -> None:
    assert plan_role(ROLE, "g1", None, None, adopt=False).put
    assert not plan_role(ROLE, "g1", definition("g1"), None, adopt=False).put
    assert plan_role(ROLE, "g1", definition("g1", actions=("*/read",)), None, adopt=False).put
    conflict = plan_role(ROLE, "g1", None, definition("g2"), adopt=False)
    assert conflict.blocked is not None
    assert conflict.blocked[0] is Reason.CONFLICT
    adopted = plan_role(ROLE, "g1", None, definition("g2"), adopt=True)
    assert adopted.guid == "g2"
    builtin = plan_role(ROLE, "g1", None, definition("g3", role_type="BuiltInRole"), adopt=True)
    assert builtin.blocked is not None


def test_adopting_a_role_as_it_is_writes_nothing() -> None:
    """A custom role made by hand has no operator marker in its description: adopting
    it with the same name, description, permissions and scopes puts nothing, then or on
    any later resync; a change later keeps the description unmarked."""
    described = ROLE.model_copy(update={"description": "Reads endpoints."})
    theirs = replace(definition("g2"), description="Reads endpoints.")
    adopted = plan_role(described, "g1", None, theirs, adopt=True)
    assert (adopted.guid, adopted.put, adopted.marked) == ("g2", False, False)
    later = plan_role(described, "g2", theirs, None, adopt=True, adopted=True)
    assert not later.put
    assert plan_role(described, "g2", theirs, None, adopt=True, adopted=False).put
    changed = plan_role(
        described, "g2", replace(theirs, actions=("*/read",)), None, adopt=True, adopted=True
    )
    assert changed.put
    assert not changed.marked
    assert definition_body(described, marked=False)["description"] == "Reads endpoints."
    assert definition_body(described)["description"].endswith("[managed by aml-identity-operator]")


# --- error table ---------------------------------------------------------------------


def http_error(
    status: int,
    code: str,
    headers: dict[str, str] | None = None,
    request_id_header: str = "x-ms-request-id",  # ARM's; Microsoft Graph's is request-id
    inner: str | None = None,  # Key Vault's innererror code
) -> HttpResponseError:
    import json

    from azure.core.rest._http_response_impl import HttpResponseImpl

    class Response(HttpResponseImpl):
        def __init__(self) -> None:
            super().__init__(
                request=HttpRequest("GET", "https://x"),
                internal_response=None,
                status_code=status,
                reason="",
                content_type="application/json",
                headers={request_id_header: "rid-1", **(headers or {})},
                stream_download_generator=None,
            )
            error: dict[str, object] = {"code": code, "message": f"{code} happened"}
            if inner:
                error["innererror"] = {"code": inner}
            self._content = json.dumps({"error": error}).encode()

    from azure.mgmt.core.exceptions import ARMErrorFormat

    return HttpResponseError(response=Response(), error_format=ARMErrorFormat)


@pytest.mark.parametrize(
    ("status", "code", "retryable", "reason"),
    [
        (400, "PrincipalNotFound", True, Reason.WAITING_FOR_PRINCIPAL_REPLICATION),
        (403, "AuthorizationFailed", False, Reason.FORBIDDEN),
        (
            409,
            "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
            True,
            Reason.RECONCILING,
        ),
        (409, "RoleDefinitionWithSameNameExists", False, Reason.CONFLICT),
        # A grant the shared listing did not show yet: look again with a fresh listing.
        (409, "RoleAssignmentExists", True, Reason.RECONCILING),
        (400, "SomethingNew", False, Reason.INVALID_SPEC),
        (503, "ServiceUnavailable", True, Reason.AZURE_ERROR),
        # A management lock needs a person; an unknown conflict will not pass by itself.
        (409, "ScopeLocked", False, Reason.FORBIDDEN),
        (409, "SomethingNew", False, Reason.AZURE_ERROR),
        (409, "AnotherOperationInProgress", True, Reason.RECONCILING),
    ],
)
def test_classification(status: int, code: str, retryable: bool, reason: Reason) -> None:
    failure = classify(http_error(status, code))
    assert (failure.retryable, failure.reason) == (retryable, reason)
    assert failure.request_id == "rid-1"
    assert str(failure) == f"{code}: {code} happened (request id rid-1)"


def test_key_vaults_inner_code_decides_when_the_table_knows_it() -> None:
    deleted = classify(http_error(409, "Conflict", inner="ObjectIsDeletedButRecoverable"))
    assert (deleted.retryable, deleted.reason, deleted.delay) == (False, Reason.CONFLICT, 300.0)
    assert deleted.code == "ObjectIsDeletedButRecoverable"
    # An operation in progress: the outer code, retried.
    busy = classify(http_error(409, "Conflict", inner="SomethingElse"))
    assert (busy.retryable, busy.reason) == (True, Reason.RECONCILING)


def test_kubernetes_refusals_go_through_the_same_table() -> None:
    changed = kubernetes_failure(409, "Conflict", "the object has been modified")
    assert (changed.retryable, changed.reason, changed.delay) == (True, Reason.RECONCILING, 5.0)
    assert str(changed) == "Conflict: Kubernetes API: the object has been modified"
    denied = kubernetes_failure(403, "Forbidden", "secrets is forbidden")
    assert (denied.retryable, denied.reason) == (False, Reason.FORBIDDEN)
    other = kubernetes_failure(500, "Internal Server Error", "etcd timeout")
    assert (other.retryable, other.reason) == (True, Reason.KUBERNETES_ERROR)


def test_the_result_metric_says_failed_for_permanent_failures() -> None:
    unknown_conflict = Outcome.from_failure(classify(http_error(409, "SomethingNew")), "writing")
    assert (result_label(unknown_conflict), unknown_conflict.retry_after) == ("failed", 60.0)
    assert unknown_conflict.events[0].type == "Warning"
    throttled = Outcome.from_failure(classify(http_error(429, "TooManyRequests")), "reading")
    assert result_label(throttled) == "waiting"
    assert result_label(Outcome(Reason.RECONCILED, "")) == "ready"
    assert result_label(Outcome(Reason.INVALID_SPEC, "")) == "failed"


def test_graph_errors_are_classified_with_graphs_request_id() -> None:
    # Graph's replication delay: retried soon, and the message names Graph's request id.
    failure = classify(http_error(404, "Request_ResourceNotFound", request_id_header="request-id"))
    assert (failure.retryable, failure.reason) == (True, Reason.RECONCILING)
    assert (
        str(failure)
        == "Request_ResourceNotFound: Request_ResourceNotFound happened (request id rid-1)"
    )


def test_throttling_uses_retry_after() -> None:
    assert classify(http_error(429, "TooManyRequests", {"Retry-After": "17"})).delay == 17
    assert classify(http_error(429, "TooManyRequests", {"Retry-After": "99999"})).delay == 3600
    assert classify(http_error(429, "TooManyRequests")).delay == TABLE[(429, None)].delay


def test_unknown_errors_are_raised() -> None:
    with pytest.raises(KeyError):
        classify(KeyError("not an Azure error"))
