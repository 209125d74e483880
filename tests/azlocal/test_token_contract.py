"""Entra's token endpoint and IMDS, as Entra answers: unknown resources, methods other
than POST, and token lifetimes (client credentials about an hour, managed identities a day)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

from azlocal.keyvault.dataplane import resource_for
from azlocal.server import AzLocal
from support.azure import ARM_SCOPE, msi_client, operator_credential

UNKNOWN = "https://unknown-api.contoso-ml.example"


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def msal_app(azlocal: AzLocal) -> msal.ConfidentialClientApplication:
    env = azlocal.env()
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
    session.verify = str(azlocal.ca_file)
    return msal.ConfidentialClientApplication(
        env["AZURE_CLIENT_ID"],
        authority=f"{azlocal.url}/{azlocal.tenant_id}",
        client_credential=env["AZURE_CLIENT_SECRET"],
        instance_discovery=False,
        http_client=session,
    )


def test_only_resources_known_in_the_tenant(azlocal: AzLocal) -> None:
    """What tests, the operator and workloads ask for is known; anything else is Entra's
    invalid_resource."""
    credential = operator_credential(azlocal)
    operator_app = azlocal.operator_client_id
    legacy_app = azlocal.principal("legacy-ci").app_id
    resources = [
        "https://management.azure.com",
        "https://management.core.windows.net/",
        "https://graph.microsoft.com",
        "https://vault.azure.net",
        resource_for(azlocal.vault_url("kv-ml")),  # what the vault's challenge names
        "https://ml.azure.com",
        "https://storage.azure.com",
        "api://AzureADTokenExchange",
        f"api://{operator_app}",
        legacy_app,
    ]
    for resource in resources:
        token = credential.get_token(f"{resource}/.default").token
        assert claims(token)["aud"] == resource
    expected = (
        f"AADSTS500011: The resource principal named {UNKNOWN} was not found in the tenant "
        "named contoso-ml. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You might have "
        "sent your authentication request to the wrong tenant."
    )
    with pytest.raises(ClientAuthenticationError) as err:
        credential.get_token(f"{UNKNOWN}/.default")
    assert expected in str(err.value)
    # MSAL hands back Entra's whole error body.
    result = msal_app(azlocal).acquire_token_for_client(scopes=[f"{UNKNOWN}/.default"])
    assert result["error"] == "invalid_resource"
    assert result["error_codes"] == [500011]
    assert result["error_description"].startswith(expected)
    sent = [r for r in azlocal.admin("GET", "requests") if r["operation"] == "oauth2/token"]
    assert sent[-1]["status"] == 400


def test_token_endpoint_takes_only_post(azlocal: AzLocal) -> None:
    """No SDK sends a GET here; a browser or a mistaken script does."""
    request = urllib.request.Request(  # noqa: S310 (azlocal's https URL)
        f"{azlocal.url}/{azlocal.tenant_id}/oauth2/v2.0/token", method="GET"
    )
    context = ssl.create_default_context(cafile=str(azlocal.ca_file))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=context, timeout=30)  # noqa: S310
    assert err.value.code == 400
    assert err.value.headers["Content-Type"].startswith("application/json")
    body = json.loads(err.value.read())
    assert body["error"] == "invalid_request"  # Entra's OAuth body, not ARM's envelope
    assert body["error_codes"] == [900561]
    assert body["error_description"].startswith(
        "AADSTS900561: The endpoint only accepts POST, OPTIONS requests. Received a GET request."
    )
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_token_lifetimes(azlocal: AzLocal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Client credentials: an hour (Entra's expires_in 3599); managed identities: a day."""
    before = time.time()
    result = msal_app(azlocal).acquire_token_for_client(scopes=[ARM_SCOPE])
    assert (result["expires_in"], result["ext_expires_in"]) == (3599, 3599)
    exp = claims(result["access_token"])["exp"]
    assert before + 3590 <= exp <= time.time() + 3601

    identity = msi_client(
        azlocal, operator_credential(azlocal)
    ).user_assigned_identities.create_or_update(
        "rg-ml-identities", f"daylong-{uuid.uuid4().hex[:8]}", {"location": "westeurope"}
    )
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azlocal.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azlocal.ca_file))
    before = time.time()
    token = ManagedIdentityCredential(client_id=identity.client_id).get_token(ARM_SCOPE)
    # IMDS answers expires_in "86399" for a fresh token (a day, less a second).
    assert before + 86390 <= token.expires_on <= time.time() + 86400
    assert abs(claims(token.token)["exp"] - token.expires_on) <= 2
