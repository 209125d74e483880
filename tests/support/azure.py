"""Official Azure SDK clients pointed at azlocal by endpoint, credential and CA only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.policies import ARMAutoResourceProviderRegistrationPolicy
from azure.mgmt.msi import ManagedServiceIdentityClient

from azlocal.server import AzLocal

ARM_SCOPE = "https://management.azure.com/.default"
C = TypeVar("C")


def common(az: AzLocal) -> dict[str, Any]:
    """What every credential and client needs: the CA, and no cloud instance discovery."""
    return {"connection_verify": str(az.ca_file)}


def secret_credential(
    az: AzLocal, client_id: str, secret: str, **kwargs: Any
) -> ClientSecretCredential:
    return ClientSecretCredential(
        az.tenant_id,
        client_id,
        secret,
        authority=az.url,
        disable_instance_discovery=True,
        **common(az),
        **kwargs,
    )


def certificate_credential(az: AzLocal, client_id: str, pem_path: str) -> CertificateCredential:
    return CertificateCredential(
        az.tenant_id,
        client_id,
        pem_path,
        authority=az.url,
        disable_instance_discovery=True,
        **common(az),
    )


def operator_credential(az: AzLocal) -> ClientSecretCredential:
    env = az.env()
    return secret_credential(az, env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"])


def admin_credential(az: AzLocal) -> ClientSecretCredential:
    """The seeded platform administrator (Owner of the subscription), for test set-up."""
    principal = az.principal("platform-admin")
    return secret_credential(az, principal.app_id, az.issued.secrets["platform-admin"])


def msi_client(
    az: AzLocal, credential: TokenCredential, **kwargs: Any
) -> ManagedServiceIdentityClient:
    return ManagedServiceIdentityClient(
        credential,
        az.default_subscription,
        base_url=az.url,
        credential_scopes=[ARM_SCOPE],
        **common(az),
        **kwargs,
    )


def authorization_client(
    az: AzLocal, credential: TokenCredential, **kwargs: Any
) -> AuthorizationManagementClient:
    return AuthorizationManagementClient(
        credential,
        az.default_subscription,
        base_url=az.url,
        credential_scopes=[ARM_SCOPE],
        **common(az),
        **kwargs,
    )


@asynccontextmanager
async def async_operator_client(
    az: AzLocal, client_type: Callable[..., C], **kwargs: Any
) -> AsyncIterator[C]:
    """An async SDK client (aiohttp transport) as the operator: credential and client
    are closed on exit."""
    env = az.env()
    credential = AsyncSecretCredential(
        az.tenant_id,
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        authority=az.url,
        connection_verify=str(az.ca_file),
    )
    async with credential:
        client = client_type(
            credential,
            az.default_subscription,
            base_url=az.url,
            credential_scopes=[ARM_SCOPE],
            connection_verify=str(az.ca_file),
            **kwargs,
        )
        async with client:  # type: ignore[attr-defined]
            yield client


class Arm:
    """azure-mgmt-core's ARM pipeline for resource types without a dedicated SDK here."""

    def __init__(self, az: AzLocal, credential: TokenCredential, **kwargs: Any) -> None:
        from azure.core.pipeline import policies
        from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

        self.client: ARMPipelineClient[HttpRequest, HttpResponse] = ARMPipelineClient(
            base_url=az.url,
            policies=[
                policies.RequestIdPolicy(),
                policies.HeadersPolicy(),
                policies.UserAgentPolicy(sdk_moniker="aml-tests"),
                policies.RetryPolicy(**kwargs),
                ARMAutoResourceProviderRegistrationPolicy(),
                ARMChallengeAuthenticationPolicy(credential, ARM_SCOPE),
                policies.NetworkTraceLoggingPolicy(),
            ],
            **common(az),
        )

    def send(self, method: str, path: str, api_version: str, body: Any = None) -> HttpResponse:
        url = f"{path}?api-version={api_version}" if api_version else path
        return self.request(HttpRequest(method, url, json=body))

    def request(self, request: HttpRequest) -> HttpResponse:
        request.url = self.client.format_url(request.url)
        response: HttpResponse = self.client.send_request(request)
        return response


def code_of(error: HttpResponseError) -> str:
    """ARM's error code from an SDK exception (fails the test when there is none)."""
    assert error.error is not None, f"no ARM error body in {error!r}"
    return str(error.error.code)


def message_of(error: HttpResponseError) -> str:
    assert error.error is not None, f"no ARM error body in {error!r}"
    return str(error.error.message)


@contextmanager
def holding(az: AzLocal, role_definition_id: str, scope: str) -> Iterator[Arm]:
    """ARM as a new service principal that holds one role at `scope` (assigned by the
    seed's administrator, removed afterwards)."""
    import uuid

    principal = az.admin("POST", "principals", {"displayName": "holder", "secret": True})
    assignments = authorization_client(az, admin_credential(az)).role_assignments
    name = str(uuid.uuid4())
    assignments.create(
        scope,
        name,
        {
            "role_definition_id": role_definition_id,
            "principal_id": principal["objectId"],
            "principal_type": "ServicePrincipal",
        },
    )
    try:
        yield Arm(az, secret_credential(az, principal["appId"], principal["secret"]), retry_total=0)
    finally:
        assignments.delete(scope, name)


def grant_by_hand(az: AzLocal, scope: str, role_definition_id: str, principal_id: str) -> str:
    """A role assignment the seed's administrator makes outside any binding (as a person
    in the portal would); returns its name."""
    import uuid

    name = str(uuid.uuid4())
    authorization_client(az, admin_credential(az)).role_assignments.create(
        scope,
        name,
        {
            "role_definition_id": role_definition_id,
            "principal_id": principal_id,
            "principal_type": "ServicePrincipal",
        },
    )
    return name
