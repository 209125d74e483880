"""ARM request pipeline: route, authenticate, check api-version, throttle, authorize.

Paths are matched case-insensitively, as ARM does. Every route names the RBAC action
it needs; the scope is the request path, so an assignment at any ancestor counts. A route
whose action ABAC conditions can constrain (role-assignment writes and deletes) also names
how to read the request's attributes; it is authorized after its body is read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from azlocal import abac, armids, rbac
from azlocal.context import OPERATION, PRINCIPAL, RATELIMIT, Context
from azlocal.errors import ArmError, subscription_not_found
from azlocal.throttle import kind_of
from azlocal.tokens import Caller

Handler = Callable[["ArmRequest"], Awaitable[web.Response]]
# The @Request/@Resource attributes of a request, from the path match and parsed body.
AttributeReader = Callable[[Context, re.Match[str], Any], abac.Attributes]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str  # for counters and logs, e.g. userAssignedIdentities/write
    action: str  # RBAC action checked at the request path
    api_versions: frozenset[str]
    resource_type: str  # for Azure's unsupported api-version message
    handler: Handler
    attributes: AttributeReader | None = None


@dataclass
class ArmRequest:
    """A routed, authenticated, authorized ARM request."""

    ctx: Context
    http: web.Request
    match: re.Match[str]
    caller: Caller
    body: Any

    @property
    def path(self) -> str:
        return self.http.path

    def param(self, name: str) -> str:
        return self.match.group(name)

    @property
    def base_url(self) -> str:
        return f"{self.http.scheme}://{self.http.host}"

    def page(self, items: list[dict[str, Any]]) -> web.Response:
        """A list answer with ARM paging: `value` and an absolute `nextLink`."""
        size = max(1, self.ctx.settings.page_size)
        try:
            offset = int(self.http.query.get("$skiptoken", "0"))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from None
        body: dict[str, Any] = {"value": items[offset : offset + size]}
        if offset + size < len(items):
            query = {k: v for k, v in self.http.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(offset + size)
            rest = "&".join(f"{k}={v}" for k, v in query.items())
            body["nextLink"] = f"{self.base_url}{self.path}?{rest}"
        return web.json_response(body)

    def allowed(self, action: str, scope: str) -> bool:
        """Whether the caller also holds `action` at `scope` (e.g. linked scopes)."""
        try:
            authorize(self.ctx, self.caller, action, scope)
        except ArmError:
            return False
        return True


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        pattern: str,
        *,
        operation: str,
        action: str,
        api_versions: frozenset[str],
        resource_type: str,
        attributes: AttributeReader | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method,
                    re.compile(pattern, re.IGNORECASE),
                    operation,
                    action,
                    api_versions,
                    resource_type,
                    handler,
                    attributes,
                )
            )
            return handler

        return register

    def find(self, method: str, path: str) -> tuple[Route, re.Match[str]] | None:
        for route in self.routes:
            if route.method == method:
                found = route.pattern.match(path)
                if found:
                    return route, found
        return None

    def path_known(self, path: str) -> bool:
        return any(route.pattern.match(path) for route in self.routes)

    async def dispatch(self, ctx: Context, request: web.Request) -> web.Response:
        found = self.find(request.method, request.path)
        if found is None:
            if self.path_known(request.path):
                raise ArmError(
                    405, "MethodNotAllowed", f"The method '{request.method}' is not allowed."
                )
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type could not be found for path '{request.path}'.",
            )
        route, match = found
        request[OPERATION] = route.operation
        claims = ctx.issuer.verify_arm(request.headers.get("Authorization"))
        caller = Caller(
            object_id=claims["oid"],
            app_id=claims.get("appid", ""),
            tenant_id=claims.get("tid", ""),
            name=claims.get("app_displayname", ""),
        )
        request[PRINCIPAL] = caller.object_id
        check_api_version(request, route)
        subscription = armids.subscription_of(request.path) or "tenant"
        if subscription != "tenant" and subscription not in ctx.store.subscriptions:
            raise subscription_not_found(subscription)
        allowed, retry_after, remaining = ctx.throttle.take(
            subscription, caller.object_id, kind_of(request.method)
        )
        kind = kind_of(request.method)
        request[RATELIMIT] = (kind, remaining)
        if not allowed:
            raise ArmError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{kind.removesuffix('s')}' requests for subscription '{subscription}' "
                f"actor '{caller.object_id}' exceeded. Please try again after "
                f"'{int(retry_after)}' seconds.",
                {"Retry-After": str(int(retry_after))},
            )
        if route.attributes is None:
            authorize(ctx, caller, route.action, request.path)
        body = await read_body(request)
        if route.attributes is not None:
            # A condition can only be decided with the request's attributes, which come
            # from the body (a write) or the stored resource (a delete).
            attributes = route.attributes(ctx, match, body)
            authorize(ctx, caller, route.action, request.path, attributes)
        return await route.handler(ArmRequest(ctx, request, match, caller, body))


async def read_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    try:
        return await request.json()
    except ValueError:
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        ) from None


def check_api_version(request: web.Request, route: Route) -> None:
    version = request.query.get("api-version")
    if not version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in route.api_versions:
        supported = ", ".join(sorted(route.api_versions))
        if route.resource_type in ("roleAssignments", "roleDefinitions"):
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type '{route.resource_type}' could not be found in the namespace "
                f"'Microsoft.Authorization' for api version '{version}'. The supported "
                f"api-versions are '{','.join(sorted(route.api_versions))}'.",
            )
        if route.resource_type in ("resourceGroups", "subscriptions"):
            raise ArmError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{','.join(sorted(route.api_versions, reverse=True))}'.",
            )
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location 'global' and API version "
            f"'{version}' for type '{route.resource_type}'. The supported api-versions are "
            f"'{supported}'.",
        )


def grants(ctx: Context) -> list[rbac.Grant]:
    """Every role assignment with its definition's permissions (ARM and data planes)."""
    found = []
    for assignment in ctx.store.role_assignments.values():
        definition = ctx.store.role_definition(assignment.role_definition_id)
        if definition is None:
            continue
        found.append(
            rbac.Grant(
                assignment.principal_id,
                assignment.scope,
                tuple(
                    rbac.Permission(
                        tuple(p.get("actions", [])),
                        tuple(p.get("notActions", [])),
                        tuple(p.get("dataActions", [])),
                        tuple(p.get("notDataActions", [])),
                    )
                    for p in definition.permissions
                ),
                assignment.condition,
            )
        )
    return found


def authorize(
    ctx: Context,
    caller: Caller,
    action: str,
    scope: str,
    attributes: abac.Attributes = abac.NO_ATTRIBUTES,
) -> None:
    principal_ids = [caller.object_id, *ctx.store.groups_of(caller.object_id)]
    if not rbac.is_allowed(grants(ctx), principal_ids, action, scope, attributes=attributes):
        raise ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{caller.app_id or caller.object_id}' with object id "
            f"'{caller.object_id}' does not have authorization or an ABAC condition not "
            f"fulfilled to perform action '{action}' over scope '{scope}' or the scope is "
            "invalid. If access was recently granted, please refresh your credentials.",
        )


def new_request_id() -> str:
    return str(uuid.uuid4())
