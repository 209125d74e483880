"""Microsoft.ManagedIdentity: user-assigned identities, federated credentials, system-assigned."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from azlocal.arm.common import (
    NAME,
    RG,
    SUB,
    require_body_object,
    require_resource_group,
    require_subscription,
)
from azlocal.arm.router import ArmRequest, Handler, Router
from azlocal.errors import ArmError, not_found
from azlocal.locations import require_location
from azlocal.store import ArmResource, Principal

API_VERSIONS = frozenset(
    {
        "2018-11-30",
        "2021-09-30-preview",
        "2022-01-31-preview",
        "2023-01-31",
        "2023-07-31-preview",
        "2024-11-30",
        "2025-01-31-preview",
    }
)
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
FIC_TYPE = f"{IDENTITY_TYPE}/federatedIdentityCredentials"
MAX_FEDERATED_CREDENTIALS = 20
IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
FIC_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$")

IDENTITY_PATH = RG + r"/providers/microsoft\.managedidentity/userassignedidentities/" + NAME
FIC_PATH = IDENTITY_PATH + r"/federatedidentitycredentials"

router = Router()


def _route(method: str, pattern: str, operation: str, action: str) -> Callable[[Handler], Handler]:
    return router.add(
        method,
        pattern,
        operation=operation,
        action=action,
        api_versions=API_VERSIONS,
        resource_type="userAssignedIdentities",
    )


def _identity_id(req: ArmRequest) -> str:
    group = require_resource_group(req.ctx, req.param("sub"), req.param("rg"))
    return f"{group.id}/providers/{IDENTITY_TYPE}/{req.param('name')}"


def _require_identity(req: ArmRequest) -> ArmResource:
    identity = req.ctx.store.get(_identity_id(req))
    if identity is None:
        raise not_found(IDENTITY_TYPE, req.param("name"), req.param("rg"))
    return identity


def _tags(body: dict[str, Any]) -> dict[str, str]:
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ArmError(400, "InvalidTag", "Tags must be a JSON object of string values.")
    if len(tags) > 50:
        raise ArmError(400, "InvalidTagCount", "The number of tags exceeds the limit of 50.")
    return dict(tags)


@_route(
    "PUT",
    IDENTITY_PATH + "$",
    "userAssignedIdentities/write",
    "Microsoft.ManagedIdentity/userAssignedIdentities/write",
)
async def put_identity(req: ArmRequest) -> web.Response:
    body = require_body_object(req.body)
    name = req.param("name")
    if not IDENTITY_NAME.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name '{name}' is invalid. The name can contain only letters, numbers, "
            "underscores and hyphens. The name must start with letter or number. The name "
            "must be between 3 and 128 characters.",
        )
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise ArmError(
            400, "LocationRequired", "The location property is required for this definition."
        )
    identity_id = _identity_id(req)  # ARM checks the resource group first
    region = require_location(location, IDENTITY_TYPE)
    existing = req.ctx.store.get(identity_id)
    if existing is not None:
        if (existing.location or "").lower() != region:
            raise ArmError(
                400,
                "InvalidResourceLocation",
                f"The resource '{name}' already exists in location '{existing.location}' in "
                f"resource group '{req.param('rg')}'. A resource with the same name cannot be "
                f"created in location '{location}'. Please select a new resource name.",
            )
        existing.tags = _tags(body)
        return web.json_response(existing.to_json(), status=200)
    principal_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = req.ctx.now()
    req.ctx.store.principals[principal_id] = Principal(
        object_id=principal_id,
        kind="ServicePrincipal",
        display_name=name,
        created_at=now,
        app_id=client_id,
        managed_identity_of=identity_id,
        service_principal_type="ManagedIdentity",
    )
    identity = ArmResource(
        id=identity_id,
        type=IDENTITY_TYPE,
        name=name,
        location=region,
        tags=_tags(body),
        properties={
            "tenantId": req.ctx.store.tenant_id,
            "principalId": principal_id,
            "clientId": client_id,
            "isolationScope": (body.get("properties") or {}).get("isolationScope", "None"),
        },
        created_at=now,
    )
    req.ctx.store.put(identity)
    return web.json_response(identity.to_json(), status=201)


@_route(
    "PATCH",
    IDENTITY_PATH + "$",
    "userAssignedIdentities/write",
    "Microsoft.ManagedIdentity/userAssignedIdentities/write",
)
async def patch_identity(req: ArmRequest) -> web.Response:
    body = require_body_object(req.body)
    identity = _require_identity(req)
    if "tags" in body:
        identity.tags = _tags(body)
    return web.json_response(identity.to_json())


@_route(
    "GET",
    IDENTITY_PATH + "$",
    "userAssignedIdentities/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
)
async def get_identity(req: ArmRequest) -> web.Response:
    return web.json_response(_require_identity(req).to_json())


@_route(
    "DELETE",
    IDENTITY_PATH + "$",
    "userAssignedIdentities/delete",
    "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
)
async def delete_identity(req: ArmRequest) -> web.Response:
    identity = req.ctx.store.get(_identity_id(req))
    if identity is None:
        return web.Response(status=204)
    req.ctx.store.remove(identity.id)
    req.ctx.store.principals.pop(identity.properties["principalId"], None)
    return web.json_response(identity.to_json(), status=200)


@_route(
    "GET",
    RG + r"/providers/microsoft\.managedidentity/userassignedidentities/?$",
    "userAssignedIdentities/list",
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
)
async def list_identities_in_group(req: ArmRequest) -> web.Response:
    group = require_resource_group(req.ctx, req.param("sub"), req.param("rg"))
    return req.page([r.to_json() for r in req.ctx.store.children(group.id, IDENTITY_TYPE)])


@_route(
    "GET",
    SUB + r"/providers/microsoft\.managedidentity/userassignedidentities/?$",
    "userAssignedIdentities/list",
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
)
async def list_identities_in_subscription(req: ArmRequest) -> web.Response:
    sub = require_subscription(req.ctx, req.param("sub"))
    items = req.ctx.store.children(f"/subscriptions/{sub}", IDENTITY_TYPE)
    return req.page([r.to_json() for r in items])


# --- federated identity credentials ---


async def _serialized_write(req: ArmRequest, identity: ArmResource) -> None:
    """Azure refuses overlapping FIC writes to one identity; so does azlocal."""
    key = identity.id.lower()
    now = time.monotonic()
    if req.ctx.fic_busy_until.get(key, 0) > now:
        raise ArmError(
            409,
            "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
            "Too many Federated Identity Credentials are written concurrently for the managed "
            f"identity '{key}'. Concurrent Federated Identity Credentials writes under the same "
            "managed identity are not supported.",
        )
    req.ctx.fic_busy_until[key] = now + req.ctx.settings.fic_write_seconds
    try:
        await asyncio.sleep(req.ctx.settings.fic_write_seconds)
    finally:
        req.ctx.fic_busy_until.pop(key, None)


def _require_parent(req: ArmRequest) -> ArmResource:
    try:
        return _require_identity(req)
    except ArmError as err:
        if err.code != "ResourceNotFound":
            raise
        raise ArmError(
            404,
            "ParentResourceNotFound",
            "Can not perform requested operation on nested resource. Parent resource "
            f"'{req.param('name')}' not found.",
        ) from None


def _fic_json(fic: ArmResource) -> dict[str, Any]:
    body = fic.to_json()
    body.pop("tags", None)
    return body


@_route(
    "PUT",
    FIC_PATH + r"/(?P<fic>[^/]+)$",
    "federatedIdentityCredentials/write",
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
)
async def put_fic(req: ArmRequest) -> web.Response:
    body = require_body_object(req.body)
    identity = _require_parent(req)
    name = req.param("fic")
    if not FIC_NAME.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name '{name}' is invalid. The name must start with a letter or number, "
            "contain only letters, numbers, hyphens and underscores, and be 3 to 120 "
            "characters long.",
        )
    props = body.get("properties")
    props = props if isinstance(props, dict) else {}
    issuer, subject, audiences = props.get("issuer"), props.get("subject"), props.get("audiences")
    if not issuer or not subject or not audiences:
        raise ArmError(
            400,
            "BadRequest",
            "The request format was unexpected. Federated Identity Credential must specify "
            "'issuer', 'subject' and 'audience'.",
        )
    if not isinstance(issuer, str) or not issuer.startswith("https://"):
        raise ArmError(
            400, "BadRequest", "The issuer of a federated identity credential must be an https URL."
        )
    one_audience = isinstance(audiences, list) and len(audiences) == 1
    if not isinstance(subject, str) or not one_audience or not isinstance(audiences[0], str):
        raise ArmError(
            400,
            "BadRequest",
            "A federated identity credential takes one subject and exactly one audience.",
        )
    fic_id = f"{identity.id}/federatedIdentityCredentials/{name}"
    siblings = req.ctx.store.children(identity.id, FIC_TYPE)
    existing = req.ctx.store.get(fic_id)
    if existing is None and len(siblings) >= MAX_FEDERATED_CREDENTIALS:
        raise ArmError(
            400,
            "BadRequest",
            f"Too many Federated Identity Credentials. The maximum number of federated "
            f"identity credentials per identity is {MAX_FEDERATED_CREDENTIALS}.",
        )
    for sibling in siblings:
        same_trust = (
            sibling.properties["issuer"] == issuer and sibling.properties["subject"] == subject
        )
        if same_trust and sibling.name.lower() != name.lower():
            raise ArmError(
                409,
                "Conflict",
                f"Federated Identity Credential '{sibling.name}' already trusts issuer "
                f"'{issuer}' and subject '{subject}'.",
            )
    await _serialized_write(req, identity)
    fic = ArmResource(
        id=fic_id,
        type=FIC_TYPE,
        name=name,
        properties={"issuer": issuer, "subject": subject, "audiences": list(audiences)},
        created_at=req.ctx.now(),
    )
    req.ctx.store.put(fic)
    return web.json_response(_fic_json(fic), status=200 if existing else 201)


@_route(
    "GET",
    FIC_PATH + r"/(?P<fic>[^/]+)$",
    "federatedIdentityCredentials/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
)
async def get_fic(req: ArmRequest) -> web.Response:
    identity = _require_parent(req)
    fic = req.ctx.store.get(f"{identity.id}/federatedIdentityCredentials/{req.param('fic')}")
    if fic is None:
        raise not_found(FIC_TYPE, f"{req.param('name')}/{req.param('fic')}", req.param("rg"))
    return web.json_response(_fic_json(fic))


@_route(
    "DELETE",
    FIC_PATH + r"/(?P<fic>[^/]+)$",
    "federatedIdentityCredentials/delete",
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
)
async def delete_fic(req: ArmRequest) -> web.Response:
    identity = _require_parent(req)
    fic_id = f"{identity.id}/federatedIdentityCredentials/{req.param('fic')}"
    if req.ctx.store.get(fic_id) is None:
        return web.Response(status=204)
    await _serialized_write(req, identity)
    req.ctx.store.remove(fic_id)
    return web.Response(status=200)


@_route(
    "GET",
    FIC_PATH + r"/?$",
    "federatedIdentityCredentials/list",
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
)
async def list_fics(req: ArmRequest) -> web.Response:
    identity = _require_parent(req)
    return req.page([_fic_json(f) for f in req.ctx.store.children(identity.id, FIC_TYPE)])


# --- system-assigned identities ---


@_route(
    "GET",
    r"^(?P<scope>/subscriptions/.+?)/providers/microsoft\.managedidentity/identities/default$",
    "systemAssignedIdentities/read",
    "Microsoft.ManagedIdentity/identities/read",
)
async def get_system_assigned(req: ArmRequest) -> web.Response:
    scope = req.param("scope")
    resource = req.ctx.store.get(scope)
    identity = resource.identity if resource else None
    if resource is None or not identity or "principalId" not in identity:
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.ManagedIdentity/identities/default' under scope "
            f"'{scope}' was not found.",
        )
    return web.json_response(
        {
            "id": f"{resource.id}/providers/Microsoft.ManagedIdentity/identities/default",
            "name": "default",
            "type": "Microsoft.ManagedIdentity/Identities",
            "location": resource.location,
            "tags": {},
            "properties": {
                "tenantId": identity["tenantId"],
                "principalId": identity["principalId"],
                "clientId": identity.get("clientId"),
                "clientSecretUrl": f"{req.base_url}/msi/{identity['principalId']}",
            },
        }
    )
