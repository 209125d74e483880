"""ARM's location check on PUT: unknown regions are refused as Azure refuses them, and
display names ("West Europe") mean the region they name."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError

from azlocal.server import AzLocal
from support.azure import (
    Arm,
    admin_credential,
    code_of,
    message_of,
    msi_client,
    operator_credential,
)
from support.world import ML_API, RG_IDENTITIES, WORKSPACE

AVAILABLE = "List of available regions for the resource type is '"


def test_identity_in_an_unknown_location(azlocal: AzLocal) -> None:
    client = msi_client(azlocal, operator_credential(azlocal))
    name = f"loc-{uuid.uuid4().hex[:8]}"
    with pytest.raises(HttpResponseError) as err:
        client.user_assigned_identities.create_or_update(
            RG_IDENTITIES, name, {"location": "atlantis"}
        )
    assert err.value.status_code == 400
    assert code_of(err.value) == "LocationNotAvailableForResourceType"
    message = message_of(err.value)
    assert message.startswith(
        "The provided location 'atlantis' is not available for resource type "
        f"'Microsoft.ManagedIdentity/userAssignedIdentities'. {AVAILABLE}"
    )
    regions = message.split(AVAILABLE, 1)[1].removesuffix("'.").split(",")
    assert {"westeurope", "eastus", "swedencentral"} <= set(regions)
    assert "atlantis" not in regions
    listed = client.user_assigned_identities.list_by_resource_group(RG_IDENTITIES)
    assert name not in {i.name for i in listed}
    # A display name, in any case, is the region it names.
    created = client.user_assigned_identities.create_or_update(
        RG_IDENTITIES, name, {"location": "West Europe"}
    )
    assert created.location == "westeurope"
    again = client.user_assigned_identities.create_or_update(
        RG_IDENTITIES, name, {"location": "WESTEUROPE"}
    )
    assert again.principal_id == created.principal_id
    client.user_assigned_identities.delete(RG_IDENTITIES, name)


def test_online_endpoint_in_an_unknown_location(azlocal: AzLocal) -> None:
    owner = Arm(azlocal, admin_credential(azlocal), retry_total=0)
    endpoint = f"{WORKSPACE}/onlineEndpoints/loc-{uuid.uuid4().hex[:8]}"
    refused = owner.send(
        "PUT", endpoint, ML_API, {"location": "atlantis", "properties": {"authMode": "Key"}}
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "LocationNotAvailableForResourceType"
    assert error["message"].startswith(
        "The provided location 'atlantis' is not available for resource type "
        f"'Microsoft.MachineLearningServices/workspaces/onlineEndpoints'. {AVAILABLE}"
    )
    assert owner.send("GET", endpoint, ML_API).status_code == 404
    created = owner.send(
        "PUT", endpoint, ML_API, {"location": "North Europe", "properties": {"authMode": "Key"}}
    )
    assert created.status_code == 201
    assert created.json()["location"] == "northeurope"
    assert owner.send("DELETE", endpoint, ML_API).status_code == 200
