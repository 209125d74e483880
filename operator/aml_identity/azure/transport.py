"""One HTTP transport for every Azure SDK client of the process, and ARM pacing.

azure-core's aiohttp transport, when given a CA bundle path, builds a new TLS context for
every request, so no connection is ever reused (thousands of sockets, a TLS handshake per
call); and with its default `use_env_settings` it reads netrc and proxy variables in the
event loop's thread pool on every request. Here one aiohttp session, with one TLS context
and a bounded pool, serves every client, and nothing runs in threads.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from typing import Any

import aiohttp
from azure.core import AsyncPipelineClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ODataV4Format,
    ResourceNotFoundError,
    map_error,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy, AsyncRetryPolicy, UserAgentPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import AsyncHttpResponse

from aml_identity import audit
from aml_identity.azure.pacing import Pacer, kind_of
from aml_identity.metrics import AZURE_PACED_SECONDS
from aml_identity.settings import Settings

# Connections per host. ARM paces the operator to ~35 requests/s (reads 25/s, writes and
# deletes 10/s), so at Azure's latencies a few connections carry all of it; each TLS
# connection costs asyncio a 256 KiB read buffer, so more would only cost memory.
CONNECTIONS_PER_HOST = 8
_SUBSCRIPTION = re.compile(r"/subscriptions/([^/?]+)", re.I)


def shared_transport(settings: Settings) -> AioHttpTransport:
    """A transport for every SDK client (pass it as `transport=`); close with
    `close_transport`. Call inside the running event loop."""
    context = ssl.create_default_context(cafile=settings.ca_bundle)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            ssl=context, limit=0, limit_per_host=CONNECTIONS_PER_HOST, ttl_dns_cache=300
        ),
        trust_env=False,
        # As azure-core's own session: it decompresses itself and keeps no cookies.
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    return AioHttpTransport(session=session, session_owner=False, use_env_settings=False)


async def close_transport(transport: AioHttpTransport) -> None:
    if transport.session is not None:
        await transport.session.close()


def rest_client(
    endpoint: str,
    transport: AioHttpTransport,
    *,
    per_retry: Sequence[Any],
    authentication: Any,
) -> AsyncPipelineClient[Any, Any]:
    """A pipeline for REST calls made without an SDK's models (ARM listings, Graph): the
    SDK clients' order of policies (user agent, the audit of writes, retries honouring
    Retry-After, then, on every attempt, `per_retry` and the token), on the shared
    transport. Closing it leaves the transport's session open."""
    policies = [
        UserAgentPolicy(sdk_moniker="aml-identity-operator"),
        AuditWrites(),
        AsyncRetryPolicy(),
        *per_retry,
        authentication,
    ]
    return AsyncPipelineClient(base_url=endpoint, policies=policies, transport=transport)


# As the ARM SDKs' generated operations map them.
ARM_ERRORS: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
}


def raise_for_status(
    response: AsyncHttpResponse,
    error_format: type[ODataV4Format],
    error_map: dict[int, type[HttpResponseError]],
) -> None:
    """Raise any answer but a success (2xx) as the SDKs would, for the error table."""
    if not 200 <= response.status_code < 300:
        map_error(status_code=response.status_code, response=response, error_map=error_map)
        raise HttpResponseError(response=response, error_format=error_format)


class ArmPacing(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Waits for a token of the Pacer before each attempt, and feeds ARM's answer back."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        http = request.http_request
        found = _SUBSCRIPTION.search(http.url)
        subscription = found.group(1) if found else "tenant"
        kind = kind_of(http.method)
        wait = self.pacer.reserve(subscription, kind)
        if wait > 0:
            AZURE_PACED_SECONDS.labels(kind).inc(wait)
            await asyncio.sleep(wait)
        self.pacer.sent(subscription, kind)
        remaining: int | None = None
        retry_after: float | None = None
        try:
            response = await self.next.send(request)
            headers = response.http_response.headers
            value = headers.get(f"x-ms-ratelimit-remaining-subscription-{kind}")
            remaining = int(value) if value and value.isdigit() else None
            if response.http_response.status_code == 429:
                retry_after = _seconds(headers.get("Retry-After"))
        finally:
            self.pacer.answered(subscription, kind, remaining=remaining, retry_after=retry_after)
        return response


def _seconds(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0


class AuditWrites(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Stamps every write with a client request id derived from the resource being
    reconciled, and records it once with its final answer (aml_identity/audit.py).
    Placed before the retry policy: retries of a write share its id and its record."""

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        http = request.http_request
        if http.method in audit.READS:
            return await self.next.send(request)
        client_id = audit.request_id()
        http.headers["x-ms-client-request-id"] = client_id  # ARM, Key Vault
        http.headers["client-request-id"] = client_id  # Microsoft Graph
        status: int | None = None
        service_id: str | None = None
        try:
            response = await self.next.send(request)
            headers = response.http_response.headers
            status = response.http_response.status_code
            service_id = headers.get("x-ms-request-id") or headers.get("request-id")
            return response
        finally:
            # azure-mgmt-core's provider-registration policy, below this one, may resend
            # the write under a new id: record the id Azure saw last.
            sent = http.headers.get("x-ms-client-request-id", client_id)
            audit.recorded(http.method, http.url, status, sent, service_id)
