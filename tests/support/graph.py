"""The official Microsoft Graph client (msgraph-sdk) pointed at azlocal by base URL and CA."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.api_error import APIError
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from azlocal.server import AzLocal

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
T = TypeVar("T")


def as_principal(
    az: AzLocal, principal: str, work: Callable[[GraphServiceClient], Awaitable[T]]
) -> T:
    """Run `work` with a Graph client signed in as a seeded principal (its secret)."""

    async def run() -> T:
        credential = ClientSecretCredential(
            az.tenant_id,
            az.principal(principal).app_id or "",
            az.issued.secrets[principal],
            authority=az.url,
            connection_verify=str(az.ca_file),
        )
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(
                verify=ssl.create_default_context(cafile=str(az.ca_file)), trust_env=False
            )
        )
        adapter = GraphRequestAdapter(
            AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE]), client=http
        )
        adapter.base_url = f"{az.url}/v1.0"
        try:
            async with credential:
                return await work(GraphServiceClient(request_adapter=adapter))
        finally:
            await http.aclose()

    return asyncio.run(run())


def application(az: AzLocal, app_id: str) -> Any:
    """The application with `app_id`, as the administrator reads it; None when gone."""

    async def work(graph: GraphServiceClient) -> Any:
        try:
            return await graph.applications_with_app_id(app_id).get()
        except APIError as error:
            if error.response_status_code == 404:
                return None
            raise

    return as_principal(az, "platform-admin", work)
