"""WorkloadIdentity (servicePrincipal form) against the real control plane and azlocal:
an application the operator owns, a certificate in a Secret that azure-identity uses
as-is, rotation with overlap, client secrets, deletion and Orphan."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import (
    Arm,
    certificate_credential,
    operator_credential,
    secret_credential,
)
from support.graph import application
from support.operator import (
    OperatorProcess,
    apply,
    events,
    get,
    wait_gone,
    wait_ready,
    wait_reason,
)
from support.poll import wait_until
from support.world import ENDPOINT, ML_API, RG_ML, WORKSPACE

ARM_SCOPE = "https://management.azure.com/.default"
OTHER_WORKSPACE = WORKSPACE.replace("ws-prod", "ws-dev")


def secret_data(cluster: LocalCluster, name: str, namespace: str) -> dict[str, bytes]:
    obj = get(cluster, "secret", name, namespace)
    assert obj is not None, f"Secret {name} missing"
    return {k: base64.b64decode(v) for k, v in obj["data"].items()}


def pem_file(cluster: LocalCluster, name: str, namespace: str, path: Path) -> Path:
    """Write the Secret's client-certificate.pem where a mounted volume would put it."""
    path.write_bytes(secret_data(cluster, name, namespace)["client-certificate.pem"])
    return path


def bind_reader(cluster: LocalCluster, namespace: str, identity: str) -> None:
    """Reader on one workspace only: inside it calls succeed, outside they are refused."""
    apply(
        cluster,
        "MLRoleBinding",
        f"{identity}-reader",
        {
            "role": {"builtIn": "Reader"},
            "subjects": [{"workloadIdentity": identity}],
            "scope": {"resourceId": WORKSPACE},
        },
        namespace,
    )
    wait_ready(cluster, "mlrb", f"{identity}-reader", namespace)


def read_workspace(az: AzLocal, credential: Any, workspace: str = WORKSPACE) -> int:
    response = Arm(az, credential, retry_total=0).send("GET", workspace, ML_API)
    return int(response.status_code)


def test_certificate_in_a_secret_works_within_its_role(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    namespace: str,
    tmp_path: Path,
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "deployer",
        {
            "servicePrincipal": {
                "displayName": "ml-deployer",
                "credential": {"certificate": {"secretName": "deployer-cert"}},
            }
        },
        namespace,
    )
    obj = wait_ready(cluster, "wid", "deployer", namespace, timeout=90)
    status = obj["status"]
    app = application(azlocal, status["clientId"])
    assert app is not None
    assert app.display_name == "ml-deployer"
    assert str(app.id) == status["applicationObjectId"]
    assert f"aml-identity.uid:{obj['metadata']['uid']}" in (app.tags or [])
    [key] = app.key_credentials
    credential_status = status["credential"]
    assert credential_status["kind"] == "Certificate"
    assert credential_status["keyId"] == str(key.key_id)
    assert credential_status.get("previous") is None
    assert credential_status["renewalTime"] < credential_status["notAfter"]

    data = secret_data(cluster, "deployer-cert", namespace)
    assert data["AZURE_CLIENT_ID"].decode() == status["clientId"]
    assert data["AZURE_TENANT_ID"].decode() == azlocal.tenant_id
    assert b"BEGIN CERTIFICATE" in data["tls.crt"]
    assert b"PRIVATE KEY" in data["tls.key"]
    # Only the public certificate went to Entra; the key is nowhere in status or events.
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    key_body = data["tls.key"].decode().splitlines()[1]
    assert key_body not in events
    assert key_body not in json.dumps(obj)
    assert key_body not in operator.logs()

    bind_reader(cluster, namespace, "deployer")
    credential = certificate_credential(
        azlocal,
        status["clientId"],
        str(pem_file(cluster, "deployer-cert", namespace, tmp_path / "c.pem")),
    )
    assert credential.get_token(ARM_SCOPE).token
    wait_until(
        lambda: read_workspace(azlocal, credential) == 200,
        timeout=30,
        what="the certificate principal to read its workspace",
    )
    assert read_workspace(azlocal, credential, OTHER_WORKSPACE) == 403
    refused = Arm(azlocal, credential, retry_total=0).send(
        "PUT", ENDPOINT, ML_API, {"location": "westeurope", "properties": {"authMode": "Key"}}
    )
    assert refused.status_code == 403

    expiry = [
        line
        for line in operator.metrics().splitlines()
        if line.startswith("aml_identity_credential_expiry_timestamp_seconds{")
        and f'namespace="{namespace}"' in line
    ]
    assert len(expiry) == 1
    assert 'slot="current"' in expiry[0]

    # Deletion removes the application (with its service principal) and the Secret.
    cluster.kubectl("delete", "mlrb", "deployer-reader", "-n", namespace)
    cluster.kubectl("delete", "wid", "deployer", "-n", namespace)
    wait_gone(cluster, "wid", "deployer", namespace)
    assert application(azlocal, status["clientId"]) is None
    assert get(cluster, "secret", "deployer-cert", namespace) is None
    with pytest.raises(ClientAuthenticationError):
        certificate_credential(azlocal, status["clientId"], str(tmp_path / "c.pem")).get_token(
            ARM_SCOPE
        )


