"""What the operator observes in Azure: plain values shared by the Azure adapter (which
fills them) and the planners (which compare them with the spec). No SDK types here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Identity:
    id: str
    name: str
    location: str
    tags: dict[str, str]
    client_id: str
    principal_id: str
    tenant_id: str


@dataclass(frozen=True)
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    name: str  # GUID
    role_name: str
    role_type: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    data_actions: tuple[str, ...]
    not_data_actions: tuple[str, ...]
    assignable_scopes: tuple[str, ...]


@dataclass(frozen=True)
class RoleAssignment:
    id: str
    name: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str
    condition: str | None = None  # ABAC (conditionVersion 2.0); None: unconditional
    description: str = ""


@dataclass(frozen=True)
class KeyCredential:
    """A certificate registered on an Entra application (public part only)."""

    key_id: str
    display_name: str
    thumbprint: str  # SHA-1, upper-case hex, as Entra shows it
    not_before: datetime
    not_after: datetime
    der: bytes | None = None  # the certificate; Graph returns it only when selected


@dataclass(frozen=True)
class PasswordCredential:
    """A client secret registered on an application; Graph never returns the text."""

    key_id: str
    display_name: str
    hint: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Application:
    object_id: str
    app_id: str
    display_name: str
    unique_name: str | None
    tags: tuple[str, ...]
    keys: tuple[KeyCredential, ...] = ()
    passwords: tuple[PasswordCredential, ...] = ()


@dataclass(frozen=True)
class ServicePrincipal:
    object_id: str
    app_id: str


@dataclass(frozen=True)
class NewKey:
    """A certificate to register on an application: the public DER and its validity."""

    key_id: str
    display_name: str
    der: bytes
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class VaultCertificate:
    """The Key Vault certificate version workloads fetch now, and its tags."""

    version: str
    der: bytes
    tags: dict[str, str]
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class PendingRequest:
    """A Key Vault certificate signing request waiting for its merge."""

    csr: bytes  # DER
