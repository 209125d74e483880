"""Microsoft Graph v1.0 in azlocal, through the official msgraph-sdk client: applications,
service principals, credentials, federated credentials, ownership, errors and paging."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.applications.item.add_key.add_key_post_request_body import (
    AddKeyPostRequestBody,
)
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.remove_key.remove_key_post_request_body import (
    RemoveKeyPostRequestBody,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.graph_service_client import GraphServiceClient

from azlocal.server import AzLocal
from support.azure import ARM_SCOPE, certificate_credential, secret_credential
from support.graph import as_principal

PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
NOW = dt.datetime.now(dt.UTC)


def certificate(
    days: float = 30, start: dt.datetime | None = None
) -> tuple[bytes, bytes, rsa.RSAPrivateKey]:
    """(DER, PEM of cert + key, key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graph-test")])
    begin = start or NOW - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(begin)
        .not_valid_after(begin + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.DER), pem, key


def proof(key: rsa.RSAPrivateKey, der: bytes, object_id: str, **changes: Any) -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"aud": PROOF_AUDIENCE, "iss": object_id, "nbf": now, "exp": now + 600} | changes
    thumb = base64.urlsafe_b64encode(x509.load_der_x509_certificate(der).fingerprint(hashes.SHA1()))  # noqa: S303
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": thumb.decode().rstrip("=")})


def key_credential(der: bytes) -> KeyCredential:
    return KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=der, display_name="t")


def create_app(az: AzLocal, principal: str = "aml-identity-operator") -> Application:
    async def work(graph: GraphServiceClient) -> Application:
        app = await graph.applications.post(Application(display_name=f"t-{uuid.uuid4().hex[:8]}"))
        assert app is not None
        return app

    return as_principal(az, principal, work)


def error_of(call: Any) -> APIError:
    with pytest.raises(APIError) as caught:
        call()
    return caught.value


def test_operator_creates_owns_and_reads_an_application(azlocal: AzLocal) -> None:
    async def work(graph: GraphServiceClient) -> tuple[Any, ...]:
        app = await graph.applications.post(
            Application(display_name="ml-op-app", tags=["a:b"], notes="n")
        )
        assert app is not None
        by_id = await graph.applications.by_application_id(str(app.id)).get()
        by_app_id = await graph.applications_with_app_id(str(app.app_id)).get()
        principal = await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
        assert principal is not None
        by_sp = await graph.service_principals_with_app_id(str(app.app_id)).get()
        return app, by_id, by_app_id, principal, by_sp

    app, by_id, by_app_id, principal, by_sp = as_principal(azlocal, "aml-identity-operator", work)
    assert by_id.display_name == by_app_id.display_name == "ml-op-app"
    assert by_id.tags == ["a:b"]
    assert by_sp.id == principal.id
    operator = azlocal.principal("aml-identity-operator")
    assert azlocal.ctx.store.applications[str(app.id)].owners == [operator.object_id]
    # The new service principal is a principal ARM role assignments can name.
    assert azlocal.ctx.store.principals[str(principal.id)].app_id == app.app_id


def test_upsert_by_unique_name(azlocal: AzLocal) -> None:
    unique = f"aml-identity-{uuid.uuid4()}"

    async def work(graph: GraphServiceClient) -> tuple[Any, Any]:
        builder = graph.applications_with_unique_name(unique)
        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Prefer", "create-if-missing")
        created = await builder.patch(Application(display_name="first"), config)
        await builder.patch(Application(display_name="second"), config)
        return created, await builder.get()

    created, found = as_principal(azlocal, "aml-identity-operator", work)
    assert created is not None
    assert found.id == created.id
    assert found.display_name == "second"
    assert found.unique_name == unique

    async def without_prefer(graph: GraphServiceClient) -> None:
        await graph.applications_with_unique_name(f"x-{uuid.uuid4()}").patch(
            Application(display_name="x")
        )

    missing = error_of(lambda: as_principal(azlocal, "aml-identity-operator", without_prefer))
    assert missing.response_status_code == 404


def test_the_operator_cannot_touch_an_application_it_does_not_own(azlocal: AzLocal) -> None:
    legacy = azlocal.principal("legacy-ci")

    async def rename(graph: GraphServiceClient) -> None:
        await graph.applications_with_app_id(str(legacy.app_id)).patch(
            Application(display_name="hijacked")
        )

    async def read(graph: GraphServiceClient) -> Any:
        return await graph.applications_with_app_id(str(legacy.app_id)).get()

    # OwnedBy reads every application, and changes only its own.
    assert as_principal(azlocal, "aml-identity-operator", read).app_id == legacy.app_id
    refused = error_of(lambda: as_principal(azlocal, "aml-identity-operator", rename))
    assert refused.response_status_code == 403
    assert refused.error.code == "Authorization_RequestDenied"  # type: ignore[attr-defined]

    registration = azlocal.ctx.store.application_by_app_id(str(legacy.app_id))
    assert registration is not None

    async def add_secret(graph: GraphServiceClient) -> None:
        await graph.applications.by_application_id(registration.object_id).add_password.post(
            AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="x"))
        )

    assert (
        error_of(
            lambda: as_principal(azlocal, "aml-identity-operator", add_secret)
        ).response_status_code
        == 403
    )
    # An administrator with Application.ReadWrite.All may.
    as_principal(azlocal, "platform-admin", rename)
    assert registration.display_name == "hijacked"