def test_rotation_keeps_a_working_certificate_at_every_moment(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Short durations; a client re-reads the Secret and signs in over and over, as a
    workload watching its mounted Secret would. Every attempt must succeed."""
    apply(
        cluster,
        "WorkloadIdentity",
        "rotating",
        {
            "servicePrincipal": {
                "displayName": "ml-rotating",
                "credential": {
                    "certificate": {"duration": "60s", "renewBefore": "40s", "overlap": "15s"}
                },
            }
        },
        namespace,
    )
    status = wait_ready(cluster, "wid", "rotating", namespace, timeout=90)["status"]
    client_id = status["clientId"]
    first = status["credential"]["thumbprint"]
    seen: list[str] = []
    failures: list[str] = []
    removed_previous = False
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        data = secret_data(cluster, "rotating-credentials", namespace)
        path = tmp_path / f"attempt-{len(seen)}.pem"
        path.write_bytes(data["client-certificate.pem"])
        thumb = _thumbprint(data["tls.crt"])
        if not seen or seen[-1] != thumb:
            seen.append(thumb)
        try:
            certificate_credential(azlocal, client_id, str(path)).get_token(ARM_SCOPE)
        except ClientAuthenticationError as error:
            failures.append(f"{thumb}: {error.message}")
        current = (get(cluster, "wid", "rotating", namespace) or {}).get("status", {})
        credential = current.get("credential") or {}
        # Done once the status describes the new certificate with no previous one left:
        # the old key was removed after its overlap.
        if (
            len(seen) >= 2
            and credential.get("thumbprint") == seen[-1]
            and credential.get("previous") is None
        ):
            removed_previous = True
            break
        time.sleep(0.5)  # pacing of the client loop, not synchronisation
    assert not failures, failures
    assert seen[0] == first
    assert len(seen) >= 2, f"no rotation observed: {seen}"
    assert removed_previous, "the previous certificate was never retired"
    app = application(azlocal, client_id)
    assert len(app.key_credentials) == 1
    # The retired certificate no longer signs in: it was removed, not left behind.
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        certificate_credential(azlocal, client_id, str(tmp_path / "attempt-0.pem")).get_token(
            ARM_SCOPE
        )
    cluster.kubectl("delete", "wid", "rotating", "-n", namespace)
    wait_gone(cluster, "wid", "rotating", namespace)


def test_client_secret_is_discouraged_but_works_and_orphan_keeps_everything(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    namespace: str,
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "legacy",
        {
            "servicePrincipal": {
                "displayName": "ml-legacy",
                "credential": {"clientSecret": {}},
            },
            "deletionPolicy": "Orphan",
        },
        namespace,
    )
    obj = wait_ready(cluster, "wid", "legacy", namespace, timeout=90)
    status = obj["status"]
    assert status["credential"]["kind"] == "ClientSecret"
    assert status["credential"]["discouraged"] is True
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "discouraged" in ready["message"]
    data = secret_data(cluster, "legacy-credentials", namespace)
    text = data["AZURE_CLIENT_SECRET"].decode()
    assert text not in json.dumps(obj)
    assert text not in operator.logs()
    # Not even its first characters (Entra's hint) in an event or the log.

    def posted() -> str:
        return " ".join(message for _, _, message in events(cluster, namespace, "legacy"))

    wait_until(lambda: "client secret (key " in posted(), timeout=30, what="the Issued event")
    assert f"client secret {text[:3]}" not in posted()
    assert f"client secret {text[:3]}" not in operator.logs()
    credential = secret_credential(azlocal, status["clientId"], text)
    assert credential.get_token(ARM_SCOPE).token

    cluster.kubectl("delete", "wid", "legacy", "-n", namespace)
    wait_gone(cluster, "wid", "legacy", namespace)
    assert application(azlocal, status["clientId"]) is not None
    assert get(cluster, "secret", "legacy-credentials", namespace) is not None
    assert secret_credential(azlocal, status["clientId"], text).get_token(ARM_SCOPE).token


def test_a_secret_the_operator_did_not_write_is_left_alone(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "taken", "-n", namespace, "--from-literal=owner=someone"
    )
    apply(
        cluster,
        "WorkloadIdentity",
        "squatter",
        {
            "servicePrincipal": {
                "displayName": "ml-squatter",
                "credential": {"certificate": {"secretName": "taken"}},
            }
        },
        namespace,
    )
    found = wait_reason(cluster, "wid", "squatter", "NotOwned", namespace, timeout=90)
    assert "Secret taken" in found["message"]
    assert secret_data(cluster, "taken", namespace) == {"owner": b"someone"}
    cluster.kubectl("delete", "wid", "squatter", "-n", namespace)
    wait_gone(cluster, "wid", "squatter", namespace)
    assert secret_data(cluster, "taken", namespace) == {"owner": b"someone"}


def _thumbprint(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(pem)
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303


VAULT_ID = f"{RG_ML}/providers/Microsoft.KeyVault/vaults/kv-ml"


def test_certificate_in_key_vault_never_leaves_the_vault(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    namespace: str,
) -> None:
    """Key Vault makes the key; the operator registers the certificate and never reads the
    secret; a workload allowed to read it fetches it at run time and signs in."""
    from azure.identity import CertificateCredential
    from azure.keyvault.certificates import CertificateClient
    from azure.keyvault.secrets import SecretClient

    vault_url = azlocal.vault_url("kv-ml")
    apply(
        cluster,
        "WorkloadIdentity",
        "vaulted",
        {
            "servicePrincipal": {
                "displayName": "ml-vaulted",
                "credential": {
                    "certificate": {
                        "keyVault": {"vaultUrl": vault_url, "certificateName": "vaulted"}
                    }
                },
            }
        },
        namespace,
    )
    status = wait_ready(cluster, "wid", "vaulted", namespace, timeout=90)["status"]
    # Read as the operator's principal: Certificates Officer reads certificates (an Owner of
    # the subscription holds no data actions in the vault).
    certificates = CertificateClient(
        vault_url, operator_credential(azlocal), connection_verify=str(azlocal.ca_file)
    )
    current = certificates.get_certificate("vaulted")
    assert current.properties is not None
    assert (
        bytes(current.properties.x509_thumbprint).hex().upper()
        == status["credential"]["thumbprint"]
    )
    assert get(cluster, "secret", "vaulted-credentials", namespace) is None

    # The operator holds Certificates Officer only: it cannot read the private key.
    operator_secrets = SecretClient(
        vault_url, operator_credential(azlocal), connection_verify=str(azlocal.ca_file)
    )
    with pytest.raises(HttpResponseError) as refused:
        operator_secrets.get_secret("vaulted")
    assert refused.value.status_code == 403

    # The workload: legacy-ci, granted Key Vault Secrets User on the vault by a binding.
    legacy = azlocal.principal("legacy-ci")
    apply(
        cluster,
        "MLRoleBinding",
        "vaulted-secret-reader",
        {
            "role": {"builtIn": "Key Vault Secrets User"},
            "subjects": [{"principalId": legacy.object_id, "principalType": "ServicePrincipal"}],
            "scope": {"resourceId": VAULT_ID},
        },
        namespace,
    )
    wait_ready(cluster, "mlrb", "vaulted-secret-reader", namespace)
    bind_reader(cluster, namespace, "vaulted")
    runtime = SecretClient(
        vault_url,
        secret_credential(azlocal, legacy.app_id, azlocal.issued.secrets["legacy-ci"]),
        connection_verify=str(azlocal.ca_file),
    )
    pem = runtime.get_secret("vaulted").value
    assert pem is not None
    credential = CertificateCredential(
        azlocal.tenant_id,
        status["clientId"],
        certificate_data=pem.encode(),
        authority=azlocal.url,
        disable_instance_discovery=True,
        connection_verify=str(azlocal.ca_file),
    )
    wait_until(
        lambda: read_workspace(azlocal, credential) == 200,
        timeout=30,
        what="the vault certificate's principal to read its workspace",
    )
    assert read_workspace(azlocal, credential, OTHER_WORKSPACE) == 403

    cluster.kubectl("delete", "mlrb", "--all", "-n", namespace)
    cluster.kubectl("delete", "wid", "vaulted", "-n", namespace)
    wait_gone(cluster, "wid", "vaulted", namespace)
    assert application(azlocal, status["clientId"]) is None
    with pytest.raises(ResourceNotFoundError):
        certificates.get_certificate("vaulted")


def test_failing_renewal_is_reported_before_and_after_expiry(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """Graph refuses every key change: the resource says the certificate is expiring, then
    that it expired; once Graph recovers a new certificate is issued with a Warning."""
    apply(
        cluster,
        "WorkloadIdentity",
        "stuck",
        {
            "servicePrincipal": {
                "displayName": "ml-stuck",
                "credential": {"certificate": {"duration": "30s", "renewBefore": "24s"}},
            }
        },
        namespace,
    )
    first = wait_ready(cluster, "wid", "stuck", namespace, timeout=90)["status"]["credential"]
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "PATCH",
            "pathPattern": f"^/v1.0/applications/{_object_id(cluster, namespace)}$",
            "count": 1000,
            "status": 429,
            "code": "TooManyRequests",
            "message": "Graph keeps throttling",
            "retryAfter": 1,
        },
    )
    try:
        expiring = wait_reason(cluster, "wid", "stuck", "CredentialExpiring", namespace, timeout=60)
        assert first["keyId"] in expiring["message"]
        assert "renewal is failing" in expiring["message"]
        expired = wait_reason(cluster, "wid", "stuck", "CredentialExpired", namespace, timeout=60)
        assert first["keyId"] in expired["message"]
    finally:
        azlocal.admin("DELETE", "faults")
    renewed = wait_until(
        lambda: _renewed(cluster, namespace, first["keyId"]),
        timeout=60,
        what="a new certificate once Graph recovered",
    )
    assert renewed["thumbprint"] != first["thumbprint"]
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    warnings = {(e["reason"], e["type"]) for e in events if "stuck" in e["involvedObject"]["name"]}
    assert ("CredentialExpiring", "Warning") in warnings
    assert ("CredentialExpired", "Warning") in warnings
    cluster.kubectl("delete", "wid", "stuck", "-n", namespace)
    wait_gone(cluster, "wid", "stuck", namespace)


def _object_id(cluster: LocalCluster, namespace: str) -> str:
    obj = get(cluster, "wid", "stuck", namespace)
    assert obj is not None
    return str(obj["status"]["applicationObjectId"])


def _renewed(cluster: LocalCluster, namespace: str, old_key: str) -> dict[str, Any] | None:
    obj = get(cluster, "wid", "stuck", namespace) or {}
    ready: dict[str, Any] = next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {}
    )
    credential = obj.get("status", {}).get("credential") or {}
    if ready.get("reason") == "Reconciled" and credential.get("keyId") not in (None, old_key):
        return dict(credential)
    return None


def test_key_vault_rotation_registers_before_it_merges(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """Each new vault version is a certificate the application already accepts; the
    previous key stays registered through the overlap and is then removed."""
    from azure.keyvault.certificates import CertificateClient

    vault_url = azlocal.vault_url("kv-ml")
    name = f"rot-{namespace}"[:60]
    apply(
        cluster,
        "WorkloadIdentity",
        "vault-rotating",
        {
            "servicePrincipal": {
                "displayName": "ml-vault-rotating",
                "credential": {
                    "certificate": {
                        "duration": "60s",
                        "renewBefore": "40s",
                        "overlap": "10s",
                        "keyVault": {"vaultUrl": vault_url, "certificateName": name},
                    }
                },
            }
        },
        namespace,
    )
    first = wait_ready(cluster, "wid", "vault-rotating", namespace, timeout=90)["status"]
    certificates = CertificateClient(
        vault_url, operator_credential(azlocal), connection_verify=str(azlocal.ca_file)
    )

    def served() -> set[str]:
        """Thumbprints the application accepts now (customKeyIdentifier is the SHA-1)."""
        app = application(azlocal, first["clientId"])
        return {
            bytes(k.custom_key_identifier).hex().upper()
            for k in app.key_credentials or []
            if k.custom_key_identifier
        }

    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = certificates.get_certificate(name)
        assert current.properties is not None
        thumb = bytes(current.properties.x509_thumbprint).hex().upper()
        if not seen or seen[-1] != thumb:
            seen.append(thumb)
            # The version the vault serves is always registered on the application.
            assert thumb in served(), f"vault serves {thumb}, application accepts {served()}"
        status = (get(cluster, "wid", "vault-rotating", namespace) or {}).get("status", {})
        credential = status.get("credential") or {}
        if (
            len(seen) >= 2
            and credential.get("thumbprint") == thumb
            and not credential.get("previous")
        ):
            break
        time.sleep(0.5)  # pacing of the observer, not synchronisation
    assert len(seen) >= 2, f"no rotation observed: {seen}"
    versions = list(certificates.list_properties_of_certificate_versions(name))
    assert len(versions) >= 2
    app = application(azlocal, first["clientId"])
    assert len(app.key_credentials) == 1
    tags = certificates.get_certificate(name).properties.tags or {}  # type: ignore[union-attr]
    assert "identity.aml.dev/previous-key-id" not in tags
    cluster.kubectl("delete", "wid", "vault-rotating", "-n", namespace)
    wait_gone(cluster, "wid", "vault-rotating", namespace)


def test_a_lagging_graph_read_never_drops_the_served_certificate(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """Graph's replicas may answer from before the last write. The key list is rewritten
    whole on every change, so a read that misses the key just registered must not lead to
    a rewrite without it (a second certificate, the served one dropped): the operator
    re-reads, waits until Graph shows the key, and only then calls it Ready."""
    lag = 12.0  # more than two of the test operator's resyncs
    azlocal.admin("PATCH", "settings", {"graphReadLagSeconds": lag})
    try:
        apply(
            cluster,
            "WorkloadIdentity",
            "lagged",
            {
                "servicePrincipal": {
                    "displayName": f"ml-lagged-{namespace}",
                    "credential": {"certificate": {"secretName": "lagged-cert"}},
                }
            },
            namespace,
        )
        status = wait_ready(cluster, "wid", "lagged", namespace, timeout=120)["status"]
        object_id = status["applicationObjectId"]

        def application_requests(method: str) -> list[dict[str, Any]]:
            return [
                r
                for r in azlocal.admin("GET", "requests")
                if r["method"] == method and object_id in r["path"]
            ]

        reads = len(application_requests("GET"))
        # Two more looks at the application (resyncs) after Ready.
        wait_until(
            lambda: len(application_requests("GET")) >= reads + 2,
            timeout=60,
            what="two resyncs of the service principal",
        )
        key_writes = application_requests("PATCH")
        assert len(key_writes) == 1, f"the key list was rewritten {len(key_writes)} times"
        app = application(azlocal, status["clientId"])
        [key] = app.key_credentials
        served = get(cluster, "secret", "lagged-cert", namespace)
        assert served is not None
        assert served["metadata"]["annotations"]["identity.aml.dev/key-id"] == str(key.key_id)
    finally:
        azlocal.admin("PATCH", "settings", {"graphReadLagSeconds": 0})


def test_a_signing_request_left_open_is_cancelled_when_the_identity_goes(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """Issuing stopped half-way (the merge keeps failing): the vault holds an open request
    and its key pair. Deleting the WorkloadIdentity closes it, with deletionPolicy Orphan
    too (the request would never be merged now)."""
    from azure.keyvault.certificates import CertificateClient

    vault_url = azlocal.vault_url("kv-ml")
    certificates = CertificateClient(
        vault_url, operator_credential(azlocal), connection_verify=str(azlocal.ca_file)
    )
    names = {policy: f"open-{policy.lower()}-{namespace}"[:60] for policy in ("Delete", "Orphan")}
    azlocal.admin(
        "POST",
        "faults",
        {"method": "POST", "pathPattern": "/pending/merge", "count": 1000, "status": 503},
    )
    try:
        for policy, name in names.items():
            apply(
                cluster,
                "WorkloadIdentity",
                name,
                {
                    "servicePrincipal": {
                        "displayName": f"ml-{name}",
                        "credential": {
                            "certificate": {
                                "keyVault": {"vaultUrl": vault_url, "certificateName": name}
                            }
                        },
                    },
                    "deletionPolicy": policy,
                },
                namespace,
            )

        def open_request(name: str) -> bool:
            try:
                return certificates.get_certificate_operation(name).status == "inProgress"
            except ResourceNotFoundError:
                return False

        for name in names.values():
            wait_until(lambda n=name: open_request(n), timeout=60, what=f"{name}'s open request")  # type: ignore[misc]
        for name in names.values():
            cluster.kubectl("delete", "wid", name, "-n", namespace, "--wait=false")
        for name in names.values():
            wait_gone(cluster, "wid", name, namespace, timeout=60)
            assert not open_request(name), f"{name}'s signing request was left open"
    finally:
        azlocal.admin("DELETE", "faults")


def test_removing_the_credential_from_the_spec_removes_its_keys_and_secret(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    principal = {"displayName": f"ml-dropped-{namespace}"}
    with_credential = {
        "servicePrincipal": {
            **principal,
            "credential": {"certificate": {"secretName": "dropped-cert"}},
        }
    }
    apply(cluster, "WorkloadIdentity", "dropped", with_credential, namespace)
    status = wait_ready(cluster, "wid", "dropped", namespace, timeout=90)["status"]
    assert status["credential"]["secretName"] == "dropped-cert"
    assert len(application(azlocal, status["clientId"]).key_credentials) == 1
    apply(cluster, "WorkloadIdentity", "dropped", {"servicePrincipal": principal}, namespace)
    wait_until(
        lambda: get(cluster, "secret", "dropped-cert", namespace) is None,
        timeout=30,
        what="the credential's Secret to be deleted",
    )
    wait_until(
        lambda: not application(azlocal, status["clientId"]).key_credentials,
        timeout=30,
        what="the issued certificate to be removed from the application",
    )
    obj = wait_ready(cluster, "wid", "dropped", namespace)
    assert obj["status"].get("credential") is None
    assert application(azlocal, status["clientId"]) is not None, "the application stays"
    wait_until(
        lambda: any(e[1] == "CredentialRemoved" for e in events(cluster, namespace, "dropped")),
        timeout=30,
        what="a CredentialRemoved event",
    )
