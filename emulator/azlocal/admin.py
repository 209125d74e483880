"""The admin API (/_azlocal/...): settings, faults, request log, counters, principals.

Reachable only with the admin key printed at start-up (header X-Azlocal-Admin-Key),
never with an Azure token: tests and benchmarks steer azlocal, workloads cannot.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from .context import Context, FaultRule
from .seed import YEAR, make_certificate, make_secret
from .store import Principal

CTX = web.AppKey("admin_ctx", Context)
CREDENTIALS_DIR = web.AppKey("credentials_dir", Path)
ADMIN_HEADER = "X-Azlocal-Admin-Key"


@web.middleware
async def require_admin_key(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/_azlocal/") and request.path != "/_azlocal/health":
        given = request.headers.get(ADMIN_HEADER, "")
        if not hmac.compare_digest(given, request.app[CTX].admin_key):
            return web.json_response(
                {"error": {"code": "Forbidden", "message": f"the admin API needs {ADMIN_HEADER}"}},
                status=403,
            )
    response: web.StreamResponse = await handler(request)
    return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(request.app[CTX].settings.as_json())


async def patch_settings(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        ctx.settings.update(await request.json())
    except (KeyError, ValueError, TypeError) as err:
        return web.json_response({"error": {"code": "BadSetting", "message": str(err)}}, status=400)
    ctx.throttle.enabled = ctx.settings.throttling
    return web.json_response(ctx.settings.as_json())


async def add_fault(request: web.Request) -> web.Response:
    body = await request.json()
    try:
        rule = FaultRule(
            method=str(body.get("method", "*")).upper(),
            path_pattern=str(body["pathPattern"]),
            count=int(body.get("count", 1)),
            status=int(body["status"]),
            code=str(body.get("code", "InjectedFault")),
            message=str(body.get("message", "Injected by azlocal.")),
            retry_after=body.get("retryAfter"),
        )
    except (KeyError, ValueError) as err:
        return web.json_response({"error": {"code": "BadFault", "message": str(err)}}, status=400)
    request.app[CTX].faults.append(rule)
    return web.json_response(vars(rule), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[CTX].faults.clear()
    return web.Response(status=204)


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[CTX].log))


async def clear_requests(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ctx.log.clear()
    ctx.counters.clear()
    return web.Response(status=204)


async def get_counters(request: web.Request) -> web.Response:
    counters = request.app[CTX].counters
    return web.json_response(
        [
            {"operation": op, "status": status, "count": n}
            for (op, status), n in sorted(counters.items())
        ]
    )


async def add_principal(request: web.Request) -> web.Response:
    """Create a principal now (e.g. to see replication delay), with optional credentials.

    Body: {"kind": "ServicePrincipal"|"User"|"Group", "displayName": ..., "secret": bool,
    "certificate": bool, "certificateNotBefore": epoch, "certificateNotAfter": epoch,
    "rolesLike": displayName}. With rolesLike, the new principal gets a copy of every role
    assignment of that principal (e.g. a second operator principal for a shard).
    Answers the ids, the secret text and the path of the certificate PEM (cert + key).
    """
    ctx = request.app[CTX]
    body = await request.json()
    kind = body.get("kind", "ServicePrincipal")
    name = str(body.get("displayName", "principal"))
    now = ctx.now()
    principal = Principal(
        object_id=str(uuid.uuid4()),
        kind=kind,
        display_name=name,
        created_at=now,
        app_id=str(uuid.uuid4()) if kind == "ServicePrincipal" else None,
        members=[m.lower() for m in body.get("members", [])],
    )
    answer: dict[str, Any] = {"objectId": principal.object_id, "appId": principal.app_id}
    if body.get("secret"):
        text = uuid.uuid4().hex + uuid.uuid4().hex
        end = float(body.get("secretNotAfter", now + YEAR))
        principal.secrets.append(make_secret(text, now, end))
        answer["secret"] = text
    if body.get("certificate"):
        directory = request.app[CREDENTIALS_DIR]
        directory.mkdir(parents=True, exist_ok=True)
        pem = directory / f"{principal.object_id}.pem"
        principal.certificates.append(
            make_certificate(
                name,
                pem,
                now,
                not_before=body.get("certificateNotBefore"),
                not_after=body.get("certificateNotAfter"),
            )
        )
        answer["certificatePath"] = str(pem)
    like = body.get("rolesLike")
    if like is not None:
        model = next((p for p in ctx.store.principals.values() if p.display_name == like), None)
        if model is None:
            return web.json_response(
                {"error": {"code": "NotFound", "message": f"no principal named {like!r}"}},
                status=404,
            )
        for assignment in [
            a for a in ctx.store.role_assignments.values() if a.principal_id == model.object_id
        ]:
            copy = replace(
                assignment,
                name=str(uuid.uuid4()),
                principal_id=principal.object_id,
                created_at=now,
                created_by="azlocal-admin",
            )
            ctx.store.role_assignments[copy.name] = copy
    ctx.store.principals[principal.object_id] = principal
    return web.json_response(answer, status=201)


async def add_group_member(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    group = ctx.store.principals.get(request.match_info["group"].lower())
    if group is None or group.kind != "Group":
        return web.json_response(
            {"error": {"code": "NotFound", "message": "no such group"}}, status=404
        )
    group.members.append((await request.json())["objectId"].lower())
    return web.Response(status=204)


async def trust_ca(request: web.Request) -> web.Response:
    """Trust another CA for federated issuers (e.g. the local kube-apiserver's)."""
    pem = await request.text()
    request.app[CTX].oidc.ssl_context.load_verify_locations(cadata=pem)
    return web.Response(status=204)


async def save_state(request: web.Request) -> web.Response:
    path = Path((await request.json())["path"])
    request.app[CTX].store.save(path)
    return web.json_response({"path": str(path)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_azlocal/health", health)
    app.router.add_get("/_azlocal/settings", get_settings)
    app.router.add_patch("/_azlocal/settings", patch_settings)
    app.router.add_post("/_azlocal/faults", add_fault)
    app.router.add_delete("/_azlocal/faults", clear_faults)
    app.router.add_get("/_azlocal/requests", get_requests)
    app.router.add_delete("/_azlocal/requests", clear_requests)
    app.router.add_get("/_azlocal/counters", get_counters)
    app.router.add_post("/_azlocal/principals", add_principal)
    app.router.add_post("/_azlocal/groups/{group}/members", add_group_member)
    app.router.add_post("/_azlocal/trusted-cas", trust_ca)
    app.router.add_post("/_azlocal/save", save_state)
