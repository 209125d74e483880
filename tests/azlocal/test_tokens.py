"""Entra's token endpoint and IMDS through azure-identity and MSAL; ARM's 401s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.identity.aio import ClientSecretCredential as AsyncSecretCredential

from azlocal.server import AzLocal
from support.azure import (
    ARM_SCOPE,
    Arm,
    certificate_credential,
    msi_client,
    operator_credential,
    secret_credential,
)
from support.world import SUB


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_client_secret_sync_and_async(azlocal: AzLocal) -> None:
    env = azlocal.env()
    token = operator_credential(azlocal).get_token(ARM_SCOPE).token
    c = claims(token)
    operator = azlocal.principal("aml-identity-operator")
    assert c["aud"] == "https://management.azure.com"
    assert (c["tid"], c["oid"], c["appid"]) == (
        azlocal.tenant_id,
        operator.object_id,
        operator.app_id,
    )
    assert c["exp"] > time.time() + 3000

    async def fetch() -> str:
        async with AsyncSecretCredential(
            azlocal.tenant_id,
            env["AZURE_CLIENT_ID"],
            env["AZURE_CLIENT_SECRET"],
            authority=azlocal.url,
            connection_verify=str(azlocal.ca_file),
        ) as credential:
            return (await credential.get_token(ARM_SCOPE)).token

    assert claims(asyncio.run(fetch()))["oid"] == operator.object_id


def test_certificate_credential_rs256_x5t(azlocal: AzLocal) -> None:
    operator = azlocal.principal("aml-identity-operator")
    pem = azlocal.issued.certificates["aml-identity-operator"]
    token = certificate_credential(azlocal, operator.app_id, str(pem)).get_token(ARM_SCOPE).token
    assert claims(token)["appidacr"] == "2"
    sent = [r for r in azlocal.admin("GET", "requests") if r["operation"] == "oauth2/token"]
    assert (sent[-1]["status"], sent[-1]["clientAuth"]) == (200, "certificate:RS256")


def test_msal_ps256_x5t_s256(azlocal: AzLocal) -> None:
    """Without a thumbprint MSAL signs with PS256 and sends x5t#S256."""
    operator = azlocal.principal("aml-identity-operator")
    pem = Path(azlocal.issued.certificates["aml-identity-operator"]).read_text()
    cert = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
    session.verify = str(azlocal.ca_file)
    app = msal.ConfidentialClientApplication(
        operator.app_id,
        authority=f"{azlocal.url}/{azlocal.tenant_id}",
        client_credential={"private_key": pem, "public_certificate": cert},
        instance_discovery=False,
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[ARM_SCOPE])
    assert "access_token" in result, result
    sent = [r for r in azlocal.admin("GET", "requests") if r["operation"] == "oauth2/token"]
    assert (sent[-1]["status"], sent[-1]["clientAuth"]) == (200, "certificate:PS256")


@pytest.mark.parametrize(
    ("case", "aadsts"), [("wrong-secret", 7000215), ("unknown-client", 700016)]
)
def test_token_errors(azlocal: AzLocal, case: str, aadsts: int) -> None:
    env = azlocal.env()
    client_id, secret = env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"]
    if case == "wrong-secret":
        secret = "not-the-secret"
    else:
        client_id = "11111111-1111-1111-1111-111111111111"
    with pytest.raises(ClientAuthenticationError) as err:
        secret_credential(azlocal, client_id, secret).get_token(ARM_SCOPE)
    assert f"AADSTS{aadsts}" in str(err.value)


def test_unknown_tenant(azlocal: AzLocal) -> None:
    env = azlocal.env()
    unknown = "22222222-2222-2222-2222-222222222222"
    # MSAL (sync credentials) reads the tenant's discovery document first, which fails ...
    sync = ClientSecretCredential(
        unknown,
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        authority=azlocal.url,
        disable_instance_discovery=True,
        connection_verify=str(azlocal.ca_file),
    )
    with pytest.raises(ClientAuthenticationError, match="Unable to get authority configuration"):
        sync.get_token(ARM_SCOPE)

    # ... while the async credential posts to the token endpoint directly.
    async def fetch() -> None:
        async with AsyncSecretCredential(
            unknown,
            env["AZURE_CLIENT_ID"],
            env["AZURE_CLIENT_SECRET"],
            authority=azlocal.url,
            connection_verify=str(azlocal.ca_file),
        ) as credential:
            await credential.get_token(ARM_SCOPE)

    with pytest.raises(ClientAuthenticationError, match="AADSTS90002"):
        asyncio.run(fetch())


