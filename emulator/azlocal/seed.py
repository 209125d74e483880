"""Build a Store from a YAML seed (see data/default-seed.yaml for the format)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from . import abac
from .keyvault.seed import add_vault
from .store import (
    Application,
    ArmResource,
    CertificateCredential,
    Principal,
    RoleAssignment,
    RoleDefinition,
    SecretCredential,
    Store,
)

DATA = Path(__file__).parent / "data"
DEFAULT_SEED = DATA / "default-seed.yaml"
BUILTIN_ROLES = DATA / "builtin_roles.yaml"
NAMESPACE = uuid.UUID("6b0f1d1e-6a6e-4f57-9c1e-0d7d8a9b1a01")
ML = "Microsoft.MachineLearningServices"
YEAR = 365 * 24 * 3600


def stable_id(*parts: str) -> str:
    """Deterministic ids, so a seed gives the same world every time."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


@dataclass
class IssuedCredentials:
    """Credentials generated at start-up; only the process that started azlocal sees them."""

    secrets: dict[str, str] = field(default_factory=dict)  # principal name -> secret text
    certificates: dict[str, Path] = field(default_factory=dict)  # name -> PEM (cert + key)

    def save(self, path: Path) -> None:
        """Kept beside a saved state (mode 0600): the store holds only secret hashes."""
        path.write_text(
            json.dumps(
                {
                    "secrets": self.secrets,
                    "certificates": {k: str(v) for k, v in self.certificates.items()},
                }
            )
        )
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> IssuedCredentials:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(raw["secrets"], {k: Path(v) for k, v in raw["certificates"].items()})


def load(path: Path, credentials_dir: Path, now: float) -> tuple[Store, IssuedCredentials]:
    seed = yaml.safe_load(path.read_text())
    tenant = seed["tenant"]
    store = Store(tenant_id=tenant["id"].lower(), tenant_name=tenant.get("name", "azlocal"))
    issued = IssuedCredentials()
    for role in yaml.safe_load(BUILTIN_ROLES.read_text())["roles"]:
        store.role_definitions[role["id"].lower()] = RoleDefinition(
            name=role["id"].lower(),
            role_name=role["roleName"],
            description=role.get("description", ""),
            role_type="BuiltInRole",
            permissions=[role["permissions"]],
            assignable_scopes=["/"],
        )
    for sub in seed.get("subscriptions", []):
        _subscription(store, sub, now)
    names: dict[str, str] = {}
    for entry in seed.get("principals", []):
        principal = _principal(store, entry, now, issued, credentials_dir)
        names[entry["name"].lower()] = principal.object_id
    for entry in seed.get("principals", []):
        if entry.get("members"):
            store.principals[names[entry["name"].lower()]].members = [
                names[m.lower()] for m in entry["members"]
            ]
    for role in seed.get("customRoles", []):
        guid = role.get("id") or stable_id("role", role["roleName"])
        store.role_definitions[guid.lower()] = RoleDefinition(
            name=guid.lower(),
            role_name=role["roleName"],
            description=role.get("description", ""),
            role_type="CustomRole",
            permissions=[
                {
                    "actions": role.get("actions", []),
                    "notActions": role.get("notActions", []),
                    "dataActions": role.get("dataActions", []),
                    "notDataActions": role.get("notDataActions", []),
                }
            ],
            assignable_scopes=role["assignableScopes"],
            created_at=now,
        )
    for assignment in seed.get("roleAssignments", []):
        _assignment(store, assignment, names, now)
    store.operator = dict(seed.get("operator", {}))
    store.administrator = dict(seed.get("administrator", {}))
    for role, marked in (("operator", store.operator), ("administrator", store.administrator)):
        if marked.get("principal") and marked["principal"].lower() not in names:
            raise ValueError(f"seed: {role} principal {marked['principal']!r} is not seeded")
    return store, issued


