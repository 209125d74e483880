"""Key Vault certificates through azure-keyvault-certificates / -secrets (sync and async).

The clients get only the vault URL, a credential and the CA: the challenge handshake,
token audience and ids are the SDK's own.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import CertificateCredential
from azure.identity.aio import ClientSecretCredential as AsyncSecretCredential
from azure.keyvault.certificates import CertificateClient, CertificatePolicy, KeyVaultCertificate
from azure.keyvault.certificates.aio import CertificateClient as AsyncCertificateClient
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from azlocal.server import AzLocal
from azlocal.store import CertificateCredential as StoredCertificateCredential
from support.azure import (
    ARM_SCOPE,
    Arm,
    admin_credential,
    authorization_client,
    operator_credential,
    secret_credential,
)
from support.world import RG_ML, SUB

VAULT_ID = f"{RG_ML}/providers/Microsoft.KeyVault/vaults/kv-ml"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
PEM = "application/x-pem-file"


@pytest.fixture(autouse=True)
def _issue_on_first_poll(azlocal: AzLocal) -> None:
    """Pending operations complete on their first poll, so the SDK never sleeps (the
    default, one inProgress poll, has its own test)."""
    azlocal.admin("PATCH", "settings", {"keyvaultPendingPolls": 0})


def certificates(az: AzLocal, credential: object) -> CertificateClient:
    return CertificateClient(az.vault_url("kv-ml"), credential, connection_verify=str(az.ca_file))  # type: ignore[arg-type]


def secrets(az: AzLocal, credential: object) -> SecretClient:
    return SecretClient(az.vault_url("kv-ml"), credential, connection_verify=str(az.ca_file))  # type: ignore[arg-type]


def policy(
    *, exportable: bool = True, content_type: str = PEM, key_size: int = 2048
) -> CertificatePolicy:
    return CertificatePolicy(
        issuer_name="Self",
        subject="CN=workload.contoso-ml.example, O=Contoso ML",
        san_dns_names=["workload.contoso-ml.example"],
        exportable=exportable,
        key_type="RSA",
        key_size=key_size,
        reuse_key=False,
        content_type=content_type,
        validity_in_months=6,
    )


def name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def new_principal(az: AzLocal) -> tuple[dict[str, str], object]:
    created: dict[str, str] = az.admin(
        "POST", "principals", {"kind": "ServicePrincipal", "displayName": "kv-t", "secret": True}
    )
    return created, secret_credential(az, created["appId"], created["secret"])


def grant(az: AzLocal, role: str, principal_id: str, scope: str) -> None:
    """As the operator (RBAC Administrator on rg-ml, which contains kv-ml)."""
    authorization_client(az, operator_credential(az)).role_assignments.create(
        scope,
        str(uuid.uuid4()),
        {
            "role_definition_id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role}",
            "principal_id": principal_id,
            "principal_type": "ServicePrincipal",
        },
    )


def create(
    client: CertificateClient, cert_name: str, certificate_policy: CertificatePolicy
) -> KeyVaultCertificate:
    """begin_create_certificate(...).result(): the certificate once issued."""
    result = client.begin_create_certificate(cert_name, certificate_policy).result()
    assert isinstance(result, KeyVaultCertificate), result
    return result


def version(cert: KeyVaultCertificate) -> str:
    assert cert.properties is not None
    return str(cert.properties.version)


def cer(cert: KeyVaultCertificate) -> bytes:
    assert cert.cer is not None
    return bytes(cert.cer)


def thumbprint(cert: KeyVaultCertificate) -> bytes:
    assert cert.properties is not None
    return bytes(cert.properties.x509_thumbprint)


def rbac_refusal(error: HttpResponseError) -> tuple[int | None, str, str]:
    assert error.error is not None
    inner = error.error.innererror or {}
    return error.status_code, str(error.error.code), str(inner.get("code"))


def test_create_self_signed_certificate(azlocal: AzLocal) -> None:
    client = certificates(azlocal, operator_credential(azlocal))
    cert_name = name()
    created = create(client, cert_name, policy(key_size=3072))
    assert created.id == f"{azlocal.vault_url('kv-ml')}certificates/{cert_name}/{version(created)}"
    assert cer(created) is not None
    parsed = x509.load_der_x509_certificate(cer(created))
    assert parsed.fingerprint(hashes.SHA1()) == thumbprint(created)  # noqa: S303
    public_key = parsed.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == 3072
    assert parsed.subject.rfc4514_string() == "O=Contoso ML,CN=workload.contoso-ml.example"
    assert parsed.issuer == parsed.subject
    months = (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days
    assert 180 <= months <= 185
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["workload.contoso-ml.example"]
    assert created.policy is not None
    assert created.policy.exportable is True
    assert created.policy.content_type == PEM
    again = client.get_certificate_version(cert_name, str(version(created)))
    assert cer(again) == cer(created)


def test_pending_operation_reports_in_progress_before_completed(azlocal: AzLocal) -> None:
    """The default: one poll answers inProgress, the next completed (the SDK waits its
    own polling interval, 5 s, in between)."""
    azlocal.admin("PATCH", "settings", {"keyvaultPendingPolls": 1})
    client = certificates(azlocal, operator_credential(azlocal))
    cert_name = name()
    cert = create(client, cert_name, policy())
    assert cert.name == cert_name
    polls = [
        r
        for r in azlocal.admin("GET", "requests")
        if r["path"] == f"/certificates/{cert_name}/pending"
    ]
    assert [r["status"] for r in polls] == [200, 200]  # inProgress, then completed
    operation = client.get_certificate_operation(cert_name)
    assert operation.status == "completed"
    assert operation.target == f"{azlocal.vault_url('kv-ml')}certificates/{cert_name}"
    assert operation.csr is not None
    csr = x509.load_der_x509_csr(operation.csr)
    assert csr.public_key() == x509.load_der_x509_certificate(cer(cert) or b"").public_key()


def test_a_second_create_makes_a_new_version(azlocal: AzLocal) -> None:
    client = certificates(azlocal, operator_credential(azlocal))
    cert_name = name()
    first = create(client, cert_name, policy())
    second = create(client, cert_name, policy())
    assert version(first) != version(second)
    assert cer(first) != cer(second)
    versions = {v.version for v in client.list_properties_of_certificate_versions(cert_name)}
    assert versions == {version(first), version(second)}
    assert version(client.get_certificate(cert_name)) == version(second)
    old = client.get_certificate_version(cert_name, str(version(first)))
    assert cer(old) == cer(first)
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_certificate_version(cert_name, uuid.uuid4().hex)
    assert missing.value.error is not None
    assert missing.value.error.code == "CertificateNotFound"


def test_operator_cannot_read_the_key_a_secrets_user_can(azlocal: AzLocal) -> None:
    cert_name = name()
    create(certificates(azlocal, operator_credential(azlocal)), cert_name, policy())
    with pytest.raises(HttpResponseError) as refused:
        secrets(azlocal, operator_credential(azlocal)).get_secret(cert_name)
    assert rbac_refusal(refused.value) == (403, "Forbidden", "ForbiddenByRbac")
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'" in str(refused.value)

    workload, credential = new_principal(azlocal)
    # Per-object scope: the secret of this one certificate.
    grant(azlocal, SECRETS_USER, workload["objectId"], f"{VAULT_ID}/secrets/{cert_name}")
    secret = secrets(azlocal, credential).get_secret(cert_name)
    assert secret.properties.content_type == PEM
    assert secret.properties.managed is True
    assert secret.value is not None
    assert "-----BEGIN PRIVATE KEY-----" in secret.value
    # ... and not the secret of another certificate.
    other = name()
    create(certificates(azlocal, operator_credential(azlocal)), other, policy())
    with pytest.raises(HttpResponseError) as elsewhere:
        secrets(azlocal, credential).get_secret(other)
    assert rbac_refusal(elsewhere.value) == (403, "Forbidden", "ForbiddenByRbac")

    # The PEM is a working client certificate once it is registered on an application.
    pem = secret.value.encode()
    cert = x509.load_pem_x509_certificate(pem)
    der = base64.b64decode(
        b"".join(pem.split(b"-----BEGIN CERTIFICATE-----")[1].split(b"-----")[0].split())
    )
    principal = azlocal.ctx.store.principals[workload["objectId"]]
    principal.certificates.append(
        StoredCertificateCredential(
            key_id=str(uuid.uuid4()),
            der_b64=base64.b64encode(der).decode(),
            thumbprint_sha1=hashlib.sha1(der).hexdigest().upper(),  # noqa: S324
            thumbprint_sha256=hashlib.sha256(der).hexdigest().upper(),
            start=cert.not_valid_before_utc.timestamp(),
            end=cert.not_valid_after_utc.timestamp(),
        )
    )
    token = CertificateCredential(
        azlocal.tenant_id,
        workload["appId"],
        certificate_data=pem,
        authority=azlocal.url,
        disable_instance_discovery=True,
        connection_verify=str(azlocal.ca_file),
    ).get_token(ARM_SCOPE)
    assert token.token


def test_pkcs12_secret_holds_key_and_certificate(azlocal: AzLocal) -> None:
    cert_name = name()
    created = create(
        certificates(azlocal, operator_credential(azlocal)),
        cert_name,
        policy(content_type="application/x-pkcs12"),
    )
    workload, credential = new_principal(azlocal)
    grant(azlocal, SECRETS_USER, workload["objectId"], VAULT_ID)
    secret = secrets(azlocal, credential).get_secret(cert_name, str(version(created)))
    assert secret.properties.content_type == "application/x-pkcs12"
    assert secret.value is not None
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
    assert key is not None
    assert cert is not None
    assert cert.fingerprint(hashes.SHA1()) == thumbprint(created)  # noqa: S303


def test_non_exportable_key_is_never_released(azlocal: AzLocal) -> None:
    cert_name = name()
    create(certificates(azlocal, operator_credential(azlocal)), cert_name, policy(exportable=False))
    workload, credential = new_principal(azlocal)
    grant(azlocal, SECRETS_USER, workload["objectId"], VAULT_ID)
    secret = secrets(azlocal, credential).get_secret(cert_name)
    assert secret.value is not None
    assert "PRIVATE KEY" not in secret.value
    x509.load_pem_x509_certificate(secret.value.encode())
    with pytest.raises(ValueError, match="private key"):
        CertificateCredential(
            azlocal.tenant_id,
            workload["appId"],
            certificate_data=secret.value.encode(),
            authority=azlocal.url,
            disable_instance_discovery=True,
        )


def test_a_principal_without_a_role_is_refused(azlocal: AzLocal) -> None:
    _, credential = new_principal(azlocal)
    client = certificates(azlocal, credential)
    with pytest.raises(HttpResponseError) as refused:
        client.get_certificate("anything")
    assert rbac_refusal(refused.value) == (403, "Forbidden", "ForbiddenByRbac")
    message = str(refused.value)
    assert "Action: 'Microsoft.KeyVault/vaults/certificates/read'" in message
    assert f"Resource: '{VAULT_ID.lower()}/certificates/anything'" in message
    with pytest.raises(HttpResponseError) as create_refused:
        client.begin_create_certificate(name(), policy())
    assert rbac_refusal(create_refused.value) == (403, "Forbidden", "ForbiddenByRbac")
    # The subscription's Owner holds no data actions either.
    with pytest.raises(HttpResponseError) as owner_refused:
        certificates(azlocal, admin_credential(azlocal)).get_certificate("anything")
    assert rbac_refusal(owner_refused.value) == (403, "Forbidden", "ForbiddenByRbac")


def test_delete_get_deleted_and_purge(azlocal: AzLocal) -> None:
    client = certificates(azlocal, operator_credential(azlocal))
    cert_name = name()
    created = create(client, cert_name, policy())
    poller = client.begin_delete_certificate(cert_name)
    deleted = poller.result()
    poller.wait()
    assert deleted.recovery_id == f"{azlocal.vault_url('kv-ml')}deletedcertificates/{cert_name}"
    assert deleted.deleted_on is not None
    assert deleted.scheduled_purge_date is not None
    assert cer(deleted) == cer(created)
    with pytest.raises(ResourceNotFoundError):
        client.get_certificate(cert_name)
    with pytest.raises(ResourceExistsError):  # a deleted name cannot be reused until purged
        client.begin_create_certificate(cert_name, policy())
    assert client.get_deleted_certificate(cert_name).recovery_id == deleted.recovery_id
    client.purge_deleted_certificate(cert_name)
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_certificate(cert_name)
    recreated = create(client, cert_name, policy())
    assert [v.version for v in client.list_properties_of_certificate_versions(cert_name)] == [
        version(recreated)
    ]


def test_challenge_handshake_is_in_the_request_log(tmp_path: Path) -> None:
    # A vault origin this process has not seen: the SDK caches challenges per host:port
    # for the whole process, so the session's vault would skip the handshake.
    fresh = AzLocal(tmp_path).start()
    try:
        fresh.admin("PATCH", "settings", {"keyvaultPendingPolls": 0})
        certificates(fresh, operator_credential(fresh)).begin_create_certificate(
            name(), policy()
        ).result()
        log = fresh.admin("GET", "requests")
        counters = fresh.admin("GET", "counters")
        operator = fresh.principal("aml-identity-operator").object_id
    finally:
        fresh.stop()
    vault = [r for r in log if r["operation"] != "unrouted"]  # MSAL's discovery
    first, token, retried = vault[0], vault[1], vault[2]
    assert (first["status"], first["operation"], first["principal"]) == (
        401,
        "keyvault/certificates/create",
        None,
    )
    assert token["operation"] == "oauth2/token"
    assert (retried["status"], retried["operation"]) == (202, "keyvault/certificates/create")
    assert retried["principal"] == operator
    counted = {(c["operation"], c["status"]): c["count"] for c in counters}
    assert counted[("keyvault/certificates/create", 401)] == 1
    assert counted[("keyvault/certificates/pending/read", 200)] == 1


def test_challenge_names_the_tenant_and_a_resource_the_host_matches(azlocal: AzLocal) -> None:
    url = azlocal.vault_url("kv-ml")
    context = ssl.create_default_context(cafile=str(azlocal.ca_file))
    with pytest.raises(urllib.error.HTTPError) as unauthorized:
        urllib.request.urlopen(f"{url}certificates/x?api-version=2026-04-01", context=context)  # noqa: S310
    port = url.rstrip("/").rsplit(":", 1)[1]
    assert unauthorized.value.code == 401
    assert unauthorized.value.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{azlocal.url}/{azlocal.tenant_id}", resource="https://0.0.1:{port}"'
    )


def test_other_api_versions_are_refused(azlocal: AzLocal) -> None:
    client = CertificateClient(
        azlocal.vault_url("kv-ml"),
        operator_credential(azlocal),
        api_version="7.0",
        connection_verify=str(azlocal.ca_file),
    )
    with pytest.raises(HttpResponseError) as refused:
        client.get_certificate("anything")
    assert refused.value.status_code == 400
    assert refused.value.error is not None
    assert refused.value.error.code == "BadParameter"
    assert refused.value.error.message == (
        "The specified version (7.0) is not recognized. Consider using the latest supported "
        "version (2026-04-01)."
    )


def test_injected_throttling_is_retried(azlocal: AzLocal) -> None:
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "POST",
            "pathPattern": "^/certificates/[^/]+/create$",
            "count": 1,
            "status": 429,
            "code": "Throttled",
            "message": "Request was not processed because too many requests were received.",
            "retryAfter": 0,
        },
    )
    azlocal.admin("DELETE", "requests")
    cert = create(certificates(azlocal, operator_credential(azlocal)), name(), policy())
    assert cer(cert) is not None
    statuses = [
        (r["path"].endswith("/create"), r["status"]) for r in azlocal.admin("GET", "requests")
    ]
    assert (True, 429) in statuses
    assert (True, 202) in statuses


def test_vault_in_arm(azlocal: AzLocal) -> None:
    vault = Arm(azlocal, operator_credential(azlocal)).send("GET", VAULT_ID, "2023-07-01").json()
    assert vault["type"] == "Microsoft.KeyVault/vaults"
    assert vault["properties"]["vaultUri"] == azlocal.vault_url("kv-ml")
    assert vault["properties"]["enableRbacAuthorization"] is True
    assert vault["properties"]["tenantId"] == azlocal.tenant_id
    assert azlocal.env()["AZLOCAL_KEYVAULT_URL"] == azlocal.vault_url("kv-ml")


async def test_async_client(azlocal: AzLocal) -> None:
    env = azlocal.env()
    credential = AsyncSecretCredential(
        azlocal.tenant_id,
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        authority=azlocal.url,
        connection_verify=str(azlocal.ca_file),
    )
    async with (
        credential,
        AsyncCertificateClient(
            azlocal.vault_url("kv-ml"), credential, connection_verify=str(azlocal.ca_file)
        ) as client,
    ):
        cert_name = name()
        created = await client.create_certificate(cert_name, policy())
        assert isinstance(created, KeyVaultCertificate)
        assert cer(created) is not None
        fetched = await client.get_certificate(cert_name)
        assert thumbprint(fetched) == thumbprint(created)
        versions = [v async for v in client.list_properties_of_certificate_versions(cert_name)]
        assert len(versions) == 1


def test_certificates_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = AzLocal(tmp_path / "first", state_file=state).start()
    try:
        first.admin("PATCH", "settings", {"keyvaultPendingPolls": 0})
        created = create(certificates(first, operator_credential(first)), "survivor", policy())
        first.save()
    finally:
        first.stop()
    second = AzLocal(tmp_path / "second", state_file=state).start()
    try:
        again = certificates(second, operator_credential(second)).get_certificate("survivor")
        assert cer(again) == cer(created)
        assert str(again.id).startswith(second.vault_url("kv-ml"))
        # Versions, policies and private keys came back as they were.
        assert second.ctx.store.vaults == first.ctx.store.vaults
    finally:
        second.stop()


def test_unknown_issuer_waits_for_a_merge_of_a_certificate_for_its_key(azlocal: AzLocal) -> None:
    """Key Vault keeps the key; the certificate is made elsewhere and merged. Until the
    merge the operation stays in progress and no version is served."""
    from azure.keyvault.certificates import CertificateOperation

    client = certificates(azlocal, operator_credential(azlocal))
    cert_name = name()
    request_policy = CertificatePolicy(
        issuer_name="Unknown", subject="CN=merged", exportable=True, content_type=PEM
    )
    operation = client.begin_create_certificate(cert_name, request_policy).result()
    assert isinstance(operation, CertificateOperation)
    assert operation.status == "inProgress"
    assert operation.csr is not None
    request = x509.load_der_x509_csr(bytes(operation.csr))
    assert client.get_certificate_operation(cert_name).status == "inProgress"
    with pytest.raises(ResourceNotFoundError):
        client.get_certificate(cert_name)

    def certify(public_key: object) -> bytes:
        from datetime import UTC, datetime, timedelta

        from cryptography.hazmat.primitives import serialization

        issuer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "merged")])
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=1))
            .sign(issuer, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(HttpResponseError) as mismatch:
        client.merge_certificate(cert_name, [certify(stranger)])
    assert mismatch.value.status_code == 400
    assert "doesn't match" in str(mismatch.value.message)

    der = certify(request.public_key())
    merged = client.merge_certificate(cert_name, [der], tags={"k": "v"})
    assert bytes(merged.cer or b"") == der
    assert client.get_certificate_operation(cert_name).status == "completed"
    served = client.get_certificate(cert_name)
    assert bytes(served.cer or b"") == der
    assert served.properties is not None
    assert served.properties.tags == {"k": "v"}
    client.update_certificate_properties(cert_name, served.properties.version or "", tags={})
    assert client.get_certificate(cert_name).properties.tags == {}  # type: ignore[union-attr]
    # The vault's own key, exported as PEM, goes with the merged certificate.
    admin = admin_credential(azlocal)
    grant(azlocal, SECRETS_USER, azlocal.principal("platform-admin").object_id, VAULT_ID)
    value = secrets(azlocal, admin).get_secret(cert_name).value or ""
    assert "PRIVATE KEY" in value
    assert base64.b64encode(der).decode()[:40] in "".join(value.splitlines())
