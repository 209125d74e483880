"""Microsoft.ManagedIdentity through azure-mgmt-msi (sync and async)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi.aio import ManagedServiceIdentityClient as AsyncMsiClient

from azlocal.server import AzLocal
from support.azure import (
    Arm,
    admin_credential,
    async_operator_client,
    code_of,
    message_of,
    msi_client,
    operator_credential,
)

RG = "rg-ml-identities"
ISSUER = "https://issuer.example"


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_identity_lifecycle(azlocal: AzLocal) -> None:
    client = msi_client(azlocal, operator_credential(azlocal))
    identity_name = name("id")
    created = client.user_assigned_identities.create_or_update(
        RG, identity_name, {"location": "westeurope", "tags": {"team": "ml"}}
    )
    assert created.name == identity_name
    assert created.type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert created.tenant_id == azlocal.tenant_id
    assert uuid.UUID(created.client_id)
    assert uuid.UUID(created.principal_id)
    assert created.id.endswith(
        f"/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name}"
    )
    # PUT again is idempotent and keeps the ids; PATCH changes tags.
    again = client.user_assigned_identities.create_or_update(
        RG, identity_name, {"location": "westeurope", "tags": {"team": "ml"}}
    )
    assert (again.client_id, again.principal_id) == (created.client_id, created.principal_id)
    patched = client.user_assigned_identities.update(RG, identity_name, {"tags": {"env": "prod"}})
    assert patched.tags == {"env": "prod"}
    fetched = client.user_assigned_identities.get(RG, identity_name)
    assert fetched.tags == {"env": "prod"}
    names = [i.name for i in client.user_assigned_identities.list_by_resource_group(RG)]
    assert identity_name in names
    # The operator's rights stop at its resource group: a subscription-wide list is refused.
    with pytest.raises(HttpResponseError) as denied:
        list(client.user_assigned_identities.list_by_subscription())
    assert denied.value.status_code == 403
    assert code_of(denied.value) == "AuthorizationFailed"
    client.user_assigned_identities.delete(RG, identity_name)
    with pytest.raises(ResourceNotFoundError) as err:
        client.user_assigned_identities.get(RG, identity_name)
    assert code_of(err.value) == "ResourceNotFound"
    assert (
        f"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name}' under "
        f"resource group '{RG}' was not found." in err.value.message
    )
    # Deleting what is gone answers 204, which the SDK accepts.
    client.user_assigned_identities.delete(RG, identity_name)


def test_location_cannot_change_and_names_are_checked(azlocal: AzLocal) -> None:
    client = msi_client(azlocal, operator_credential(azlocal))
    identity_name = name("id")
    client.user_assigned_identities.create_or_update(RG, identity_name, {"location": "westeurope"})
    with pytest.raises(HttpResponseError) as err:
        client.user_assigned_identities.create_or_update(
            RG, identity_name, {"location": "northeurope"}
        )
    assert code_of(err.value) == "InvalidResourceLocation"
    with pytest.raises(HttpResponseError) as err:
        client.user_assigned_identities.create_or_update(RG, "_bad", {"location": "westeurope"})
    assert err.value.status_code == 400
    assert code_of(err.value) == "InvalidResourceName"


def test_missing_resource_group(azlocal: AzLocal) -> None:
    # Azure authorizes before it looks: the operator, with no rights there, gets 403 ...
    with pytest.raises(HttpResponseError) as denied:
        msi_client(azlocal, operator_credential(azlocal)).user_assigned_identities.get(
            "rg-nope", "x-identity"
        )
    assert denied.value.status_code == 403
    # ... and a subscription Owner learns that the group does not exist.
    with pytest.raises(ResourceNotFoundError) as err:
        msi_client(azlocal, admin_credential(azlocal)).user_assigned_identities.get(
            "rg-nope", "x-identity"
        )
    assert code_of(err.value) == "ResourceGroupNotFound"
    assert message_of(err.value) == "Resource group 'rg-nope' could not be found."


def test_paging_follows_absolute_next_links(azlocal: AzLocal) -> None:
    client = msi_client(azlocal, operator_credential(azlocal))
    created = {name("page") for _ in range(5)}
    for identity_name in created:
        client.user_assigned_identities.create_or_update(
            RG, identity_name, {"location": "westeurope"}
        )
    azlocal.admin("PATCH", "settings", {"pageSize": 2})
    azlocal.admin("DELETE", "requests")
    listed = {i.name for i in client.user_assigned_identities.list_by_resource_group(RG)}
    assert created <= listed
    pages = [
        r
        for r in azlocal.admin("GET", "requests")
        if r["operation"] == "userAssignedIdentities/list"
    ]
    assert len(pages) >= 3
    assert any("$skiptoken=" in r["query"] for r in pages)


def test_federated_credentials(azlocal: AzLocal) -> None:
    client = msi_client(azlocal, operator_credential(azlocal))
    identity_name = name("fic")
    client.user_assigned_identities.create_or_update(RG, identity_name, {"location": "westeurope"})
    fics = client.federated_identity_credentials
    created = fics.create_or_update(
        RG,
        identity_name,
        "trainer",
        {
            "issuer": ISSUER,
            "subject": "system:serviceaccount:ml:trainer",
            "audiences": ["api://AzureADTokenExchange"],
        },
    )
    assert created.issuer == ISSUER
    assert (
        created.type
        == "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
    )
    assert fics.get(RG, identity_name, "trainer").subject == "system:serviceaccount:ml:trainer"
    assert [f.name for f in fics.list(RG, identity_name)] == ["trainer"]
    with pytest.raises(HttpResponseError) as err:
        fics.create_or_update(
            RG, identity_name, "no-audience", {"issuer": ISSUER, "subject": "s", "audiences": []}
        )
    assert code_of(err.value) == "BadRequest"
    assert "must specify 'issuer', 'subject' and 'audience'" in err.value.message
    fics.delete(RG, identity_name, "trainer")
    assert list(fics.list(RG, identity_name)) == []
    with pytest.raises(ResourceNotFoundError) as missing:
        fics.list(RG, "no-such-identity").next()
    assert code_of(missing.value) == "ParentResourceNotFound"


def test_at_most_twenty_federated_credentials(azlocal: AzLocal) -> None:
    client = msi_client(azlocal, operator_credential(azlocal))
    identity_name = name("fic20")
    client.user_assigned_identities.create_or_update(RG, identity_name, {"location": "westeurope"})
    azlocal.admin("PATCH", "settings", {"ficWriteSeconds": 0})
    for i in range(20):
        client.federated_identity_credentials.create_or_update(
            RG,
            identity_name,
            f"sa-{i:02d}",
            {
                "issuer": ISSUER,
                "subject": f"system:serviceaccount:ml:sa{i}",
                "audiences": ["api://AzureADTokenExchange"],
            },
        )
    with pytest.raises(HttpResponseError) as err:
        client.federated_identity_credentials.create_or_update(
            RG,
            identity_name,
            "sa-20",
            {
                "issuer": ISSUER,
                "subject": "system:serviceaccount:ml:sa20",
                "audiences": ["api://AzureADTokenExchange"],
            },
        )
    assert err.value.status_code == 400
    assert "Too many Federated Identity Credentials" in err.value.message


def test_concurrent_federated_credential_writes_conflict(azlocal: AzLocal) -> None:
    """Overlapping writes to one identity get Azure's 409 (the async SDK, concurrently)."""
    identity_name = name("race")
    msi_client(azlocal, operator_credential(azlocal)).user_assigned_identities.create_or_update(
        RG, identity_name, {"location": "westeurope"}
    )
    azlocal.admin("PATCH", "settings", {"ficWriteSeconds": 0.5})

    async def race() -> list[object]:
        async with async_operator_client(azlocal, AsyncMsiClient, retry_total=0) as client:
            return await asyncio.gather(  # type: ignore[no-any-return]
                *[
                    client.federated_identity_credentials.create_or_update(
                        RG,
                        identity_name,
                        f"parallel-{i}",
                        {
                            "issuer": ISSUER,
                            "subject": f"s{i}",
                            "audiences": ["api://AzureADTokenExchange"],
                        },
                    )
                    for i in range(3)
                ],
                return_exceptions=True,
            )

    results = asyncio.run(race())
    conflicts = [r for r in results if isinstance(r, HttpResponseError)]
    assert len(conflicts) == 2, results
    assert all(c.status_code == 409 for c in conflicts)
    assert all(
        code_of(c) == "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"
        for c in conflicts
    )