def test_key_credentials_by_patch_sign_in_and_expire(azlocal: AzLocal, tmp_path: Path) -> None:
    app = create_app(azlocal)
    der, pem, _ = certificate()
    key_id = str(uuid.uuid4())

    async def work(graph: GraphServiceClient) -> Any:
        item = graph.applications.by_application_id(str(app.id))
        credential = key_credential(der)
        credential.key_id = uuid.UUID(key_id)
        await item.patch(Application(key_credentials=[credential]))
        await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
        config: RequestConfiguration[Any] = RequestConfiguration()
        config.query_parameters = item.ApplicationItemRequestBuilderGetQueryParameters(
            select=["keyCredentials"]
        )
        return await item.get(config), await item.get()

    selected, plain = as_principal(azlocal, "aml-identity-operator", work)
    [registered] = selected.key_credentials
    assert str(registered.key_id) == key_id
    assert registered.key == der
    assert plain.key_credentials[0].key is None  # the certificate only when selected
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    assert certificate_credential(azlocal, str(app.app_id), str(path)).get_token(ARM_SCOPE).token

    azlocal.admin("PATCH", "settings", {"clockOffsetSeconds": 31 * 24 * 3600})
    try:
        with pytest.raises(ClientAuthenticationError) as expired:
            certificate_credential(azlocal, str(app.app_id), str(path)).get_token(ARM_SCOPE)
    finally:
        azlocal.admin("PATCH", "settings", {"clockOffsetSeconds": 0})
    assert "AADSTS1000502" in expired.value.message
    assert "not within its specified validity window" in expired.value.message


def test_add_and_remove_key_need_a_valid_proof(azlocal: AzLocal) -> None:
    app = create_app(azlocal)
    der, _, key = certificate()
    new_der, _, _ = certificate()
    object_id = str(app.id)

    def add(token: str) -> Any:
        async def work(graph: GraphServiceClient) -> Any:
            item = graph.applications.by_application_id(object_id)
            return await item.add_key.post(
                AddKeyPostRequestBody(key_credential=key_credential(new_der), proof=token)
            )

        return as_principal(azlocal, "aml-identity-operator", work)

    # No valid certificate yet: addKey cannot be used (PATCH instead).
    assert error_of(lambda: add(proof(key, der, object_id))).response_status_code == 401

    async def first(graph: GraphServiceClient) -> None:
        await graph.applications.by_application_id(object_id).patch(
            Application(key_credentials=[key_credential(der)])
        )

    as_principal(azlocal, "aml-identity-operator", first)
    stranger_der, _, stranger = certificate()
    refusals = {
        "wrong audience": proof(key, der, object_id, aud="https://graph.microsoft.com"),
        "wrong issuer": proof(key, der, object_id, iss=str(uuid.uuid4())),
        "expired": proof(key, der, object_id, nbf=0, exp=600),
        "unregistered key": proof(stranger, stranger_der, object_id),
    }
    for why, token in refusals.items():
        failure = error_of(lambda token=token: add(token))
        assert failure.response_status_code == 401, why
        assert failure.error.code == "Authentication_MissingOrMalformed", why  # type: ignore[attr-defined]
    added = add(proof(key, der, object_id))
    assert added.key_id is not None
    assert len(azlocal.ctx.store.applications[object_id].certificates) == 2

    async def remove(graph: GraphServiceClient) -> None:
        await graph.applications.by_application_id(object_id).remove_key.post(
            RemoveKeyPostRequestBody(key_id=added.key_id, proof=proof(key, der, object_id))
        )

    as_principal(azlocal, "aml-identity-operator", remove)
    assert len(azlocal.ctx.store.applications[object_id].certificates) == 1


def test_passwords_are_returned_once_and_expire(azlocal: AzLocal) -> None:
    app = create_app(azlocal)

    async def work(graph: GraphServiceClient) -> Any:
        item = graph.applications.by_application_id(str(app.id))
        created = await item.add_password.post(
            AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="ci"))
        )
        await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
        return created, await item.get()

    created, read = as_principal(azlocal, "aml-identity-operator", work)
    assert created.secret_text
    assert created.hint == created.secret_text[:3]
    assert read.password_credentials[0].secret_text is None
    assert secret_credential(azlocal, str(app.app_id), created.secret_text).get_token(ARM_SCOPE)
    azlocal.admin("PATCH", "settings", {"clockOffsetSeconds": 3 * 365 * 24 * 3600})
    try:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000222"):
            secret_credential(azlocal, str(app.app_id), created.secret_text).get_token(ARM_SCOPE)
    finally:
        azlocal.admin("PATCH", "settings", {"clockOffsetSeconds": 0})


