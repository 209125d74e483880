"""Microsoft.Authorization through azure-mgmt-authorization: assignments and definitions."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.authorization.aio import AuthorizationManagementClient as AsyncAuthorizationClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from azlocal.server import AzLocal
from support.azure import (
    admin_credential,
    async_operator_client,
    authorization_client,
    code_of,
    holding,
    message_of,
    msi_client,
    operator_credential,
    secret_credential,
)
from support.world import ML_API, RG_IDENTITIES, RG_ML, SUB, WORKSPACE

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"


def role_id(guid: str) -> str:
    return f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def new_service_principal(azlocal: AzLocal, **extra: object) -> dict[str, str]:
    created: dict[str, str] = azlocal.admin(
        "POST", "principals", {"kind": "ServicePrincipal", "displayName": "t", **extra}
    )
    return created


def test_assign_get_list_delete(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    sp = new_service_principal(azlocal)
    name = str(uuid.uuid4())
    created = client.role_assignments.create(
        WORKSPACE,
        name,
        {
            "role_definition_id": role_id(DATA_SCIENTIST),
            "principal_id": sp["objectId"],
            "principal_type": "ServicePrincipal",
            "description": "training",
        },
    )
    assert created.name == name
    assert created.principal_type == "ServicePrincipal"
    assert created.scope == WORKSPACE
    assert created.role_definition_id.endswith(DATA_SCIENTIST)
    assert client.role_assignments.get(WORKSPACE, name).description == "training"
    at_scope = list(client.role_assignments.list_for_scope(WORKSPACE, filter="atScope()"))
    assert name in [a.name for a in at_scope]
    # atScope() includes assignments above the scope (the operator's own, at rg-ml) ...
    assert any(a.scope == RG_ML for a in at_scope)
    # ... and a principal filter narrows to one principal.
    mine = list(
        client.role_assignments.list_for_scope(RG_ML, filter=f"principalId eq '{sp['objectId']}'")
    )
    assert [a.name for a in mine] == [name]
    # Without atScope(), a list at rg-ml also shows what lies below it.
    assert name in [a.name for a in client.role_assignments.list_for_scope(RG_ML)]
    deleted = client.role_assignments.delete(WORKSPACE, name)
    assert deleted is not None
    assert deleted.name == name
    assert client.role_assignments.delete(WORKSPACE, name) is None  # 204: already gone
    with pytest.raises(ResourceNotFoundError):
        client.role_assignments.get(WORKSPACE, name)


def test_the_same_triple_under_another_name_is_refused(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    sp = new_service_principal(azlocal)
    body = {
        "role_definition_id": role_id(READER),
        "principal_id": sp["objectId"],
        "principal_type": "ServicePrincipal",
    }
    first = str(uuid.uuid4())
    client.role_assignments.create(WORKSPACE, first, body)
    # Re-PUT under the same name is idempotent.
    assert client.role_assignments.create(WORKSPACE, first, body).name == first
    with pytest.raises(ResourceExistsError) as err:
        client.role_assignments.create(WORKSPACE, str(uuid.uuid4()), body)
    assert code_of(err.value) == "RoleAssignmentExists"
    assert message_of(err.value).endswith(
        f"The ID of the existing role assignment is {uuid.UUID(first).hex}."
    )
    # The same name cannot be moved to another principal.
    other = new_service_principal(azlocal)
    with pytest.raises(HttpResponseError) as moved:
        client.role_assignments.create(
            WORKSPACE, first, {**body, "principal_id": other["objectId"]}
        )
    assert moved.value.status_code == 400
    assert code_of(moved.value) == "RoleAssignmentUpdateNotPermitted"


def test_names_must_be_guids_and_roles_must_exist(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    sp = new_service_principal(azlocal)
    body = {
        "role_definition_id": role_id(READER),
        "principal_id": sp["objectId"],
        "principal_type": "ServicePrincipal",
    }
    with pytest.raises(HttpResponseError) as err:
        client.role_assignments.create(WORKSPACE, "not-a-guid", body)
    assert code_of(err.value) == "InvalidRoleAssignmentId"
    with pytest.raises(HttpResponseError) as err:
        client.role_assignments.create(
            WORKSPACE, str(uuid.uuid4()), {**body, "role_definition_id": role_id(str(uuid.uuid4()))}
        )
    assert code_of(err.value) == "RoleDefinitionDoesNotExist"


def test_replication_delay_and_principal_type(azlocal: AzLocal) -> None:
    """A new principal is unknown to ARM for a while unless principalType is sent."""
    client = authorization_client(azlocal, operator_credential(azlocal))
    azlocal.admin("PATCH", "settings", {"replicationDelaySeconds": 600})
    sp = new_service_principal(azlocal)
    without_type = json.dumps(
        {"properties": {"roleDefinitionId": role_id(READER), "principalId": sp["objectId"]}}
    ).encode()
    with pytest.raises(HttpResponseError) as err:
        client.role_assignments.create(WORKSPACE, str(uuid.uuid4()), io.BytesIO(without_type))
    assert err.value.status_code == 400
    assert code_of(err.value) == "PrincipalNotFound"
    assert message_of(err.value).startswith(
        f"Principal {uuid.UUID(sp['objectId']).hex} does not exist in the directory "
        f"{azlocal.tenant_id}."
    )
    assert "set the role assignment principalType property" in message_of(err.value)
    created = client.role_assignments.create(
        WORKSPACE,
        str(uuid.uuid4()),
        {
            "role_definition_id": role_id(READER),
            "principal_id": sp["objectId"],
            "principal_type": "ServicePrincipal",
        },
    )
    assert created.principal_type == "ServicePrincipal"


def test_sdk_default_principal_type_is_checked_once_replicated(azlocal: AzLocal) -> None:
    """The Python SDK sends principalType "User" unless told otherwise; Azure refuses it
    for a service principal."""
    client = authorization_client(azlocal, operator_credential(azlocal))
    sp = new_service_principal(azlocal)
    parameters = RoleAssignmentCreateParameters(
        role_definition_id=role_id(READER), principal_id=sp["objectId"]
    )
    assert parameters.principal_type == "User"
    with pytest.raises(HttpResponseError) as err:
        client.role_assignments.create(WORKSPACE, str(uuid.uuid4()), parameters)
    assert code_of(err.value) == "UnmatchedPrincipalType"
    assert (
        "has type 'ServicePrincipal' , which is different from specified PrinciaplType 'User'"
        in (message_of(err.value))
    )


def test_role_assignment_limit(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    in_subscription = len(
        [a for a in azlocal.ctx.store.role_assignments.values() if SUB in a.scope]
    )
    azlocal.admin("PATCH", "settings", {"roleAssignmentLimit": in_subscription})
    sp = new_service_principal(azlocal)
    with pytest.raises(HttpResponseError) as err:
        client.role_assignments.create(
            WORKSPACE,
            str(uuid.uuid4()),
            {
                "role_definition_id": role_id(READER),
                "principal_id": sp["objectId"],
                "principal_type": "ServicePrincipal",
            },
        )
    assert code_of(err.value) == "RoleAssignmentLimitExceeded"


def test_operator_cannot_assign_outside_its_scope(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    sp = new_service_principal(azlocal)
    with pytest.raises(HttpResponseError) as err:
        client.role_assignments.create(
            f"/subscriptions/{SUB}",
            str(uuid.uuid4()),
            {
                "role_definition_id": role_id(READER),
                "principal_id": sp["objectId"],
                "principal_type": "ServicePrincipal",
            },
        )
    assert err.value.status_code == 403
    assert code_of(err.value) == "AuthorizationFailed"
    assert (
        "'Microsoft.Authorization/roleAssignments/write' over scope '/subscriptions/"
        in message_of(err.value)
    )


def test_built_in_roles_by_name(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    found = list(
        client.role_definitions.list(WORKSPACE, filter="roleName eq 'AzureML Data Scientist'")
    )
    assert len(found) == 1
    role = found[0]
    assert role.name == DATA_SCIENTIST
    assert role.role_type == "BuiltInRole"
    assert "Microsoft.MachineLearningServices/workspaces/*/read" in role.permissions[0].actions
    preview = list(
        client.role_definitions.list(
            WORKSPACE, filter="roleName eq 'AzureML Metrics Writer (preview)'"
        )
    )
    assert [r.name for r in preview] == ["635dd51f-9968-44d3-b7fb-6d9a6bd613ae"]
    assert client.role_definitions.get(WORKSPACE, READER).role_name == "Reader"
    with pytest.raises(ResourceNotFoundError) as err:
        client.role_definitions.get(WORKSPACE, str(uuid.uuid4()))
    assert code_of(err.value) == "RoleDefinitionDoesNotExist"


def test_custom_role_lifecycle(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    guid = str(uuid.uuid4())
    role_name = f"ML Endpoint Monitor {guid[:8]}"
    definition = {
        "role_name": role_name,
        "description": "Read online endpoints.",
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
    }
    created = client.role_definitions.create_or_update(RG_ML, guid, definition)
    assert created.role_name == role_name
    assert created.role_type == "CustomRole"
    # Updates answer 201 as well (the only status the SDK accepts).
    updated = client.role_definitions.create_or_update(
        RG_ML, guid, {**definition, "description": "v2"}
    )
    assert updated.description == "v2"
    listed = list(client.role_definitions.list(WORKSPACE, filter=f"roleName eq '{role_name}'"))
    assert [r.name for r in listed] == [guid]
    with pytest.raises(ResourceExistsError) as taken:
        client.role_definitions.create_or_update(RG_ML, str(uuid.uuid4()), definition)
    assert code_of(taken.value) == "RoleDefinitionWithSameNameExists"
    # Assignable only within its assignable scopes.
    sp = new_service_principal(azlocal)
    name = str(uuid.uuid4())
    client.role_assignments.create(
        WORKSPACE,
        name,
        {
            "role_definition_id": created.id,
            "principal_id": sp["objectId"],
            "principal_type": "ServicePrincipal",
        },
    )
    with pytest.raises(HttpResponseError) as in_use:
        client.role_definitions.delete(RG_ML, guid)
    assert code_of(in_use.value) == "RoleDefinitionHasAssignments"
    client.role_assignments.delete(WORKSPACE, name)
    assert client.role_definitions.delete(RG_ML, guid).name == guid
    assert list(client.role_definitions.list(WORKSPACE, filter=f"roleName eq '{role_name}'")) == []


def test_custom_role_needs_write_at_every_assignable_scope(azlocal: AzLocal) -> None:
    client = authorization_client(azlocal, operator_credential(azlocal))
    with pytest.raises(HttpResponseError) as err:
        client.role_definitions.create_or_update(
            RG_ML,
            str(uuid.uuid4()),
            {
                "role_name": f"Too Wide {uuid.uuid4().hex[:6]}",
                "role_type": "CustomRole",
                "permissions": [{"actions": ["*/read"]}],
                "assignable_scopes": [RG_ML, f"/subscriptions/{SUB}"],
            },
        )
    assert err.value.status_code == 403
    assert code_of(err.value) == "LinkedAuthorizationFailed"
    assert f"on the linked scope(s)'/subscriptions/{SUB}'" in message_of(err.value)
    # The subscription Owner may.
    admin = authorization_client(azlocal, admin_credential(azlocal))
    guid = str(uuid.uuid4())
    admin.role_definitions.create_or_update(
        f"/subscriptions/{SUB}",
        guid,
        {
            "role_name": f"Wide {guid[:6]}",
            "role_type": "CustomRole",
            "permissions": [{"actions": ["*/read"]}],
            "assignable_scopes": [f"/subscriptions/{SUB}"],
        },
    )
    admin.role_definitions.delete(f"/subscriptions/{SUB}", guid)


def test_async_client_creates_and_lists(azlocal: AzLocal) -> None:
    sp = new_service_principal(azlocal)

    async def run() -> list[str]:
        async with async_operator_client(azlocal, AsyncAuthorizationClient) as client:
            await client.role_assignments.create(
                WORKSPACE,
                str(uuid.uuid4()),
                {
                    "role_definition_id": role_id(READER),
                    "principal_id": sp["objectId"],
                    "principal_type": "ServicePrincipal",
                },
            )
            return [
                a.principal_id
                async for a in client.role_assignments.list_for_scope(
                    WORKSPACE, filter=f"principalId eq '{sp['objectId']}'"
                )
            ]

    assert asyncio.run(run()) == [sp["objectId"]]


def test_a_principal_created_with_the_roles_of_another(azlocal: AzLocal) -> None:
    """`rolesLike` copies every role assignment (a second operator principal for a shard):
    the copy may create identities where the operator may, a plain principal may not."""
    like = new_service_principal(azlocal, secret=True, rolesLike="aml-identity-operator")
    plain = new_service_principal(azlocal, secret=True)
    body = {"location": "westeurope"}
    copied = msi_client(azlocal, secret_credential(azlocal, like["appId"], like["secret"]))
    created = copied.user_assigned_identities.create_or_update(RG_IDENTITIES, "by-copy", body)
    assert created.name == "by-copy"
    refused = msi_client(azlocal, secret_credential(azlocal, plain["appId"], plain["secret"]))
    with pytest.raises(HttpResponseError) as error:
        refused.user_assigned_identities.create_or_update(RG_IDENTITIES, "by-plain", body)
    assert error.value.status_code == 403
    with pytest.raises(RuntimeError, match="404"):
        new_service_principal(azlocal, rolesLike="nobody-by-that-name")


@pytest.mark.parametrize(
    ("permissions", "code", "message"),
    [
        (
            {"actions": ["Microsoft.Nonexistent/things/read"]},
            "InvalidActionOrNotAction",
            "The resource provider referenced in the action 'Microsoft.Nonexistent/things/read' "
            "is not returned in the list of providers from Azure Resource Manager.",
        ),
        (
            {"actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoint/read"]},
            "InvalidActionOrNotAction",
            "'Microsoft.MachineLearningServices/workspaces/onlineEndpoint/read' does not match "
            "any of the actions supported by the providers.",
        ),
        (
            {
                "actions": ["Microsoft.MachineLearningServices/workspaces/read"],
                "not_actions": ["Microsoft.MachineLearningServices/workspaces/nothing/*"],
            },
            "InvalidActionOrNotAction",
            "'Microsoft.MachineLearningServices/workspaces/nothing/*' does not match any of the "
            "actions supported by the providers.",
        ),
        (
            {
                "data_actions": [
                    "Microsoft.Storage/storageAccounts/blobServices/containers/blob/read"
                ]
            },
            "InvalidDataActionOrNotDataAction",
            "'Microsoft.Storage/storageAccounts/blobServices/containers/blob/read' does not match "
            "any of the actions supported by the providers.",
        ),
        (
            {"data_actions": ["Microsoft.MachineLearningServices/workspaces/read"]},
            "InvalidDataActionOrNotDataAction",
            "The resource provider referenced in the action "
            "'Microsoft.MachineLearningServices/workspaces/read' has not published any data "
            "operations.",
        ),
        (
            {"actions": ["Microsoft.MachineLearningServices/*/computes/*"]},
            "InvalidActionOrNotAction",
            "'Microsoft.MachineLearningServices/*/computes/*' contains multiple wildcards. Only "
            "one is allowed.",
        ),
    ],
)
def test_custom_role_operations_are_checked_as_azure_does(
    azlocal: AzLocal, permissions: dict[str, list[str]], code: str, message: str
) -> None:
    client = authorization_client(azlocal, admin_credential(azlocal))
    guid = str(uuid.uuid4())
    definition = {
        "role_name": f"checked {guid}",
        "role_type": "CustomRole",
        "permissions": [permissions],
        "assignable_scopes": [RG_ML],
    }
    with pytest.raises(HttpResponseError) as refused:
        client.role_definitions.create_or_update(RG_ML, guid, definition)
    assert refused.value.status_code == 400
    assert code_of(refused.value) == code
    assert message_of(refused.value) == message
    assert guid not in {d.name for d in client.role_definitions.list(RG_ML)}
    # Wildcards, any letter case, providers azlocal knows only by name: accepted.
    fine = {
        "actions": [
            "Microsoft.MachineLearningServices/workspaces/*/read",
            "microsoft.machinelearningservices/WORKSPACES/onlineendpoints/READ",
            "Microsoft.Insights/metrics/read",
        ],
        "data_actions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
    }
    created = client.role_definitions.create_or_update(
        RG_ML, guid, {**definition, "permissions": [fine]}
    )
    client.role_definitions.delete(RG_ML, created.name)


def test_a_data_scientist_reads_its_workspace(azlocal: AzLocal) -> None:
    """`workspaces/*/read` covers `workspaces/read`, as the built-in role relies on."""
    with holding(azlocal, role_id(DATA_SCIENTIST), RG_ML) as scientist:
        assert scientist.send("GET", WORKSPACE, ML_API).status_code == 200
        computes = scientist.send("GET", f"{WORKSPACE}/computes", ML_API)
        assert computes.status_code == 200
        # Its notActions still hold: no compute writes (computes/*/write covers them too).
        refused = scientist.send("PUT", f"{WORKSPACE}/computes/new-cluster", ML_API, {})
        assert refused.status_code == 403
        assert "workspaces/computes/write" in refused.json()["error"]["message"]
