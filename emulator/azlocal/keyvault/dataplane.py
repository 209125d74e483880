"""The vault data plane: challenge, token check, api-version, RBAC data action, operation.

Every request is answered for the vault whose port it arrived on (see sites.py). The
pipeline mirrors ARM's (arm/router.py): route, authenticate, check the api-version,
authorize the route's data action, run the handler.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from azlocal import armids, rbac
from azlocal.arm.router import grants
from azlocal.context import OPERATION, PRINCIPAL, Context
from azlocal.entra import CTX
from azlocal.store import ArmResource
from azlocal.tokens import Caller, TokenProblem

from .errors import KeyVaultError, bad_parameter
from .model import VaultData

# The api-version azure-keyvault-certificates / -secrets 4.12 send by default (their
# DEFAULT_VERSION) and the two before it, whose bodies are the same for what is emulated.
API_VERSIONS = ("7.6", "2025-07-01", "2026-04-01")
LATEST_API_VERSION = "2026-04-01"
# Key Vault's public audience; a token for it is accepted by every vault, as in Azure.
PUBLIC_AUDIENCE = "https://vault.azure.net"
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")

VAULTS = web.AppKey("vaults", dict)  # local port -> vault ARM id (canonical key)


@dataclass
class VaultRequest:
    ctx: Context
    http: web.Request
    match: re.Match[str]
    caller: Caller
    vault: ArmResource
    data: VaultData
    body: Any

    @property
    def base(self) -> str:
        """The vault URI, with its trailing slash, as ids start."""
        return str(self.vault.properties["vaultUri"])

    def param(self, name: str) -> str:
        value = self.match.group(name)
        return "" if value is None else str(value)


Handler = Callable[[VaultRequest], Awaitable[web.Response]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    action: str  # RBAC data action
    collection: str  # "certificates" or "secrets": the per-object scope below the vault
    handler: Handler


ROUTES: list[Route] = []


def route(
    method: str, pattern: str, operation: str, action: str, collection: str = "certificates"
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(
            Route(method, re.compile(pattern, re.I), operation, action, collection, handler)
        )
        return handler

    return register


def resource_for(vault_uri: str) -> str:
    """The challenge's resource: the vault's host without its first label.

    The SDK accepts a challenge only when the request host ends with "." + the resource's
    host (as kv-ml.vault.azure.net ends with .vault.azure.net). A vault at
    https://127.0.0.1:PORT/ therefore advertises https://0.0.1:PORT; a host without a dot
    gets Key Vault's public audience (the SDK then needs verify_challenge_resource=False).
    """
    netloc = urlparse(vault_uri).netloc
    if "." not in netloc.split(":")[0]:
        return PUBLIC_AUDIENCE
    return "https://" + netloc.split(".", 1)[1]


def challenge_headers(ctx: Context, vault: ArmResource) -> dict[str, str]:
    resource = resource_for(str(vault.properties["vaultUri"]))
    return {
        "WWW-Authenticate": (
            f'Bearer authorization="{ctx.issuer.issuer_base}/{ctx.store.tenant_id}", '
            f'resource="{resource}"'
        )
    }


def authenticate(ctx: Context, vault: ArmResource, authorization: str | None) -> Caller:
    """The caller of a bearer token issued by azlocal for this vault, or Key Vault's 401."""
    headers = challenge_headers(ctx, vault)
    try:
        claims = ctx.issuer.bearer_claims(authorization)
    except TokenProblem as problem:
        # AKV10000 as recalled from Key Vault answers (unverified); the other AKV codes
        # are chosen, not verified.
        message = {
            "signature": "AKV10003: The token signature is invalid.",
            "expired": "AKV10005: The token has expired.",
        }.get(problem.kind, "AKV10000: Request is missing a Bearer or PoP token.")
        raise KeyVaultError(401, "Unauthorized", message, headers=headers) from None
    resource = resource_for(str(vault.properties["vaultUri"]))
    audiences = {resource, resource + "/", PUBLIC_AUDIENCE, PUBLIC_AUDIENCE + "/"}
    if claims.get("aud") not in audiences:
        raise KeyVaultError(
            401,
            "Unauthorized",
            f"AKV10022: Invalid audience. Expected {resource}, found: {claims.get('aud')}.",
            headers=headers,
        )
    if str(claims.get("tid", "")).lower() != ctx.store.tenant_id.lower():
        raise KeyVaultError(
            401,
            "Unauthorized",
            f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/"
            f"{ctx.store.tenant_id}/, found {claims.get('iss')}.",
            headers=headers,
        )
    return Caller(
        object_id=claims["oid"],
        app_id=claims.get("appid", ""),
        tenant_id=claims.get("tid", ""),
        name=claims.get("app_displayname", ""),
    )


