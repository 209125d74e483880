"""Thin async adapter over msgraph-sdk: Entra applications, their service principals,
credentials and federated credentials.

Like the ARM gateway it returns the plain dataclasses of aml_identity.api.observed and
raises classified AzureFailure. The operator holds Application.ReadWrite.OwnedBy only,
so everything here acts on applications the operator created (and therefore owns).
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (  # noqa: E501
    ApplicationsWithUniqueNameRequestBuilder,
)
from msgraph.generated.models.application import Application as GraphApplication
from msgraph.generated.models.federated_identity_credential import (
    FederatedIdentityCredential,
)
from msgraph.generated.models.key_credential import KeyCredential as GraphKeyCredential
from msgraph.generated.models.password_credential import (
    PasswordCredential as GraphPasswordCredential,
)
from msgraph.generated.models.service_principal import (
    ServicePrincipal as GraphServicePrincipal,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from aml_identity.api.observed import (
    Application,
    FederatedCredential,
    KeyCredential,
    NewKey,
    PasswordCredential,
    ServicePrincipal,
)
from aml_identity.azure.errors import aware, call, classify, maybe
from aml_identity.metrics import AZURE_REQUESTS
from aml_identity.settings import Settings

SELECT = [
    "id",
    "appId",
    "displayName",
    "uniqueName",
    "tags",
    "keyCredentials",
    "passwordCredentials",
]


def _create_if_missing() -> RequestConfiguration[Any]:
    config: RequestConfiguration[Any] = RequestConfiguration()
    config.headers.add("Prefer", "create-if-missing")
    return config


def _select() -> RequestConfiguration[Any]:
    """$select with keyCredentials: the one read that returns the certificates."""
    query = ApplicationsWithUniqueNameRequestBuilder.ApplicationsWithUniqueNameRequestBuilderGetQueryParameters(  # noqa: E501
        select=SELECT
    )
    return RequestConfiguration(query_parameters=query)


@dataclass
class GraphGateway:
    """All of the operator's Microsoft Graph I/O."""

    credential: AsyncTokenCredential
    settings: Settings
    _client: GraphServiceClient | None = field(default=None, init=False)

    @property
    def client(self) -> GraphServiceClient:
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self.settings.ca_bundle:
                verify = ssl.create_default_context(cafile=self.settings.ca_bundle)
            http = GraphClientFactory.create_with_default_middleware(
                client=httpx.AsyncClient(
                    verify=verify, trust_env=False, event_hooks={"response": [_count]}
                )
            )
            auth = AzureIdentityAuthenticationProvider(
                self.credential, scopes=[self.settings.graph_scope]
            )
            adapter = GraphRequestAdapter(auth, client=http)
            adapter.base_url = self.settings.graph_endpoint.rstrip("/") + "/v1.0"
            self._client = GraphServiceClient(request_adapter=adapter)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            adapter = self._client.request_adapter
            await adapter._http_client.aclose()  # type: ignore[attr-defined]

    # --- applications ---

    async def get_application(self, unique_name: str) -> Application | None:
        builder = self.client.applications_with_unique_name(unique_name)
        return await maybe(lambda: _application(builder.get(_select())))

    async def upsert_application(
        self, unique_name: str, display_name: str, tags: list[str], notes: str
    ) -> Application:
        """Create the application under its stable uniqueName, or update it."""
        body = GraphApplication(
            display_name=display_name,
            tags=tags,
            notes=notes,
            sign_in_audience="AzureADMyOrg",
        )
        builder = self.client.applications_with_unique_name(unique_name)
        await call(lambda: builder.patch(body, _create_if_missing()))
        found = await self.get_application(unique_name)
        if found is None:  # Graph replicates; the next reconcile will see it
            raise classify(APIError("application not visible yet", 404))
        return found

    async def delete_application(self, object_id: str) -> None:
        await call(lambda: self.client.applications.by_application_id(object_id).delete())

    async def set_keys(self, object_id: str, keys: list[NewKey]) -> None:
        """Replace the application's certificates with `keys` (PATCH takes the whole list,
        so callers pass every key to keep, with its certificate)."""
        body = GraphApplication(
            key_credentials=[
                GraphKeyCredential(
                    key_id=uuid.UUID(k.key_id),
                    display_name=k.display_name,
                    type="AsymmetricX509Cert",
                    usage="Verify",
                    key=k.der,
                    start_date_time=k.not_before,
                    end_date_time=k.not_after,
                    custom_key_identifier=hashlib.sha1(k.der).digest(),  # noqa: S324 (thumbprint)
                )
                for k in keys
            ]
        )
        await call(lambda: self.client.applications.by_application_id(object_id).patch(body))

    async def add_password(
        self, object_id: str, display_name: str, not_after: datetime
    ) -> tuple[PasswordCredential, str]:
        """A new client secret; its text is returned once and never again."""
        body = AddPasswordPostRequestBody(
            password_credential=GraphPasswordCredential(
                display_name=display_name, end_date_time=not_after
            )
        )
        builder = self.client.applications.by_application_id(object_id).add_password
        created = await call(lambda: builder.post(body))
        if created is None or not created.secret_text:
            raise classify(APIError("addPassword returned no secret", 500))
        return _password(created), created.secret_text

    async def remove_password(self, object_id: str, key_id: str) -> None:
        body = RemovePasswordPostRequestBody(key_id=uuid.UUID(key_id))
        builder = self.client.applications.by_application_id(object_id).remove_password
        await call(lambda: builder.post(body))

    # --- service principals ---

    async def get_service_principal(self, app_id: str) -> ServicePrincipal | None:
        builder = self.client.service_principals_with_app_id(app_id)
        found = await maybe(lambda: builder.get())
        if found is None or not found.id:
            return None
        return ServicePrincipal(object_id=str(found.id), app_id=app_id)

    async def create_service_principal(self, app_id: str, tags: list[str]) -> ServicePrincipal:
        """Create (or find, if a previous attempt got this far) the app's principal."""
        builder = self.client.service_principals_with_app_id(app_id)
        await call(lambda: builder.patch(GraphServicePrincipal(tags=tags), _create_if_missing()))
        found = await self.get_service_principal(app_id)
        if found is None:
            raise classify(APIError("service principal not visible yet", 404))
        return found

    # --- federated credentials ---

    async def list_federated_credentials(self, object_id: str) -> list[FederatedCredential]:
        builder = self.client.applications.by_application_id(object_id)
        page = await call(lambda: builder.federated_identity_credentials.get())
        found: list[FederatedCredential] = []
        while page is not None:
            found += [
                FederatedCredential(
                    f.name or "", f.issuer or "", f.subject or "", tuple(f.audiences or [])
                )
                for f in page.value or []
            ]
            link = page.odata_next_link
            if not link:
                break
            nxt = builder.federated_identity_credentials.with_url(link)
            page = await call(lambda nxt=nxt: nxt.get())  # type: ignore[misc]
        return found

    async def put_federated_credential(
        self, object_id: str, credential: FederatedCredential, *, exists: bool
    ) -> None:
        body = FederatedIdentityCredential(
            name=credential.name,
            issuer=credential.issuer,
            subject=credential.subject,
            audiences=list(credential.audiences),
        )
        fics = self.client.applications.by_application_id(object_id).federated_identity_credentials
        if exists:
            item = fics.by_federated_identity_credential_id(credential.name)
            body.name = None  # the name is the key and immutable
            await call(lambda: item.patch(body))
        else:
            await call(lambda: fics.post(body))

    async def delete_federated_credential(self, object_id: str, name: str) -> None:
        fics = self.client.applications.by_application_id(object_id).federated_identity_credentials
        await call(lambda: fics.by_federated_identity_credential_id(name).delete())


