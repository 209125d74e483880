"""The aiohttp application: one HTTPS port for ARM, Entra, IMDS and the admin API."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from aiohttp import web

from . import admin, entra, graph
from .arm import authorization, keyvault, msi, resources
from .arm.router import Router
from .context import CLIENT_AUTH, OPERATION, PRINCIPAL, RATELIMIT, Context
from .errors import AadError, ArmError

ARM = Router()
for provider in (msi.router, authorization.router, resources.router, keyvault.router):
    ARM.routes.extend(provider.routes)

TOKEN_PATH = "/oauth2/v2.0/token"  # noqa: S105 (a path, not a secret)


@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    """Request ids, Azure's headers, the request log and counters, error rendering."""
    ctx: Context = request.app[entra.CTX]
    request_id = str(uuid.uuid4())
    correlation = request.headers.get("x-ms-correlation-request-id", str(uuid.uuid4()))
    started = time.monotonic()
    admin_call = request.path.startswith("/_azlocal/")
    try:
        if not admin_call:
            await ctx.inject_latency()
            chaos = ctx.chaos(request.path)
            if chaos == "reset":
                request[OPERATION] = "injected-reset"
                ctx.counters[("injected-reset", 0)] += 1
                if request.transport is not None:
                    request.transport.abort()  # the client sees the connection reset
                raise web.HTTPServiceUnavailable()  # never sent: the connection is gone
            if chaos == "error":
                request[OPERATION] = "injected-fault"
                status = random.choice((500, 503))  # noqa: S311 (chaos, not security)
                code = "InternalServerError" if status == 500 else "ServiceUnavailable"
                raise ArmError(status, code, "Injected by azlocal (serverErrorRate).")
            fault = ctx.take_fault(request.method, request.path)
            if fault is not None:
                request[OPERATION] = "injected-fault"
                raise _fault_error(request, fault)
        response: web.StreamResponse = await handler(request)
    except ArmError as err:
        response = err.response()
    except AadError as err:
        response = err.response()
    except graph.GraphError as err:
        response = err.response(request)
    except web.HTTPException as err:
        response = web.json_response(
            {"error": {"code": err.reason.replace(" ", ""), "message": err.text or err.reason}},
            status=err.status,
        )
    if admin_call:
        return response
    response.headers["x-ms-request-id"] = request_id
    response.headers["x-ms-correlation-request-id"] = correlation
    response.headers["x-ms-routing-request-id"] = (
        f"LOCAL:{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}:{correlation}"
    )
    if RATELIMIT in request:
        kind, remaining = request[RATELIMIT]
        response.headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)
    operation = request.get(OPERATION, "unrouted")
    ctx.counters[(operation, response.status)] += 1
    ctx.log.append(
        {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "status": response.status,
            "operation": operation,
            "principal": request.get(PRINCIPAL),
            "clientAuth": request.get(CLIENT_AUTH),
            "requestId": request_id,
            "clientRequestId": request.headers.get("x-ms-client-request-id"),
            "durationMs": round((time.monotonic() - started) * 1000, 3),
        }
    )
    return response


def _fault_error(request: web.Request, fault: Any) -> Exception:
    headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
    if request.path.endswith(TOKEN_PATH):
        return AadError(fault.status, fault.code, 0, fault.message, headers)
    if request.path.startswith("/v1.0/"):
        return graph.GraphError(fault.status, fault.code, fault.message, headers)
    return ArmError(fault.status, fault.code, fault.message, headers)


async def arm(request: web.Request) -> web.Response:
    return await ARM.dispatch(request.app[entra.CTX], request)


def create_app(ctx: Context, credentials_dir: Any) -> web.Application:
    app = web.Application(middlewares=[observe, admin.require_admin_key])
    app[entra.CTX] = ctx
    app[admin.CTX] = ctx
    app[graph.CTX] = ctx
    app[admin.CREDENTIALS_DIR] = credentials_dir
    admin.add_routes(app)
    app.router.add_post("/{tenant}" + TOKEN_PATH, entra.token)
    app.router.add_route("*", "/{tenant}" + TOKEN_PATH, entra.token_other_methods)
    app.router.add_get(
        "/{tenant}/v2.0/.well-known/openid-configuration", entra.openid_configuration
    )
    app.router.add_get("/{tenant}/discovery/v2.0/keys", entra.jwks)
    app.router.add_get("/metadata/identity/oauth2/token", entra.imds_token)
    app.router.add_route("*", "/v1.0/{tail:.*}", graph.handle)
    app.router.add_route("*", "/{tail:.*}", arm)
    return app