def test_expired_secret_and_certificate(azlocal: AzLocal) -> None:
    now = time.time()
    sp = azlocal.admin(
        "POST",
        "principals",
        {
            "displayName": "expired",
            "secret": True,
            "secretNotAfter": now - 60,
            "certificate": True,
            "certificateNotBefore": now - 7200,
            "certificateNotAfter": now - 60,
        },
    )
    with pytest.raises(ClientAuthenticationError) as secret_err:
        secret_credential(azlocal, sp["appId"], sp["secret"]).get_token(ARM_SCOPE)
    assert "AADSTS7000222" in str(secret_err.value)
    with pytest.raises(ClientAuthenticationError) as cert_err:
        certificate_credential(azlocal, sp["appId"], sp["certificatePath"]).get_token(ARM_SCOPE)
    assert "AADSTS1000502" in str(cert_err.value)
    assert "not within its specified validity window" in str(cert_err.value)
    future = azlocal.admin(
        "POST",
        "principals",
        {
            "displayName": "not-yet",
            "certificate": True,
            "certificateNotBefore": now + 3600,
            "certificateNotAfter": now + 7200,
        },
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS1000502"):
        certificate_credential(azlocal, future["appId"], future["certificatePath"]).get_token(
            ARM_SCOPE
        )


def test_unregistered_certificate(azlocal: AzLocal) -> None:
    other = azlocal.admin("POST", "principals", {"displayName": "other", "certificate": True})
    operator = azlocal.principal("aml-identity-operator")
    with pytest.raises(ClientAuthenticationError) as err:
        certificate_credential(azlocal, operator.app_id, other["certificatePath"]).get_token(
            ARM_SCOPE
        )
    assert "AADSTS700027" in str(err.value)


def test_scope_must_be_dot_default(azlocal: AzLocal) -> None:
    with pytest.raises(ClientAuthenticationError) as err:
        operator_credential(azlocal).get_token("https://management.azure.com/user_impersonation")
    assert "AADSTS1002012" in str(err.value)


def test_managed_identity_through_imds(azlocal: AzLocal, monkeypatch: pytest.MonkeyPatch) -> None:
    identity = msi_client(
        azlocal, operator_credential(azlocal)
    ).user_assigned_identities.create_or_update(
        "rg-ml-identities", "imds-identity", {"location": "westeurope"}
    )
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azlocal.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azlocal.ca_file))
    credential = ManagedIdentityCredential(client_id=identity.client_id)
    token = credential.get_token(ARM_SCOPE).token
    assert claims(token)["oid"] == identity.principal_id
    assert claims(token)["xms_mirid"].endswith("/userAssignedIdentities/imds-identity")


class StaticToken:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def test_arm_checks_every_bearer_token(azlocal: AzLocal) -> None:
    group = f"/subscriptions/{SUB}/resourceGroups/rg-ml"
    session = requests.Session()
    session.trust_env = False
    bare = session.get(f"{azlocal.url}{group}?api-version=2021-04-01", verify=str(azlocal.ca_file))
    assert bare.status_code == 401
    assert bare.json()["error"]["code"] == "AuthenticationFailed"
    assert bare.headers["WWW-Authenticate"] == (
        f'Bearer authorization_uri="{azlocal.url}/{azlocal.tenant_id}", error="invalid_token", '
        "error_description=\"The authentication failed because of missing 'Authorization' header.\""
    )
    graph_token = (
        operator_credential(azlocal).get_token("https://graph.microsoft.com/.default").token
    )
    wrong = Arm(azlocal, StaticToken(graph_token), retry_total=0).send("GET", group, "2021-04-01")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    forged = Arm(azlocal, StaticToken(graph_token[:-4] + "AAAA"), retry_total=0).send(
        "GET", group, "2021-04-01"
    )
    assert forged.json()["error"]["code"] == "InvalidAuthenticationToken"
    token = operator_credential(azlocal).get_token(ARM_SCOPE).token
    assert Arm(azlocal, StaticToken(token)).send("GET", group, "2021-04-01").status_code == 200
    azlocal.admin("PATCH", "settings", {"clockOffsetSeconds": 7200})
    expired = Arm(azlocal, StaticToken(token), retry_total=0).send("GET", group, "2021-04-01")
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "ExpiredAuthenticationToken"


def test_admin_api_refuses_azure_tokens(azlocal: AzLocal) -> None:
    token = operator_credential(azlocal).get_token(ARM_SCOPE).token
    answer = Arm(azlocal, StaticToken(token), retry_total=0).send("GET", "/_azlocal/settings", "")
    assert answer.status_code == 403