def check_api_version(request: web.Request) -> None:
    version = request.query.get("api-version", "")
    if version not in API_VERSIONS:
        # Wording from Azure/azure-sdk-for-python#28595 and Azure/azure-sdk-for-net#14789.
        raise bad_parameter(
            f"The specified version ({version}) is not recognized. Consider using the latest "
            f"supported version ({LATEST_API_VERSION})."
        )


def authorize(ctx: Context, caller: Caller, vault: ArmResource, action: str, scope: str) -> None:
    """The data action at the object's scope (assignments at the object, vault or above)."""
    principal_ids = [caller.object_id, *ctx.store.groups_of(caller.object_id)]
    if rbac.is_allowed(grants(ctx), principal_ids, action, scope, data=True):
        return
    # Key Vault's RBAC refusal, as quoted in public issues (e.g.
    # piyushsachdeva/Terraform_AKS#2, hashicorp/terraform-provider-azurerm#27817).
    raise KeyVaultError(
        403,
        "Forbidden",
        "Caller is not authorized to perform action on resource.\r\n"
        "If role assignments, deny assignments or role definitions were changed recently, "
        "please observe propagation time.\r\n"
        f"Caller: appid={caller.app_id};oid={caller.object_id};"
        f"iss=https://sts.windows.net/{caller.tenant_id}/\r\n"
        f"Action: '{action}'\r\n"
        f"Resource: '{scope.lower()}'\r\n"
        "Assignment: (not found)\r\n"
        "DenyAssignmentId: null\r\n"
        "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
        f"Vault: {vault.name};location={vault.location}\r\n",
        inner="ForbiddenByRbac",
    )


def _vault_of(request: web.Request) -> tuple[ArmResource, VaultData]:
    ctx: Context = request.app[CTX]
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = int(sockname[1]) if sockname else (request.url.port or 443)
    key = request.app[VAULTS].get(port)
    vault = ctx.store.get(key) if key else None
    if vault is None:
        raise KeyVaultError(404, "VaultNotFound", "The vault of this endpoint does not exist.")
    data = ctx.store.vaults.setdefault(armids.norm(vault.id), VaultData())
    return vault, data


async def dispatch(request: web.Request) -> web.Response:
    ctx: Context = request.app[CTX]
    vault, data = _vault_of(request)
    found = None
    for candidate in ROUTES:
        match = candidate.pattern.match(request.path)
        if match and candidate.method == request.method:
            found = (candidate, match)
            break
    if found is None:
        if any(r.pattern.match(request.path) for r in ROUTES):
            raise KeyVaultError(
                405, "MethodNotAllowed", f"The method '{request.method}' is not allowed."
            )
        # Unverified: an unknown data-plane path.
        raise KeyVaultError(404, "NotFound", f"The path '{request.path}' is not recognized.")
    matched_route, match = found
    request[OPERATION] = matched_route.operation
    caller = authenticate(ctx, vault, request.headers.get("Authorization"))
    request[PRINCIPAL] = caller.object_id
    check_api_version(request)
    name = match.groupdict().get("name")
    if name is not None and not NAME_RE.match(name):
        raise bad_parameter(f"The request URI contains an invalid name: {name}")
    scope = vault.id if name is None else f"{vault.id}/{matched_route.collection}/{name}"
    authorize(ctx, caller, vault, matched_route.action, scope)
    body = None
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            raise bad_parameter("The request body is not valid JSON.") from None
    return await matched_route.handler(VaultRequest(ctx, request, match, caller, vault, data, body))
