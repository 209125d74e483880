"""Resource groups and Microsoft.MachineLearningServices: reads; writes of online endpoints,
jobs and computes; workspace delete and listKeys.

Enough of Azure ML for least privilege to be shown: a monitor can read endpoints and
deployments and is refused when it tries to change one.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable

from aiohttp import web

from azlocal import armids
from azlocal.arm.common import (
    NAME,
    RESOURCE_GROUP_TYPE,
    RG,
    SUB,
    require_body_object,
    require_resource_group,
    require_subscription,
)
from azlocal.arm.router import ArmRequest, Handler, Router
from azlocal.errors import ArmError, not_found
from azlocal.locations import require_location
from azlocal.store import ArmResource

RESOURCE_GROUP_API_VERSIONS = frozenset(
    {
        "2019-10-01",
        "2020-06-01",
        "2021-04-01",
        "2022-09-01",
        "2023-07-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-04-01",
    }
)
ML_API_VERSIONS = frozenset(
    {
        "2023-04-01",
        "2023-10-01",
        "2024-04-01",
        "2024-10-01",
        "2025-01-01-preview",
        "2025-04-01",
        "2025-06-01",
        "2025-09-01",
    }
)
ML = "Microsoft.MachineLearningServices"
WORKSPACE_TYPE = f"{ML}/workspaces"
REGISTRY_TYPE = f"{ML}/registries"
COMPUTE_TYPE = f"{ML}/workspaces/computes"
ENDPOINT_TYPE = f"{ML}/workspaces/onlineEndpoints"
DEPLOYMENT_TYPE = f"{ML}/workspaces/onlineEndpoints/deployments"

WORKSPACE = RG + r"/providers/microsoft\.machinelearningservices/workspaces/(?P<ws>[^/]+)"
ENDPOINT = WORKSPACE + r"/onlineendpoints/(?P<ep>[^/]+)"

router = Router()


def _route(
    method: str, pattern: str, operation: str, action: str, versions: frozenset[str]
) -> Callable[[Handler], Handler]:
    return router.add(
        method,
        pattern,
        operation=operation,
        action=action,
        api_versions=versions,
        resource_type=operation.split("/")[0],
    )


@_route(
    "GET",
    SUB + r"/?$",
    "subscriptions/read",
    "Microsoft.Resources/subscriptions/read",
    RESOURCE_GROUP_API_VERSIONS,
)
async def get_subscription(req: ArmRequest) -> web.Response:
    sub = require_subscription(req.ctx, req.param("sub"))
    return web.json_response(
        {
            "id": f"/subscriptions/{sub}",
            "subscriptionId": sub,
            "tenantId": req.ctx.store.tenant_id,
            "displayName": req.ctx.store.subscriptions[sub],
            "state": "Enabled",
        }
    )


@_route(
    "GET",
    RG + r"/?$",
    "resourceGroups/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    RESOURCE_GROUP_API_VERSIONS,
)
async def get_resource_group(req: ArmRequest) -> web.Response:
    return web.json_response(
        require_resource_group(req.ctx, req.param("sub"), req.param("rg")).to_json()
    )


@_route(
    "GET",
    SUB + r"/resourcegroups/?$",
    "resourceGroups/list",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    RESOURCE_GROUP_API_VERSIONS,
)
async def list_resource_groups(req: ArmRequest) -> web.Response:
    sub = require_subscription(req.ctx, req.param("sub"))
    groups = req.ctx.store.children(f"/subscriptions/{sub}", RESOURCE_GROUP_TYPE)
    return req.page([g.to_json() for g in groups])


def _read_routes(item: str, collection: str, type_: str, parent: str, label: str) -> None:
    """GET one and GET the list, for a read-only ML resource type."""
    action = f"{type_}/read"

    async def get_one(req: ArmRequest) -> web.Response:
        require_resource_group(req.ctx, req.param("sub"), req.param("rg"))
        resource = req.ctx.store.get(req.path)
        if resource is None or resource.type.lower() != type_.lower():
            raise not_found(type_, req.path.rsplit("/", 1)[-1], req.param("rg"))
        return web.json_response(resource.to_json())

    async def get_list(req: ArmRequest) -> web.Response:
        require_resource_group(req.ctx, req.param("sub"), req.param("rg"))
        parent_id = req.path.rstrip("/").rsplit("/", 1)[0]
        if parent != "resourceGroup" and req.ctx.store.get(parent_id) is None:
            raise not_found(parent, parent_id.rsplit("/", 1)[-1], req.param("rg"))
        return req.page([r.to_json() for r in req.ctx.store.children(parent_id, type_)])

    handlers: list[tuple[str, Handler]] = [(item + "$", get_one), (collection + "/?$", get_list)]
    for pattern, handler in handlers:
        router.add(
            "GET",
            pattern,
            operation=f"{label}/read",
            action=action,
            api_versions=ML_API_VERSIONS,
            resource_type=label,
        )(handler)


_read_routes(
    WORKSPACE,
    RG + r"/providers/microsoft\.machinelearningservices/workspaces",
    WORKSPACE_TYPE,
    "resourceGroup",
    "workspaces",
)
_read_routes(
    RG + r"/providers/microsoft\.machinelearningservices/registries/" + NAME,
    RG + r"/providers/microsoft\.machinelearningservices/registries",
    REGISTRY_TYPE,
    "resourceGroup",
    "registries",
)
_read_routes(
    WORKSPACE + r"/computes/" + NAME,
    WORKSPACE + r"/computes",
    COMPUTE_TYPE,
    WORKSPACE_TYPE,
    "computes",
)
_read_routes(
    ENDPOINT, WORKSPACE + r"/onlineendpoints", ENDPOINT_TYPE, WORKSPACE_TYPE, "onlineEndpoints"
)
_read_routes(
    ENDPOINT + r"/deployments/" + NAME,
    ENDPOINT + r"/deployments",
    DEPLOYMENT_TYPE,
    ENDPOINT_TYPE,
    "deployments",
)


def _require_workspace(req: ArmRequest) -> ArmResource:
    require_resource_group(req.ctx, req.param("sub"), req.param("rg"))
    workspace = req.ctx.store.get(req.path[: req.match.end("ws")])
    if workspace is None:
        raise not_found(WORKSPACE_TYPE, req.param("ws"), req.param("rg"))
    return workspace


def _child_writes(collection: str, type_: str, label: str) -> None:
    """PUT and DELETE of a workspace child (jobs, computes): enough to show who may."""

    async def put(req: ArmRequest) -> web.Response:
        body = require_body_object(req.body)
        workspace = _require_workspace(req)
        child_id = f"{workspace.id}/{collection}/{req.param('name')}"
        existing = req.ctx.store.get(child_id)
        child = ArmResource(
            id=child_id,
            type=type_,
            name=req.param("name"),
            properties={**(body.get("properties") or {}), "provisioningState": "Succeeded"},
            created_at=existing.created_at if existing else req.ctx.now(),
        )
        req.ctx.store.put(child)
        return web.json_response(child.to_json(), status=200 if existing else 201)

    async def delete(req: ArmRequest) -> web.Response:
        workspace = _require_workspace(req)
        gone = req.ctx.store.remove(f"{workspace.id}/{collection}/{req.param('name')}") is None
        return web.Response(status=204 if gone else 200)

    pattern = WORKSPACE + f"/{collection.lower()}/" + NAME + "$"
    router.add(
        "PUT",
        pattern,
        operation=f"{label}/write",
        action=f"{type_}/write",
        api_versions=ML_API_VERSIONS,
        resource_type=label,
    )(put)
    router.add(
        "DELETE",
        pattern,
        operation=f"{label}/delete",
        action=f"{type_}/delete",
        api_versions=ML_API_VERSIONS,
        resource_type=label,
    )(delete)


_child_writes("jobs", f"{ML}/workspaces/jobs", "jobs")
_child_writes("computes", COMPUTE_TYPE, "computes")
_read_routes(
    WORKSPACE + r"/jobs/" + NAME,
    WORKSPACE + r"/jobs",
    f"{ML}/workspaces/jobs",
    WORKSPACE_TYPE,
    "jobs",
)


@_route("DELETE", WORKSPACE + "$", "workspaces/delete", f"{WORKSPACE_TYPE}/delete", ML_API_VERSIONS)
async def delete_workspace(req: ArmRequest) -> web.Response:
    workspace = _require_workspace(req)
    req.ctx.store.remove(workspace.id)
    return web.Response(status=200)


@_route("PUT", ENDPOINT + "$", "onlineEndpoints/write", f"{ENDPOINT_TYPE}/write", ML_API_VERSIONS)
async def put_endpoint(req: ArmRequest) -> web.Response:
    body = require_body_object(req.body)
    workspace = _require_workspace(req)
    location = require_location(str(body.get("location") or workspace.location), ENDPOINT_TYPE)
    props = body.get("properties") or {}
    if not isinstance(props, dict) or props.get("authMode", "Key") not in (
        "Key",
        "AMLToken",
        "AADToken",
    ):
        raise ArmError(
            400, "ValidationError", "properties.authMode must be Key, AMLToken or AADToken."
        )
    endpoint_id = f"{workspace.id}/onlineEndpoints/{req.param('ep')}"
    existing = req.ctx.store.get(endpoint_id)
    endpoint = ArmResource(
        id=endpoint_id,
        type=ENDPOINT_TYPE,
        name=req.param("ep"),
        location=str(location),
        tags=dict(body.get("tags") or {}),
        properties={
            "authMode": props.get("authMode", "Key"),
            "description": props.get("description"),
            "provisioningState": "Succeeded",
            "scoringUri": f"https://{req.param('ep')}.{location}.inference.ml.azure.com/score",
            "traffic": props.get("traffic") or {},
        },
        created_at=existing.created_at if existing else req.ctx.now(),
    )
    req.ctx.store.put(endpoint)
    return web.json_response(endpoint.to_json(), status=200 if existing else 201)


@_route(
    "DELETE", ENDPOINT + "$", "onlineEndpoints/delete", f"{ENDPOINT_TYPE}/delete", ML_API_VERSIONS
)
async def delete_endpoint(req: ArmRequest) -> web.Response:
    workspace = _require_workspace(req)
    endpoint_id = f"{workspace.id}/onlineEndpoints/{req.param('ep')}"
    if req.ctx.store.remove(endpoint_id) is None:
        return web.Response(status=204)
    return web.Response(status=200)


def _fake_secret(workspace: ArmResource, purpose: str, size: int = 64) -> str:
    """A key-shaped value derived from the workspace id: stable across restarts, never a
    real secret (nothing accepts it)."""
    seed = f"azlocal-fake-{purpose}:{armids.norm(workspace.id)}".encode()
    return base64.b64encode(hashlib.sha512(seed).digest()[:size]).decode()


@_route(
    "POST",
    WORKSPACE + "/listkeys$",
    "workspaces/listKeys",
    f"{WORKSPACE_TYPE}/listKeys/action",
    ML_API_VERSIONS,
)
async def list_workspace_keys(req: ArmRequest) -> web.Response:
    """Workspaces_ListKeys: the keys of the workspace's storage account, Application
    Insights, container registry and notebooks. Shape of azure-rest-api-specs
    machinelearningservices stable/2023-10-01 examples/Workspace/listKeys.json (the same
    for 2024-04-01); the linked resources are not emulated, their names are derived."""
    workspace = _require_workspace(req)
    digest = hashlib.sha256(armids.norm(workspace.id).encode()).hexdigest()
    base = "".join(c for c in workspace.name.lower() if c.isalnum())[:14]
    storage = f"{base}{digest[:8]}"  # 3-24 lower-case letters and digits, as Azure's
    group = req.param("rg")
    return web.json_response(
        {
            "userStorageKey": _fake_secret(workspace, "storage"),
            "userStorageResourceId": f"/subscriptions/{req.param('sub')}/resourceGroups/{group}"
            f"/providers/Microsoft.Storage/storageAccounts/{storage}",
            "appInsightsInstrumentationKey": str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"azlocal-appinsights:{digest}")
            ),
            "containerRegistryCredentials": {
                "location": workspace.location,
                "username": f"{base}{digest[8:16]}",
                "passwords": [
                    {"name": "password", "value": _fake_secret(workspace, "acr-1", 24)},
                    {"name": "password2", "value": _fake_secret(workspace, "acr-2", 24)},
                ],
            },
            "notebookAccessKeys": {
                "primaryAccessKey": _fake_secret(workspace, "notebook-1", 32),
                "secondaryAccessKey": _fake_secret(workspace, "notebook-2", 32),
            },
        }
    )