def test_system_assigned_identity_of_a_compute(azlocal: AzLocal) -> None:
    client = msi_client(azlocal, operator_credential(azlocal))
    compute = (
        f"/subscriptions/{azlocal.default_subscription}/resourceGroups/rg-ml/providers/"
        "Microsoft.MachineLearningServices/workspaces/ws-prod/computes/gpu-cluster"
    )
    identity = client.system_assigned_identities.get_by_scope(compute)
    assert uuid.UUID(identity.principal_id)
    assert identity.tenant_id == azlocal.tenant_id
    with pytest.raises(ResourceNotFoundError):
        client.system_assigned_identities.get_by_scope(
            compute.replace("gpu-cluster", "cpu-cluster")
        )


def test_api_versions_are_checked(azlocal: AzLocal) -> None:
    arm = Arm(azlocal, admin_credential(azlocal), retry_total=0)
    sub = f"/subscriptions/{azlocal.default_subscription}"
    identity = (
        f"{sub}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
    )
    answer = arm.send("GET", identity, "2099-01-01")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "The supported api-versions are" in answer.json()["error"]["message"]
    group = f"/subscriptions/{azlocal.default_subscription}/resourceGroups/{RG}"
    assert (
        arm.send("GET", group, "2099-01-01").json()["error"]["code"] == "InvalidApiVersionParameter"
    )
    roles = f"{sub}/providers/Microsoft.Authorization/roleAssignments"
    answer = arm.send("GET", roles, "2099-01-01")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "InvalidResourceType")
    missing = arm.send("GET", group, "")  # no api-version at all
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == (
        "The api-version query parameter (?api-version=) is required for all requests."
    )
