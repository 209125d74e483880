"""What a vault holds: certificates with their versions, pending operation and deletion.

Plain dataclasses, saved with the rest of the Store. Private keys are kept in clear
(PKCS#8 PEM) in memory and in a saved state file: azlocal is a test emulator, not a
key store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VAULT_TYPE = "Microsoft.KeyVault/vaults"


@dataclass
class CertificateVersion:
    version: str  # 32 hex digits, as Key Vault makes them
    created: float
    not_before: float
    expires: float
    cer_b64: str  # the X.509 certificate, DER, base64
    key_pem: str  # the private key, PKCS#8 PEM (test emulator: stored in clear)
    policy: dict[str, Any]  # the policy it was issued under (wire JSON)
    enabled: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CertificateVersion:
        return cls(**raw)


@dataclass
class PendingOperation:
    """A create in flight: answers `inProgress` for `polls_left` more polls."""

    request_id: str
    csr_b64: str
    polls_left: int
    result: CertificateVersion
    status: str = "inProgress"  # or "completed"
    # "Unknown": the vault made only the key and a signing request; the operation stays
    # in progress until a certificate for that key is merged.
    issuer: str = "Self"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PendingOperation:
        return cls(**{**raw, "result": CertificateVersion.from_json(raw["result"])})


@dataclass
class StoredCertificate:
    name: str
    versions: list[CertificateVersion] = field(default_factory=list)  # completed, oldest first
    pending: PendingOperation | None = None
    deleted_at: float | None = None  # soft-deleted: only the deleted-certificate calls see it
    scheduled_purge: float | None = None

    @property
    def latest(self) -> CertificateVersion | None:
        return self.versions[-1] if self.versions else None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StoredCertificate:
        return cls(
            name=raw["name"],
            versions=[CertificateVersion.from_json(v) for v in raw["versions"]],
            pending=PendingOperation.from_json(raw["pending"]) if raw.get("pending") else None,
            deleted_at=raw.get("deleted_at"),
            scheduled_purge=raw.get("scheduled_purge"),
        )


@dataclass
class VaultData:
    """The data plane of one vault (the ARM resource itself lives in Store.resources)."""

    certificates: dict[str, StoredCertificate] = field(default_factory=dict)  # lower-case name

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> VaultData:
        return cls(
            certificates={
                k: StoredCertificate.from_json(v) for k, v in raw.get("certificates", {}).items()
            }
        )
