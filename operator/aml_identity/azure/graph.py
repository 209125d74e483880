"""Thin async adapter over Microsoft Graph's REST API: Entra applications, their service
principals, credentials and federated credentials.

Like the ARM gateway it returns the plain dataclasses of aml_identity.api.observed and
raises classified AzureFailure. The operator holds Application.ReadWrite.OwnedBy only,
so everything here acts on applications the operator created (and therefore owns).

The requests go through an azure-core pipeline (the operator's shared transport, token,
retries honouring Retry-After), not msgraph-sdk: the twelve calls below are plain JSON,
and msgraph-sdk with kiota and httpx cost the operator about 25 MiB of memory and most
of a second of imports as soon as one service principal was reconciled.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from azure.core import AsyncPipelineClient
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ODataV4Format, ResourceNotFoundError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    AsyncBearerTokenCredentialPolicy,
    SansIOHTTPPolicy,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import HttpRequest

from aml_identity.api.observed import (
    Application,
    FederatedCredential,
    KeyCredential,
    NewKey,
    PasswordCredential,
    ServicePrincipal,
)
from aml_identity.azure.errors import AzureFailure, aware, call, classify, maybe
from aml_identity.azure.transport import raise_for_status, rest_client
from aml_identity.metrics import AZURE_REQUESTS
from aml_identity.settings import Settings

SELECT = "id,appId,displayName,uniqueName,tags,keyCredentials,passwordCredentials"
CREATE_IF_MISSING = {"Prefer": "create-if-missing"}
# Only not-found is mapped: a 401 from Graph (e.g. a bad addKey proof) keeps its status
# and OData code in the failure's message.
GRAPH_ERRORS: dict[int, type[HttpResponseError]] = {404: ResourceNotFoundError}


class CountGraphRequests(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Counts every Graph response (retries included) by operation and status."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        http = request.http_request
        path = http.url.split("?")[0].split("/v1.0/", 1)[-1]
        segments = [s for s in path.split("/") if s]
        kind = segments[0].split("(")[0] if segments else "other"
        action = segments[-1] if len(segments) > 2 else ""
        operation = f"graph/{kind}{'/' + action if action.startswith(('add', 'remove')) else ''}"
        status = str(response.http_response.status_code)
        AZURE_REQUESTS.labels(f"{operation}/{http.method}", status).inc()


@dataclass
class GraphGateway:
    """All of the operator's Microsoft Graph I/O."""

    credential: AsyncTokenCredential
    settings: Settings
    transport: AioHttpTransport
    _client: AsyncPipelineClient[Any, Any] | None = field(default=None, init=False)

    @property
    def client(self) -> AsyncPipelineClient[Any, Any]:
        if self._client is None:
            self._client = rest_client(
                self.settings.graph_endpoint.rstrip("/") + "/v1.0",
                self.transport,
                per_retry=[CountGraphRequests()],
                authentication=AsyncBearerTokenCredentialPolicy(
                    self.credential, self.settings.graph_scope
                ),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()  # the shared transport's session stays open

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """One request; the answer's JSON (None when it has no body). Failures raise as
        azure-core errors, for `call` and `maybe` to classify."""
        url = self.client.format_url(path)  # an absolute @odata.nextLink stays as it is
        request = HttpRequest(method, url, json=body, headers=headers, params=params)
        response = await self.client.send_request(request)
        raise_for_status(response, ODataV4Format, GRAPH_ERRORS)
        return response.json() if response.content else None

    # --- applications ---

    async def get_application(self, unique_name: str) -> Application | None:
        path = f"/applications(uniqueName='{_key_value(unique_name)}')"
        found = await maybe(lambda: self._send("GET", path, params={"$select": SELECT}))
        return None if found is None else _application(found)

    async def read_application(self, object_id: str) -> Application | None:
        """The application by its object id: a fresh read, to check what was just read or
        written (Graph's replicas may answer from before a write)."""
        path = f"/applications/{_segment(object_id)}"
        found = await maybe(lambda: self._send("GET", path, params={"$select": SELECT}))
        return None if found is None else _application(found)

    async def upsert_application(
        self, unique_name: str, display_name: str, tags: list[str], notes: str
    ) -> Application:
        """Create the application under its stable uniqueName, or update it."""
        body = {
            "displayName": display_name,
            "tags": tags,
            "notes": notes,
            "signInAudience": "AzureADMyOrg",
        }
        path = f"/applications(uniqueName='{_key_value(unique_name)}')"
        await call(lambda: self._send("PATCH", path, body, headers=CREATE_IF_MISSING))
        found = await self.get_application(unique_name)
        if found is None:  # Graph replicates; the next reconcile will see it
            raise not_visible("application")
        return found

    async def applications_tagged(self, tag: str) -> list[Application]:
        """Every application carrying `tag` (key:value) that the caller may see (with
        Application.ReadWrite.OwnedBy: the ones it owns)."""
        link: str | None = "/applications"
        params: dict[str, str] | None = {
            "$filter": "tags/any(t:t eq '{}')".format(tag.replace("'", "''")),
            "$select": "id,appId,displayName,uniqueName,tags",
        }
        found: list[Application] = []
        while link:
            page = await call(lambda link=link, p=params: self._send("GET", link, params=p))  # type: ignore[misc]
            found += [_application(a) for a in (page or {}).get("value") or []]
            link, params = (page or {}).get("@odata.nextLink"), None  # the link carries them
        return found

    async def delete_application(self, object_id: str) -> None:
        await call(lambda: self._send("DELETE", f"/applications/{_segment(object_id)}"))

    async def set_keys(self, object_id: str, keys: list[NewKey]) -> None:
        """Replace the application's certificates with `keys` (PATCH takes the whole list,
        so callers pass every key to keep, with its certificate)."""
        body = {
            "keyCredentials": [
                {
                    "keyId": k.key_id,
                    "displayName": k.display_name,
                    "type": "AsymmetricX509Cert",
                    "usage": "Verify",
                    "key": base64.b64encode(k.der).decode(),
                    "startDateTime": _iso(k.not_before),
                    "endDateTime": _iso(k.not_after),
                    "customKeyIdentifier": base64.b64encode(
                        hashlib.sha1(k.der).digest()  # noqa: S324 (thumbprint)
                    ).decode(),
                }
                for k in keys
            ]
        }
        path = f"/applications/{_segment(object_id)}"
        await call(lambda: self._send("PATCH", path, body))

    async def add_password(
        self, object_id: str, display_name: str, not_after: datetime
    ) -> tuple[PasswordCredential, str]:
        """A new client secret; its text is returned once and never again."""
        body = {"passwordCredential": {"displayName": display_name, "endDateTime": _iso(not_after)}}
        path = f"/applications/{_segment(object_id)}/addPassword"
        created = await call(lambda: self._send("POST", path, body))
        if not isinstance(created, dict) or not created.get("secretText"):
            raise classify(_graph_error(500, "addPassword returned no secret"))
        return _password(created), str(created["secretText"])

    async def remove_password(self, object_id: str, key_id: str) -> None:
        path = f"/applications/{_segment(object_id)}/removePassword"
        await call(lambda: self._send("POST", path, {"keyId": key_id}))

    # --- service principals ---

    async def get_service_principal(self, app_id: str) -> ServicePrincipal | None:
        path = f"/servicePrincipals(appId='{_key_value(app_id)}')"
        found = await maybe(lambda: self._send("GET", path))
        if not isinstance(found, dict) or not found.get("id"):
            return None
        return ServicePrincipal(object_id=str(found["id"]), app_id=app_id)

    async def create_service_principal(self, app_id: str, tags: list[str]) -> ServicePrincipal:
        """Create (or find, if a previous attempt got this far) the app's principal."""
        path = f"/servicePrincipals(appId='{_key_value(app_id)}')"
        await call(lambda: self._send("PATCH", path, {"tags": tags}, headers=CREATE_IF_MISSING))
        found = await self.get_service_principal(app_id)
        if found is None:
            raise not_visible("service principal")
        return found

    # --- federated credentials ---

    async def list_federated_credentials(self, object_id: str) -> list[FederatedCredential]:
        link: str | None = f"/applications/{_segment(object_id)}/federatedIdentityCredentials"
        found: list[FederatedCredential] = []
        while link:
            page = await call(lambda link=link: self._send("GET", link))  # type: ignore[misc]
            found += [
                FederatedCredential(
                    f.get("name") or "",
                    f.get("issuer") or "",
                    f.get("subject") or "",
                    tuple(f.get("audiences") or []),
                )
                for f in (page or {}).get("value") or []
            ]
            link = (page or {}).get("@odata.nextLink")
        return found

    async def put_federated_credential(
        self, object_id: str, credential: FederatedCredential, *, exists: bool
    ) -> None:
        body: dict[str, Any] = {
            "issuer": credential.issuer,
            "subject": credential.subject,
            "audiences": list(credential.audiences),
        }
        credentials = f"/applications/{_segment(object_id)}/federatedIdentityCredentials"
        if exists:  # the name is the key and immutable
            item = f"{credentials}/{_segment(credential.name)}"
            await call(lambda: self._send("PATCH", item, body))
        else:
            await call(lambda: self._send("POST", credentials, {"name": credential.name, **body}))

    async def delete_federated_credential(self, object_id: str, name: str) -> None:
        path = f"/applications/{_segment(object_id)}/federatedIdentityCredentials/{_segment(name)}"
        await call(lambda: self._send("DELETE", path))


def _segment(value: str) -> str:
    return quote(value, safe="")


def _key_value(value: str) -> str:
    """A string inside an OData key, as in applications(uniqueName='...')."""
    return quote(value.replace("'", "''"), safe="")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _time(value: Any) -> datetime:
    return aware(datetime.fromisoformat(value) if isinstance(value, str) and value else None)


def _graph_error(status: int, message: str, code: str | None = None) -> HttpResponseError:
    error = HttpResponseError(message=message)
    error.status_code = status
    if code is not None:
        error.error = ODataV4Format({"code": code, "message": message})
    return error


def not_visible(what: str) -> AzureFailure:
    """Graph replicates between its own replicas: what was just written may not be
    readable yet, which Graph itself answers as Request_ResourceNotFound (retried soon)."""
    return classify(_graph_error(404, f"{what} not visible yet", "Request_ResourceNotFound"))


def _application(model: dict[str, Any]) -> Application:
    return Application(
        object_id=str(model["id"]),
        app_id=str(model["appId"]),
        display_name=model.get("displayName") or "",
        unique_name=model.get("uniqueName"),
        tags=tuple(model.get("tags") or ()),
        keys=tuple(_key(k) for k in model.get("keyCredentials") or ()),
        passwords=tuple(_password(p) for p in model.get("passwordCredentials") or ()),
    )


def _key(model: dict[str, Any]) -> KeyCredential:
    der = base64.b64decode(model["key"]) if model.get("key") else None
    identifier = model.get("customKeyIdentifier")
    thumbprint = (
        hashlib.sha1(der).hexdigest().upper()  # noqa: S324 (thumbprint, not security)
        if der
        else (base64.b64decode(identifier) if identifier else b"").hex().upper()
    )
    return KeyCredential(
        key_id=str(model.get("keyId")),
        display_name=model.get("displayName") or "",
        thumbprint=thumbprint,
        not_before=_time(model.get("startDateTime")),
        not_after=_time(model.get("endDateTime")),
        der=der,
    )


def _password(model: dict[str, Any]) -> PasswordCredential:
    return PasswordCredential(
        key_id=str(model.get("keyId")),
        display_name=model.get("displayName") or "",
        hint=model.get("hint") or "",
        not_before=_time(model.get("startDateTime")),
        not_after=_time(model.get("endDateTime")),
    )
