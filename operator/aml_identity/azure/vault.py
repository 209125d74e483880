"""Thin async adapter over azure-keyvault-certificates, for certificates whose private key
never leaves the vault.

The operator asks the vault for a key pair and a certificate signing request (issuer
"Unknown"), has the request's public key certified, registers that certificate on the
application, and only then merges it into the vault, which makes it the version
workloads fetch. So a workload can never fetch a certificate Entra does not accept yet.
The operator never reads the secret (the private key): Key Vault Certificates Officer
is enough, and it holds no secret-read permission.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.certificates import CertificateContentType, CertificatePolicy, KeyType
from azure.keyvault.certificates.aio import CertificateClient

from aml_identity.api.observed import PendingRequest, VaultCertificate
from aml_identity.azure.errors import aware, call, maybe
from aml_identity.azure.gateway import CountRequests
from aml_identity.azure.transport import AuditWrites
from aml_identity.settings import Settings


@dataclass
class VaultGateway:
    credential: AsyncTokenCredential
    settings: Settings
    transport: AioHttpTransport
    _clients: dict[str, CertificateClient] = field(default_factory=dict)

    def client(self, vault_url: str) -> CertificateClient:
        key = vault_url.rstrip("/").lower()
        if key not in self._clients:
            self._clients[key] = CertificateClient(
                vault_url,
                self.credential,
                transport=self.transport,
                per_call_policies=[AuditWrites()],
                per_retry_policies=[CountRequests()],
            )
        return self._clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()

    async def current(self, vault_url: str, name: str) -> VaultCertificate | None:
        async def run() -> VaultCertificate:
            cert = await self.client(vault_url).get_certificate(name)
            props = cert.properties
            if props is None:
                raise ValueError(f"Key Vault returned certificate {name} without properties")
            return VaultCertificate(
                version=str(props.version),
                der=bytes(cert.cer or b""),
                tags=dict(props.tags or {}),
                not_before=aware(props.not_before),
                not_after=aware(props.expires_on),
            )

        return await maybe(run)

    async def pending(self, vault_url: str, name: str) -> PendingRequest | None:
        """The open certificate request, if there is one still waiting for a merge."""

        async def run() -> PendingRequest | None:
            operation = await self.client(vault_url).get_certificate_operation(name)
            if (operation.status or "").lower() != "inprogress" or not operation.csr:
                return None
            return PendingRequest(csr=bytes(operation.csr))

        return await maybe(run)

    async def request(
        self, vault_url: str, name: str, subject: str, tags: dict[str, str]
    ) -> PendingRequest:
        """Have the vault generate an exportable RSA key and a signing request for it."""
        policy = CertificatePolicy(
            issuer_name="Unknown",
            subject=f"CN={subject}",
            exportable=True,
            key_type=KeyType.rsa,
            key_size=2048,
            reuse_key=False,
            content_type=CertificateContentType.pem,
        )

        async def run() -> PendingRequest:
            created = await self.client(vault_url).create_certificate(name, policy, tags=tags)
            csr = getattr(created, "csr", None)
            if not csr:
                raise ValueError("Key Vault returned no certificate signing request")
            return PendingRequest(csr=bytes(csr))

        return await call(run)

    async def merge(self, vault_url: str, name: str, der: bytes, tags: dict[str, str]) -> None:
        await call(lambda: self.client(vault_url).merge_certificate(name, [der], tags=tags))

    async def set_tags(self, vault_url: str, name: str, version: str, tags: dict[str, str]) -> None:
        await call(
            lambda: self.client(vault_url).update_certificate_properties(name, version, tags=tags)
        )

    async def cancel(self, vault_url: str, name: str) -> None:
        """Delete the open certificate request (the key pair Key Vault made for it)."""

        async def run() -> None:
            await self.client(vault_url).delete_certificate_operation(name)

        await maybe(run)

    async def delete(self, vault_url: str, name: str) -> None:
        async def run() -> None:
            await self.client(vault_url).delete_certificate(name)

        await maybe(run)