def _subscription(store: Store, sub: dict[str, Any], now: float) -> None:
    sid = sub["id"].lower()
    store.subscriptions[sid] = sub.get("name", sid)
    for group in sub.get("resourceGroups", []):
        location = group.get("location", "westeurope")
        gid = f"/subscriptions/{sid}/resourceGroups/{group['name']}"
        store.put(
            ArmResource(
                id=gid,
                type="Microsoft.Resources/resourceGroups",
                name=group["name"],
                location=location,
                tags=group.get("tags", {}),
                properties={"provisioningState": "Succeeded"},
                created_at=now,
            )
        )
        for ws in group.get("workspaces", []):
            wid = f"{gid}/providers/{ML}/workspaces/{ws['name']}"
            store.put(
                _ml(
                    store,
                    wid,
                    f"{ML}/workspaces",
                    ws["name"],
                    location,
                    now,
                    identity=True,
                    properties={"friendlyName": ws["name"], "provisioningState": "Succeeded"},
                )
            )
            for compute in ws.get("computes", []):
                cid = f"{wid}/computes/{compute['name']}"
                store.put(
                    _ml(
                        store,
                        cid,
                        f"{ML}/workspaces/computes",
                        compute["name"],
                        location,
                        now,
                        identity=compute.get("systemAssignedIdentity", False),
                        properties={
                            "computeType": compute.get("type", "AmlCompute"),
                            "provisioningState": "Succeeded",
                        },
                    )
                )
            for endpoint in ws.get("onlineEndpoints", []):
                eid = f"{wid}/onlineEndpoints/{endpoint['name']}"
                store.put(
                    _ml(
                        store,
                        eid,
                        f"{ML}/workspaces/onlineEndpoints",
                        endpoint["name"],
                        location,
                        now,
                        properties={
                            "authMode": "Key",
                            "provisioningState": "Succeeded",
                            "scoringUri": f"https://{endpoint['name']}.{location}.inference.ml.azure.com/score",
                            "traffic": {
                                d: 100 // max(1, len(endpoint.get("deployments", [])))
                                for d in endpoint.get("deployments", [])
                            },
                        },
                    )
                )
                for deployment in endpoint.get("deployments", []):
                    store.put(
                        _ml(
                            store,
                            f"{eid}/deployments/{deployment}",
                            f"{ML}/workspaces/onlineEndpoints/deployments",
                            deployment,
                            location,
                            now,
                            properties={
                                "provisioningState": "Succeeded",
                                "instanceType": "Standard_DS3_v2",
                            },
                        )
                    )
        for registry in group.get("registries", []):
            rid = f"{gid}/providers/{ML}/registries/{registry['name']}"
            store.put(
                _ml(
                    store,
                    rid,
                    f"{ML}/registries",
                    registry["name"],
                    location,
                    now,
                    properties={"provisioningState": "Succeeded"},
                )
            )
        for vault in group.get("keyVaults", []):
            add_vault(store, gid, vault, location, now)
        for resource in group.get("resources", []):
            rid = f"{gid}/providers/{resource['type']}/{resource['name']}"
            store.put(
                _ml(
                    store,
                    rid,
                    resource["type"],
                    resource["name"],
                    location,
                    now,
                    identity=resource.get("systemAssignedIdentity", False),
                    properties={},
                )
            )


def _ml(
    store: Store,
    rid: str,
    type_: str,
    name: str,
    location: str,
    now: float,
    *,
    identity: bool = False,
    properties: dict[str, Any],
) -> ArmResource:
    resource = ArmResource(
        id=rid, type=type_, name=name, location=location, properties=properties, created_at=now
    )
    if identity:
        principal_id, client_id = stable_id("principal", rid), stable_id("client", rid)
        resource.identity = {
            "type": "SystemAssigned",
            "principalId": principal_id,
            "tenantId": store.tenant_id,
            "clientId": client_id,
        }
        store.principals[principal_id] = Principal(
            object_id=principal_id,
            kind="ServicePrincipal",
            display_name=name,
            created_at=now,
            app_id=client_id,
            managed_identity_of=rid,
            service_principal_type="ManagedIdentity",
        )
    return resource


