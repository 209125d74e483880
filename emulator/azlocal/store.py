"""azlocal's state: tenant, subscriptions, ARM resources, principals, RBAC.

Everything lives in memory in plain dataclasses, and can be saved to and loaded from
a JSON file. Keys of the dictionaries are canonical (lower-case) ids; the objects keep
the case they were created with, as ARM does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import armids
from .keyvault.model import VaultData

PrincipalKind = Literal["User", "Group", "ServicePrincipal"]
BUILTIN_ROLE_ID_PREFIX = "/providers/Microsoft.Authorization/roleDefinitions/"


@dataclass
class SecretCredential:
    key_id: str
    sha256: str  # of the secret text; the text itself is never stored
    hint: str
    start: float
    end: float
    display_name: str = ""


@dataclass
class CertificateCredential:
    key_id: str
    der_b64: str  # public certificate only
    thumbprint_sha1: str  # hex upper case, as Entra shows it
    thumbprint_sha256: str
    start: float
    end: float
    display_name: str = ""


@dataclass
class Principal:
    object_id: str
    kind: PrincipalKind
    display_name: str
    created_at: float
    app_id: str | None = None  # service principals and managed identities
    members: list[str] = field(default_factory=list)  # groups
    secrets: list[SecretCredential] = field(default_factory=list)
    certificates: list[CertificateCredential] = field(default_factory=list)
    # Managed identities: the ARM id of the identity, or of the resource whose
    # system-assigned identity this is. Their federated credentials live in ARM.
    managed_identity_of: str | None = None
    service_principal_type: str = "Application"  # or "ManagedIdentity"
    # Microsoft Graph application permissions (app roles), e.g. Application.ReadWrite.OwnedBy;
    # they go into the `roles` claim of tokens for Graph.
    graph_permissions: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)  # object ids (service principals)
    tags: list[str] = field(default_factory=list)


@dataclass
class Application:
    """An Entra application registration (Microsoft Graph's `application`).

    Its credentials are what the token endpoint checks for its appId, together with any
    seeded on the service principal. The private keys are never here: only public
    certificates and secret hashes.
    """

    object_id: str
    app_id: str
    display_name: str
    created_at: float
    unique_name: str | None = None
    sign_in_audience: str = "AzureADMyOrg"
    notes: str | None = None
    tags: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)  # object ids of owning principals
    certificates: list[CertificateCredential] = field(default_factory=list)
    secrets: list[SecretCredential] = field(default_factory=list)
    federated: list[dict[str, Any]] = field(default_factory=list)  # Graph FIC bodies


@dataclass
class ArmResource:
    id: str
    type: str
    name: str
    location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] | None = None
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.location is not None:
            body["location"] = self.location
        if self.location is not None:  # tracked resources carry tags; proxy resources do not
            body["tags"] = dict(self.tags)
        if self.identity is not None:
            body["identity"] = dict(self.identity)
        body["properties"] = json.loads(json.dumps(self.properties))
        return body


@dataclass
class RoleDefinition:
    name: str  # the GUID
    role_name: str
    description: str
    role_type: Literal["BuiltInRole", "CustomRole"]
    permissions: list[dict[str, list[str]]]
    assignable_scopes: list[str]
    created_at: float = 0.0

    def id_at(self, scope: str | None) -> str:
        """Built-ins are addressed at the tenant root or under a subscription."""
        sub = armids.subscription_of(scope or "")
        if self.role_type == "CustomRole":
            sub = (
                armids.subscription_of(self.assignable_scopes[0]) if self.assignable_scopes else sub
            )
        prefix = f"/subscriptions/{sub}" if sub else ""
        return f"{prefix}{BUILTIN_ROLE_ID_PREFIX}{self.name}"

    def to_json(self, scope: str | None) -> dict[str, Any]:
        return {
            "id": self.id_at(scope),
            "name": self.name,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.role_name,
                "type": self.role_type,
                "description": self.description,
                "assignableScopes": list(self.assignable_scopes),
                "permissions": [dict(p) for p in self.permissions],
            },
        }


@dataclass
class RoleAssignment:
    name: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str
    created_at: float
    created_by: str
    description: str | None = None
    condition: str | None = None
    condition_version: str | None = None
    # Set when a PUT changes description or condition (the only updatable properties).
    updated_at: float | None = None
    updated_by: str | None = None

    @property
    def id(self) -> str:
        scope = "" if self.scope == "/" else self.scope
        return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{self.name}"

    def to_json(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "roleDefinitionId": self.role_definition_id,
            "principalId": self.principal_id,
            "principalType": self.principal_type,
            "scope": self.scope,
            "createdOn": _iso(self.created_at),
            "updatedOn": _iso(self.created_at),
            "createdBy": self.created_by,
            "updatedBy": self.created_by,
        }
        for key, value in (
            ("description", self.description),
            ("condition", self.condition),
            ("conditionVersion", self.condition_version),
        ):
            if value is not None:
                properties[key] = value
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": properties,
        }


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Store:
    tenant_id: str
    tenant_name: str = "azlocal"
    subscriptions: dict[str, str] = field(default_factory=dict)  # id -> display name
    resources: dict[str, ArmResource] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)
    role_definitions: dict[str, RoleDefinition] = field(default_factory=dict)
    role_assignments: dict[str, RoleAssignment] = field(default_factory=dict)
    operator: dict[str, str] = field(default_factory=dict)  # seed's operator principal
    administrator: dict[str, str] = field(default_factory=dict)  # seed's administrator
    applications: dict[str, Application] = field(default_factory=dict)  # object id -> app
    # Key Vault data planes by canonical vault id (the vaults themselves are resources).
    vaults: dict[str, VaultData] = field(default_factory=dict)

    # --- resources ---
    def get(self, resource_id: str) -> ArmResource | None:
        return self.resources.get(armids.norm(resource_id))

    def put(self, resource: ArmResource) -> None:
        self.resources[armids.norm(resource.id)] = resource

    def remove(self, resource_id: str) -> ArmResource | None:
        """Remove a resource and everything below it."""
        key = armids.norm(resource_id)
        removed = self.resources.pop(key, None)
        for child in [k for k in self.resources if k.startswith(key + "/")]:
            del self.resources[child]
        return removed

    def children(self, parent_id: str, type_: str) -> list[ArmResource]:
        """Direct or nested resources of `type_` under `parent_id` (creation order)."""
        prefix = armids.norm(parent_id) + "/"
        t = type_.lower()
        return [
            r for k, r in self.resources.items() if k.startswith(prefix) and r.type.lower() == t
        ]

    # --- principals ---
    def principal_by_app_id(self, app_id: str) -> Principal | None:
        a = app_id.lower()
        return next(
            (p for p in self.principals.values() if p.app_id and p.app_id.lower() == a), None
        )

    def application_by_app_id(self, app_id: str) -> Application | None:
        a = app_id.lower()
        return next((x for x in self.applications.values() if x.app_id.lower() == a), None)

    def groups_of(self, object_id: str) -> list[str]:
        oid = object_id.lower()
        return [
            p.object_id
            for p in self.principals.values()
            if p.kind == "Group" and oid in (m.lower() for m in p.members)
        ]

    # --- role definitions ---
    def role_definition(self, id_or_guid: str) -> RoleDefinition | None:
        return self.role_definitions.get(armids.last_segment(id_or_guid).lower())

    # --- persistence ---
    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> Store:
        raw = json.loads(path.read_text())
        store = cls(tenant_id=raw["tenant_id"], tenant_name=raw["tenant_name"])
        store.subscriptions = raw["subscriptions"]
        store.operator = raw.get("operator", {})
        store.administrator = raw.get("administrator", {})
        store.resources = {k: ArmResource(**v) for k, v in raw["resources"].items()}
        store.principals = {
            k: Principal(
                **{
                    **v,
                    "secrets": [SecretCredential(**s) for s in v["secrets"]],
                    "certificates": [CertificateCredential(**c) for c in v["certificates"]],
                }
            )
            for k, v in raw["principals"].items()
        }
        store.applications = {
            k: Application(
                **{
                    **v,
                    "secrets": [SecretCredential(**s) for s in v["secrets"]],
                    "certificates": [CertificateCredential(**c) for c in v["certificates"]],
                }
            )
            for k, v in raw.get("applications", {}).items()
        }
        store.role_definitions = {
            k: RoleDefinition(**v) for k, v in raw["role_definitions"].items()
        }
        store.role_assignments = {
            k: RoleAssignment(**v) for k, v in raw["role_assignments"].items()
        }
        store.vaults = {k: VaultData.from_json(v) for k, v in raw.get("vaults", {}).items()}
        return store