async def _count(response: httpx.Response) -> None:
    segments = [s for s in response.request.url.path.split("/") if s and s != "v1.0"]
    kind = segments[0].split("(")[0] if segments else "other"
    action = segments[-1] if len(segments) > 2 else ""
    operation = f"graph/{kind}{'/' + action if action.startswith(('add', 'remove')) else ''}"
    AZURE_REQUESTS.labels(f"{operation}/{response.request.method}", str(response.status_code)).inc()


async def _application(pending: Awaitable[GraphApplication | None]) -> Application:
    model = await pending
    if model is None:
        raise classify(APIError("empty application response", 404))
    return Application(
        object_id=str(model.id),
        app_id=str(model.app_id),
        display_name=model.display_name or "",
        unique_name=model.unique_name,
        tags=tuple(model.tags or ()),
        keys=tuple(_key(k) for k in model.key_credentials or ()),
        passwords=tuple(_password(p) for p in model.password_credentials or ()),
    )


def _key(model: GraphKeyCredential) -> KeyCredential:
    der = model.key if isinstance(model.key, bytes) else None
    if der is None and isinstance(model.key, str):
        der = base64.b64decode(model.key)
    thumbprint = (
        hashlib.sha1(der).hexdigest().upper()  # noqa: S324 (thumbprint, not security)
        if der
        else (model.custom_key_identifier or b"").hex().upper()
    )
    return KeyCredential(
        key_id=str(model.key_id),
        display_name=model.display_name or "",
        thumbprint=thumbprint,
        not_before=aware(model.start_date_time),
        not_after=aware(model.end_date_time),
        der=der,
    )


def _password(model: GraphPasswordCredential) -> PasswordCredential:
    return PasswordCredential(
        key_id=str(model.key_id),
        display_name=model.display_name or "",
        hint=model.hint or "",
        not_before=aware(model.start_date_time),
        not_after=aware(model.end_date_time),
    )
