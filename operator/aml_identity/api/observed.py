"""What the operator observes in Azure: plain values shared by the Azure adapter (which
fills them) and the planners (which compare them with the spec). No SDK types here."""

from __future__ import annotations

from dataclasses import dataclass


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
