"""The listings read as plain JSON (azure/pages.py) ask for what the SDK clients would."""

from azure.mgmt.authorization.aio import AuthorizationManagementClient
from azure.mgmt.msi.aio import ManagedServiceIdentityClient

from aml_identity.azure.pages import AUTHORIZATION_API_VERSION, MSI_API_VERSION


def test_api_versions_are_the_sdk_clients_own() -> None:
    # The same operations must be read at the version they are written at: an SDK
    # upgrade that moves one and not the other fails here.
    assert ManagedServiceIdentityClient.DEFAULT_API_VERSION == MSI_API_VERSION
    profile = AuthorizationManagementClient.LATEST_PROFILE.get_profile_dict()
    versions = profile[AuthorizationManagementClient._PROFILE_TAG]
    assert versions.get("role_assignments", versions[None]) == AUTHORIZATION_API_VERSION