def test_an_application_without_service_principal_cannot_sign_in(
    azlocal: AzLocal, tmp_path: Path
) -> None:
    app = create_app(azlocal)
    der, pem, _ = certificate()

    async def work(graph: GraphServiceClient) -> None:
        await graph.applications.by_application_id(str(app.id)).patch(
            Application(key_credentials=[key_credential(der)])
        )

    as_principal(azlocal, "aml-identity-operator", work)
    (tmp_path / "c.pem").write_bytes(pem)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000229"):
        certificate_credential(azlocal, str(app.app_id), str(tmp_path / "c.pem")).get_token(
            ARM_SCOPE
        )


def test_federated_credentials_limits(azlocal: AzLocal) -> None:
    app = create_app(azlocal)

    def fic(n: int) -> FederatedIdentityCredential:
        return FederatedIdentityCredential(
            name=f"fic-{n}",
            issuer="https://token.actions.githubusercontent.com",
            subject=f"repo:contoso/ml:ref:refs/heads/b{n}",
            audiences=["api://AzureADTokenExchange"],
        )

    async def work(graph: GraphServiceClient) -> tuple[APIError, APIError, int]:
        fics = graph.applications.by_application_id(str(app.id)).federated_identity_credentials
        for n in range(20):
            await fics.post(fic(n))
        failures = []
        for extra in (fic(20), fic(0)):
            try:
                await fics.post(extra)
            except APIError as error:
                failures.append(error)
        await fics.by_federated_identity_credential_id("fic-3").delete()
        listed = await fics.get()
        too_many, duplicate = failures
        return too_many, duplicate, len(listed.value or []) if listed else -1

    too_many, duplicate, remaining = as_principal(azlocal, "aml-identity-operator", work)
    assert too_many.response_status_code == 400
    assert duplicate.error.code == "Request_MultipleObjectsWithSameKeyValue"  # type: ignore[attr-defined]
    assert remaining == 19


def test_deleting_an_application_deletes_its_service_principal(azlocal: AzLocal) -> None:
    app = create_app(azlocal)

    async def work(graph: GraphServiceClient) -> APIError:
        await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
        await graph.applications.by_application_id(str(app.id)).delete()
        try:
            await graph.service_principals_with_app_id(str(app.app_id)).get()
        except APIError as error:
            return error
        raise AssertionError("the service principal outlived its application")

    gone = as_principal(azlocal, "aml-identity-operator", work)
    assert gone.response_status_code == 404
    assert gone.error.code == "Request_ResourceNotFound"  # type: ignore[attr-defined]
    assert "does not exist" in str(gone.error.message)  # type: ignore[attr-defined]


def test_paging_follows_next_links(azlocal: AzLocal) -> None:
    for _ in range(5):
        create_app(azlocal, "platform-admin")
    azlocal.admin("PATCH", "settings", {"pageSize": 2})

    async def work(graph: GraphServiceClient) -> tuple[int, int]:
        page = await graph.applications.get()
        seen, pages = 0, 0
        while page is not None:
            seen += len(page.value or [])
            pages += 1
            if not page.odata_next_link:
                break
            page = await graph.applications.with_url(page.odata_next_link).get()
        return seen, pages

    try:
        seen, pages = as_principal(azlocal, "platform-admin", work)
    finally:
        azlocal.admin("PATCH", "settings", {"pageSize": 100})
    assert seen == len(azlocal.ctx.store.applications)
    assert pages == (seen + 1) // 2


def test_throttling_is_retried_after_retry_after(azlocal: AzLocal) -> None:
    azlocal.admin("DELETE", "requests")
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "POST",
            "pathPattern": "^/v1.0/applications$",
            "count": 1,
            "status": 429,
            "code": "TooManyRequests",
            "message": "Too many requests",
            "retryAfter": 1,
        },
    )
    app = create_app(azlocal)
    assert app.id is not None
    creates = [r for r in azlocal.admin("GET", "requests") if r["path"] == "/v1.0/applications"]
    assert [r["status"] for r in creates] == [429, 201]


def test_graph_refuses_arm_tokens_and_unknown_segments(azlocal: AzLocal) -> None:
    import ssl
    import urllib.error
    import urllib.request

    token = (
        secret_credential(
            azlocal,
            str(azlocal.principal("platform-admin").app_id),
            azlocal.issued.secrets["platform-admin"],
        )
        .get_token(ARM_SCOPE)
        .token
    )
    context = ssl.create_default_context(cafile=str(azlocal.ca_file))
    request = urllib.request.Request(  # noqa: S310 (https to azlocal)
        f"{azlocal.url}/v1.0/applications", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context)  # noqa: S310 (https to azlocal)
    assert refused.value.code == 401
    body = refused.value.read().decode()
    assert "InvalidAuthenticationToken" in body
    assert "innerError" in body
