"""ABAC delegation conditions on role assignments, through azure-mgmt-authorization.

The condition is the documented "Constrain roles and principal types" example
(learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples),
put by the platform administrator onto the operator's Role Based Access Control
Administrator assignment on rg-ml. Every test puts back what it changed: the session's
azlocal is shared.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignment

from azlocal.server import AzLocal
from support.azure import (
    admin_credential,
    authorization_client,
    code_of,
    message_of,
    operator_credential,
)
from support.world import RG_ML, SUB, WORKSPACE

DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
RBAC_ADMIN = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
USER_ACCESS_ADMIN = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
ALLOWED = f"{DATA_SCIENTIST}, {READER}"
CONDITION = f"""(
 (
  !(ActionMatches{{'{WRITE}'}})
 )
 OR
 (
  @Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{ALLOWED}}}
  AND
  @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {{'ServicePrincipal'}}
 )
)
AND
(
 (
  !(ActionMatches{{'{DELETE}'}})
 )
 OR
 (
  @Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{ALLOWED}}}
  AND
  @Resource[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {{'ServicePrincipal'}}
 )
)"""  # noqa: E501 (the documented layout)


def role_id(guid: str) -> str:
    return f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def with_status(response: Any, deserialized: RoleAssignment, headers: Any) -> tuple[int, Any]:
    """An SDK `cls` callback: the HTTP status beside the model."""
    return response.http_response.status_code, deserialized


class World:
    """Principals and role assignments a test creates; removed from azlocal afterwards."""

    def __init__(self, azlocal: AzLocal) -> None:
        self.azlocal = azlocal
        self.principals: list[str] = []
        self.assignments: list[str] = []

    def principal(self, kind: str) -> str:
        created = self.azlocal.admin("POST", "principals", {"kind": kind, "displayName": "abac"})
        self.principals.append(created["objectId"])
        return str(created["objectId"])

    def name(self) -> str:
        name = str(uuid.uuid4())
        self.assignments.append(name)
        return name

    def remove(self) -> None:
        store = self.azlocal.ctx.store
        for name in self.assignments:
            store.role_assignments.pop(name, None)
        for object_id in self.principals:
            store.principals.pop(object_id, None)


@pytest.fixture
def world(azlocal: AzLocal) -> Iterator[World]:
    created = World(azlocal)
    try:
        yield created
    finally:
        created.remove()


def operator_rbac_admin_assignment(client: AuthorizationManagementClient, oid: str) -> Any:
    return next(
        a
        for a in client.role_assignments.list_for_scope(RG_ML, filter=f"principalId eq '{oid}'")
        if a.scope == RG_ML and a.role_definition_id.endswith(RBAC_ADMIN)
    )


@pytest.fixture
def constrain_operator(azlocal: AzLocal) -> Iterator[Callable[[str], RoleAssignment]]:
    """Put a condition onto the operator's RBAC Administrator assignment on rg-ml, as the
    administrator would; the seeded assignment is restored exactly afterwards."""
    admin = authorization_client(azlocal, admin_credential(azlocal))
    oid = azlocal.principal("aml-identity-operator").object_id
    seeded = operator_rbac_admin_assignment(admin, oid)
    store = azlocal.ctx.store
    original = dataclasses.replace(store.role_assignments[seeded.name])

    def constrain(condition: str) -> RoleAssignment:
        status, updated = admin.role_assignments.create(
            RG_ML,
            seeded.name,
            {
                "role_definition_id": seeded.role_definition_id,
                "principal_id": oid,
                "principal_type": "ServicePrincipal",
                "condition": condition,
                "condition_version": "2.0",
            },
            cls=with_status,
        )
        assert status == 200  # an update of the existing assignment
        assert isinstance(updated, RoleAssignment)
        return updated

    try:
        yield constrain
    finally:
        store.role_assignments[original.name] = original


def assignment(role: str, principal_id: str, principal_type: str) -> dict[str, str]:
    return {
        "role_definition_id": role_id(role),
        "principal_id": principal_id,
        "principal_type": principal_type,
    }


def assert_refused(err: pytest.ExceptionInfo[HttpResponseError], action: str) -> None:
    assert err.value.status_code == 403
    assert code_of(err.value) == "AuthorizationFailed"
    assert "does not have authorization or an ABAC condition not fulfilled" in message_of(err.value)
    assert f"to perform action '{action}'" in message_of(err.value)


def test_the_condition_limits_what_the_operator_may_assign_and_remove(
    azlocal: AzLocal, world: World, constrain_operator: Callable[[str], RoleAssignment]
) -> None:
    admin = authorization_client(azlocal, admin_credential(azlocal))
    operator = authorization_client(azlocal, operator_credential(azlocal))
    updated = constrain_operator(CONDITION)
    assert updated.condition == CONDITION
    assert updated.condition_version == "2.0"
    sp, user = world.principal("ServicePrincipal"), world.principal("User")

    # An allowed role for a service principal: created.
    allowed = world.name()
    status, created = operator.role_assignments.create(
        WORKSPACE, allowed, assignment(DATA_SCIENTIST, sp, "ServicePrincipal"), cls=with_status
    )
    assert status == 201
    assert created.role_definition_id.endswith(DATA_SCIENTIST)
    # A role outside the list, or a principal type outside it: refused.
    with pytest.raises(HttpResponseError) as owner:
        operator.role_assignments.create(
            WORKSPACE, world.name(), assignment(OWNER, sp, "ServicePrincipal")
        )
    assert_refused(owner, WRITE)
    with pytest.raises(HttpResponseError) as for_user:
        operator.role_assignments.create(
            WORKSPACE, world.name(), assignment(DATA_SCIENTIST, user, "User")
        )
    assert_refused(for_user, WRITE)
    # The operator cannot lift its own condition: its own role is not in the list.
    with pytest.raises(HttpResponseError) as lift:
        operator.role_assignments.create(
            RG_ML,
            updated.name,
            {
                "role_definition_id": updated.role_definition_id,
                "principal_id": updated.principal_id,
                "principal_type": "ServicePrincipal",
            },
        )
    assert_refused(lift, WRITE)

    # Deletes read the assignment being deleted.
    deleted = operator.role_assignments.delete(WORKSPACE, allowed)
    assert deleted is not None
    assert deleted.name == allowed
    owner_name = world.name()
    admin.role_assignments.create(WORKSPACE, owner_name, assignment(OWNER, sp, "ServicePrincipal"))
    with pytest.raises(HttpResponseError) as remove_owner:
        operator.role_assignments.delete(WORKSPACE, owner_name)
    assert_refused(remove_owner, DELETE)
    assert admin.role_assignments.get(WORKSPACE, owner_name).name == owner_name
    # A missing assignment offers no attributes, so the delete condition does not hold
    # (azlocal's choice, see docs/azlocal.md); without a condition it answers 204.
    with pytest.raises(HttpResponseError) as missing:
        operator.role_assignments.delete(WORKSPACE, str(uuid.uuid4()))
    assert_refused(missing, DELETE)
    assert admin.role_assignments.delete(WORKSPACE, owner_name) is not None


def test_reads_are_not_constrained(
    azlocal: AzLocal, world: World, constrain_operator: Callable[[str], RoleAssignment]
) -> None:
    operator = authorization_client(azlocal, operator_credential(azlocal))
    constrain_operator(CONDITION)
    listed = list(operator.role_assignments.list_for_scope(RG_ML))
    mine = next(a for a in listed if a.scope == RG_ML and a.role_definition_id.endswith(RBAC_ADMIN))
    assert mine.condition == CONDITION
    assert mine.condition_version == "2.0"
    assert operator.role_assignments.get(RG_ML, mine.name).condition == CONDITION
    assert operator.role_definitions.get(WORKSPACE, OWNER).role_name == "Owner"


def test_an_unconditioned_assignment_still_grants(
    azlocal: AzLocal, world: World, constrain_operator: Callable[[str], RoleAssignment]
) -> None:
    """Access is the union of the caller's assignments: one without a condition that
    allows the action is enough."""
    admin = authorization_client(azlocal, admin_credential(azlocal))
    operator = authorization_client(azlocal, operator_credential(azlocal))
    constrain_operator(CONDITION)
    oid = azlocal.principal("aml-identity-operator").object_id
    sp = world.principal("ServicePrincipal")
    with pytest.raises(HttpResponseError) as refused:
        operator.role_assignments.create(
            WORKSPACE, world.name(), assignment(OWNER, sp, "ServicePrincipal")
        )
    assert_refused(refused, WRITE)
    admin.role_assignments.create(
        WORKSPACE, world.name(), assignment(USER_ACCESS_ADMIN, oid, "ServicePrincipal")
    )
    created = operator.role_assignments.create(
        WORKSPACE, world.name(), assignment(OWNER, sp, "ServicePrincipal")
    )
    assert created.role_definition_id.endswith(OWNER)


@pytest.mark.parametrize(
    ("condition", "version"),
    [
        ("@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] GuidEquals", "2.0"),
        (f"{CONDITION} OR", "2.0"),
        ("ActionMatches{'a'} AND ActionMatches{'b'} OR ActionMatches{'c'}", "2.0"),
        (CONDITION, "1.0"),
    ],
)
def test_an_invalid_condition_is_refused(
    azlocal: AzLocal, world: World, condition: str, version: str
) -> None:
    admin = authorization_client(azlocal, admin_credential(azlocal))
    sp = world.principal("ServicePrincipal")
    name = world.name()
    with pytest.raises(HttpResponseError) as err:
        admin.role_assignments.create(
            WORKSPACE,
            name,
            {
                **assignment(RBAC_ADMIN, sp, "ServicePrincipal"),
                "condition": condition,
                "condition_version": version,
            },
        )
    assert err.value.status_code == 400
    assert code_of(err.value) == "InvalidRoleAssignmentCondition"
    assert message_of(err.value) == "The given role assignment condition is invalid."
    assert name not in azlocal.ctx.store.role_assignments


def test_a_put_updates_the_condition_of_an_existing_assignment(
    azlocal: AzLocal, world: World
) -> None:
    admin = authorization_client(azlocal, admin_credential(azlocal))
    admin_oid = azlocal.principal("platform-admin").object_id
    sp = world.principal("ServicePrincipal")
    name = world.name()
    body = assignment(RBAC_ADMIN, sp, "ServicePrincipal")
    status, created = admin.role_assignments.create(WORKSPACE, name, body, cls=with_status)
    assert (status, created.condition, created.condition_version) == (201, None, None)

    status, updated = admin.role_assignments.create(
        WORKSPACE,
        name,
        {**body, "condition": CONDITION, "condition_version": "2.0", "description": "limited"},
        cls=with_status,
    )
    assert status == 200
    assert (updated.condition, updated.condition_version) == (CONDITION, "2.0")
    assert updated.description == "limited"
    assert updated.updated_by == admin_oid
    fetched = admin.role_assignments.get(WORKSPACE, name)
    assert (fetched.condition, fetched.condition_version) == (CONDITION, "2.0")
    assert [
        a.condition for a in admin.role_assignments.list_for_scope(WORKSPACE) if a.name == name
    ] == [CONDITION]
    # conditionVersion defaults to 2.0, as the REST API documents.
    status, defaulted = admin.role_assignments.create(
        WORKSPACE, name, {**body, "condition": CONDITION}, cls=with_status
    )
    assert (status, defaulted.condition_version, defaulted.description) == (200, "2.0", None)
    # A PUT without a condition removes it.
    status, cleared = admin.role_assignments.create(WORKSPACE, name, body, cls=with_status)
    assert (status, cleared.condition, cleared.condition_version) == (200, None, None)
    assert admin.role_assignments.get(WORKSPACE, name).condition is None
    admin.role_assignments.delete(WORKSPACE, name)