def _principal(
    store: Store,
    entry: dict[str, Any],
    now: float,
    issued: IssuedCredentials,
    credentials_dir: Path,
) -> Principal:
    kind = entry["kind"]
    name = entry["name"]
    object_id = (entry.get("objectId") or stable_id("principal", kind, name)).lower()
    principal = Principal(
        object_id=object_id,
        kind=kind,
        display_name=name,
        created_at=now - 24 * 3600,  # seeded principals are long replicated
        app_id=(entry.get("appId") or stable_id("app", name)).lower()
        if kind == "ServicePrincipal"
        else None,
    )
    if entry.get("secret"):
        text = secrets.token_urlsafe(30)
        principal.secrets.append(make_secret(text, now, now + YEAR))
        issued.secrets[name] = text
    if entry.get("certificate"):
        credentials_dir.mkdir(parents=True, exist_ok=True)
        pem_path = credentials_dir / f"{name}.pem"
        principal.certificates.append(make_certificate(name, pem_path, now))
        issued.certificates[name] = pem_path
    principal.graph_permissions = list(entry.get("graphPermissions") or [])
    store.principals[object_id] = principal
    if kind == "ServicePrincipal" and principal.app_id:
        # Every service principal of an application has its registration; seeded ones
        # are owned by nobody, so an OwnedBy caller can never touch them.
        store.applications[stable_id("application", name)] = Application(
            object_id=stable_id("application", name),
            app_id=principal.app_id,
            display_name=name,
            created_at=principal.created_at,
        )
    return principal


def make_secret(text: str, start: float, end: float) -> SecretCredential:
    return SecretCredential(
        key_id=str(uuid.uuid4()),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        hint=text[:3],
        start=start,
        end=end,
    )


def make_certificate(
    name: str,
    pem_path: Path,
    now: float,
    *,
    not_before: float | None = None,
    not_after: float | None = None,
) -> CertificateCredential:
    """A self-signed RSA certificate; the PEM (cert + key) goes to pem_path, mode 0600."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = dt.datetime.fromtimestamp(not_before if not_before is not None else now - 3600, dt.UTC)
    end = dt.datetime.fromtimestamp(not_after if not_after is not None else now + YEAR, dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    pem_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pem_path.chmod(0o600)
    return CertificateCredential(
        key_id=str(uuid.uuid4()),
        der_b64=base64.b64encode(der).decode(),
        thumbprint_sha1=hashlib.sha1(der).hexdigest().upper(),  # noqa: S324 (x5t is SHA-1)
        thumbprint_sha256=hashlib.sha256(der).hexdigest().upper(),
        start=start.timestamp(),
        end=end.timestamp(),
    )


def _assignment(store: Store, entry: dict[str, Any], names: dict[str, str], now: float) -> None:
    principal_id = names[entry["principal"].lower()]
    role = next(
        (
            d
            for d in store.role_definitions.values()
            if d.role_name.lower() == entry["role"].lower()
        ),
        None,
    )
    if role is None:
        raise ValueError(f"seed: unknown role {entry['role']!r}")
    scope = entry["scope"]
    name = stable_id("assignment", scope.lower(), role.name, principal_id)
    # An optional ABAC condition, checked as a PUT would check it (see abac.py).
    condition, version = entry.get("condition"), entry.get("conditionVersion")
    if condition is not None:
        version = version or abac.SUPPORTED_VERSION
        if version != abac.SUPPORTED_VERSION:
            raise ValueError(f"seed: conditionVersion must be {abac.SUPPORTED_VERSION!r}")
        try:
            abac.parse(condition)
        except abac.ConditionError as err:
            raise ValueError(f"seed: invalid condition on {entry['role']!r}: {err}") from None
    store.role_assignments[name] = RoleAssignment(
        name=name,
        scope=scope,
        role_definition_id=role.id_at(scope),
        principal_id=principal_id,
        principal_type=store.principals[principal_id].kind,
        created_at=now,
        created_by="azlocal-seed",
        condition=condition,
        condition_version=version if condition is not None else None,
    )
