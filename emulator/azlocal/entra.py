"""Entra ID: the v2.0 token endpoint (client credentials), its discovery documents,
and an IMDS-style managed-identity endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

import jwt
from aiohttp import web

from . import armids
from .arm.msi import FIC_TYPE
from .context import CLIENT_AUTH, OPERATION, PRINCIPAL, Context
from .errors import AadError
from .graph import GRAPH_AUDIENCES, graph_roles
from .keyvault.model import VAULT_TYPE
from .store import Application, CertificateCredential, Principal, SecretCredential
from .tokens import (
    ARM_AUDIENCES,
    ASSERTION_TYPE,
    certificate_assertion_thumbprints,
    verify_certificate_assertion,
)

CTX = web.AppKey("ctx", Context)
GRAPH_RESOURCES = {a.rstrip("/") for a in GRAPH_AUDIENCES}
# Resources of Microsoft's first-party applications that every tenant has (their service
# principals exist everywhere), besides ARM and Graph: Key Vault, Azure ML, Storage, and
# the audience of federated assertions (workload identity federation).
FIRST_PARTY_RESOURCES = (
    "https://vault.azure.net",
    "https://ml.azure.com",
    "https://storage.azure.com",
    "api://AzureADTokenExchange",
)
# Managed-identity tokens last a day: a fresh IMDS token answers expires_in "86399" (the
# VM sample in Azure/azure-cli src/azure-cli-core/azure/cli/core/auth/adal_authentication.py
# shows ext_expires_in "86399"; MicrosoftDocs/azure-docs#67361: tokens cached 24 hours).
MANAGED_IDENTITY_TOKEN_LIFETIME = 24 * 3600


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _require_tenant(ctx: Context, tenant: str) -> None:
    if tenant.lower() not in (ctx.store.tenant_id.lower(), ctx.store.tenant_name.lower()):
        raise AadError(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud.",
        )


async def openid_configuration(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    tenant = request.match_info["tenant"]
    _require_tenant(ctx, tenant)
    base = f"{_base(request)}/{ctx.store.tenant_id}"
    return web.json_response(
        {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_types_supported": ["code", "id_token", "token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        }
    )


async def jwks(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _require_tenant(ctx, request.match_info["tenant"])
    return web.json_response(ctx.issuer.jwks())


def _resource_of(scope: str) -> str:
    scopes = scope.split()
    default = [s for s in scopes if s.endswith("/.default")]
    if not default:
        raise AadError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier (application "
            "ID URI).",
        )
    return default[0][: -len("/.default")]


def _vault_resources(ctx: Context) -> list[str]:
    """What each vault's challenge advertises (its host without the first label)."""
    # Imported here: the data plane imports this module (for CTX).
    from .keyvault.dataplane import resource_for

    return [
        resource_for(str(r.properties.get("vaultUri") or ""))
        for r in ctx.store.resources.values()
        if r.type.lower() == VAULT_TYPE.lower() and r.properties.get("vaultUri")
    ]


def known_resources(ctx: Context) -> set[str]:
    """Resources (application ID URIs or app ids) with a service principal in the tenant,
    normalized: lower case, no trailing slash."""
    known = [*ARM_AUDIENCES, *GRAPH_AUDIENCES, *FIRST_PARTY_RESOURCES, *_vault_resources(ctx)]
    app_ids = [p.app_id for p in ctx.store.principals.values() if p.app_id]
    app_ids += [a.app_id for a in ctx.store.applications.values()]
    for app_id in app_ids:
        known += [app_id, f"api://{app_id}"]  # the default application ID URI
    return {_normalized(r) for r in known}


def _normalized(resource: str) -> str:
    return resource.rstrip("/").lower()


def _require_known_resource(ctx: Context, resource: str) -> None:
    if _normalized(resource) not in known_resources(ctx):
        # Entra's wording and `invalid_resource` (Azure/azure-cli#16850, #29113,
        # rootinc/laravel-azure-middleware#51); 400 per Microsoft's support article on
        # Outlook modern authentication ("HTTP response status code 400 (Bad Request)").
        raise AadError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{ctx.store.tenant_name}. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You might have sent your authentication request to the wrong tenant.",
        )


def _application(ctx: Context, principal: Principal) -> Application | None:
    return ctx.store.application_by_app_id(principal.app_id) if principal.app_id else None


def _secrets(ctx: Context, principal: Principal) -> list[SecretCredential]:
    """Secrets of the service principal and of its application registration."""
    app = _application(ctx, principal)
    return principal.secrets + (app.secrets if app else [])


def _certificates(ctx: Context, principal: Principal) -> list[CertificateCredential]:
    app = _application(ctx, principal)
    return principal.certificates + (app.certificates if app else [])


def _check_secret(ctx: Context, principal: Principal, secret: str) -> None:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    for credential in _secrets(ctx, principal):
        if hmac.compare_digest(credential.sha256, digest):
            if credential.end < ctx.now():
                raise AadError(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{principal.app_id}' are expired. "
                    "Visit the Azure portal to create new keys for your app: "
                    "https://aka.ms/NewClientSecret, or consider using certificate credentials "
                    "for added security: https://aka.ms/certCreds.",
                )
            return
    raise AadError(
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app "
        f"'{principal.app_id}'.",
    )


def _check_certificate(
    ctx: Context, principal: Principal, assertion: str, token_endpoint: str
) -> None:
    x5t, x5t256, _alg = certificate_assertion_thumbprints(assertion)
    for credential in _certificates(ctx, principal):
        sha1 = bytes.fromhex(credential.thumbprint_sha1)
        sha256 = bytes.fromhex(credential.thumbprint_sha256)
        # Clients differ on padding ("=" kept by azure-identity, dropped by others).
        if _b64url(sha1) != (x5t or "").rstrip("=") and _b64url(sha256) != (x5t256 or "").rstrip(
            "="
        ):
            continue
        now = ctx.now()
        if not credential.start <= now <= credential.end:
            # Entra today answers AADSTS1000502 (microsoft-identity-web#2834, 2024); older
            # answers were AADSTS700027 "The key used is expired" (azure-tools-for-java#2785).
            raise AadError(
                401,
                "invalid_client",
                1000502,
                "The provided certificate is not within its specified validity window. "
                f"Thumbprint of key used by client: '{credential.thumbprint_sha1}', valid from "
                f"{_us_time(credential.start)} to {_us_time(credential.end)} (UTC).",
            )
        verify_certificate_assertion(
            assertion,
            _der(credential.der_b64),
            client_id=principal.app_id or "",
            audiences=[
                token_endpoint,
                token_endpoint.replace("/oauth2/v2.0/token", "/oauth2/token"),
            ],
            now=now,
        )
        return
    raise AadError(
        401,
        "invalid_client",
        700027,
        "The certificate with identifier used to sign the client assertion is not registered on "
        "application. [Reason - The key was not found., Please visit the Azure Portal, Graph "
        f"Explorer or directly use MS Graph to see configured keys for app Id "
        f"'{principal.app_id}'. Thumbprint of key used by client: '{x5t or x5t256}']",
    )


def _us_time(epoch: float) -> str:
    return time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(epoch))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der(b64: str) -> bytes:
    return base64.b64decode(b64)


def federated_credentials(ctx: Context, principal: Principal) -> list[dict[str, object]]:
    """Federated credentials of a principal (managed identities keep theirs in ARM)."""
    if principal.managed_identity_of:
        return [f.properties for f in ctx.store.children(principal.managed_identity_of, FIC_TYPE)]
    app = _application(ctx, principal)
    return list(app.federated) if app else []


async def _check_federated(ctx: Context, principal: Principal, assertion: str) -> None:
    unverified = jwt.decode(assertion, options={"verify_signature": False})
    issuer, subject = unverified.get("iss"), unverified.get("sub")
    candidates = [f for f in federated_credentials(ctx, principal) if f["issuer"] == issuer]
    if not candidates:
        raise AadError(
            401,
            "invalid_client",
            700211,
            f"No matching federated identity record found for presented assertion issuer "
            f"'{issuer}'. Please check your federated identity credential Subject, Audience and "
            "Issuer against the presented assertion.",
        )
    matching = [f for f in candidates if f["subject"] == subject]
    if not matching:
        raise AadError(
            401,
            "invalid_client",
            700213,
            f"No matching federated identity record found for presented assertion subject "
            f"'{subject}'. Please check your federated identity credential Subject, Audience and "
            "Issuer against the presented assertion.",
        )
    audiences = [str(a) for f in matching for a in f["audiences"]]  # type: ignore[attr-defined]
    await ctx.oidc.verify(assertion, audiences, ctx.now())


async def token(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    request[OPERATION] = "oauth2/token"
    tenant = request.match_info["tenant"]
    _require_tenant(ctx, tenant)
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        raise AadError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{form.get('grant_type')!s}'.",
        )
    client_id = str(form.get("client_id") or "")
    principal = ctx.store.principal_by_app_id(client_id) if client_id else None
    if principal is None and client_id and ctx.store.application_by_app_id(client_id):
        raise AadError(
            401,
            "invalid_client",
            7000229,
            f"The client application {client_id} is missing service principal in the tenant "
            f"{ctx.store.tenant_id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
        )
    if principal is None:
        raise AadError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{ctx.store.tenant_name}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You may have sent your authentication request to the wrong tenant.",
        )
    resource = _resource_of(str(form.get("scope") or ""))
    secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    token_endpoint = f"{_base(request)}/{tenant}/oauth2/v2.0/token"
    if isinstance(secret, str) and secret:
        _check_secret(ctx, principal, secret)
        method = "1"
        request[CLIENT_AUTH] = "secret"
    elif isinstance(assertion, str) and assertion:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise AadError(
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type; expected "
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            )
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise AadError(
                400, "invalid_request", 50027, "JWT token is invalid or malformed."
            ) from None
        if issuer == principal.app_id:
            request[CLIENT_AUTH] = f"certificate:{jwt.get_unverified_header(assertion).get('alg')}"
            _check_certificate(ctx, principal, assertion, token_endpoint)
        else:
            request[CLIENT_AUTH] = "federated"
            await _check_federated(ctx, principal, assertion)
        method = "2"
    else:
        raise AadError(
            400,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )
    request[PRINCIPAL] = principal.object_id
    _require_known_resource(ctx, resource)
    access_token, lifetime = ctx.issuer.issue(
        audience=resource,
        object_id=principal.object_id,
        app_id=principal.app_id or "",
        name=principal.display_name,
        extra={
            "appidacr": method,
            **_mi_claims(principal),
            **(graph_roles(principal) if resource.rstrip("/") in GRAPH_RESOURCES else {}),
        },
    )
    return web.json_response(
        {
            "token_type": "Bearer",
            "expires_in": lifetime - 1,
            "ext_expires_in": lifetime - 1,
            "access_token": access_token,
        }
    )


async def token_other_methods(request: web.Request) -> web.Response:
    """The token endpoint takes only POST (and CORS preflights)."""
    request[OPERATION] = "oauth2/token"
    if request.method == "OPTIONS":
        return web.Response(status=200, headers={"Allow": "POST, OPTIONS"})
    # Entra's wording (quoted in BitySA/oauth2-auth-code-pkce#30, nbarbettini/oidc-debugger#87
    # and blacklanternsecurity/TREVORspray#19); the 400 and `invalid_request` follow its
    # other malformed-request answers (unverified for this code).
    raise AadError(
        400,
        "invalid_request",
        900561,
        f"The endpoint only accepts POST, OPTIONS requests. Received a {request.method} request.",
    )


def _mi_claims(principal: Principal) -> dict[str, str]:
    return {"xms_mirid": principal.managed_identity_of} if principal.managed_identity_of else {}


async def imds_token(request: web.Request) -> web.Response:
    """IMDS (169.254.169.254) style: a process acts as a seeded managed identity."""
    ctx = request.app[CTX]
    request[OPERATION] = "imds/token"
    if request.headers.get("Metadata", "").lower() != "true":
        return web.json_response(
            {
                "error": "invalid_request",
                "error_description": "Required metadata header not specified",
            },
            status=400,
        )
    query = request.query
    resource = query.get("resource", "")
    if not resource:
        return web.json_response(
            {
                "error": "invalid_request",
                "error_description": "Required query variable 'resource' is missing",
            },
            status=400,
        )
    principal = _managed_identity(ctx, query)
    if principal is None:
        return web.json_response(
            {"error": "invalid_request", "error_description": "Identity not found"}, status=400
        )
    request[PRINCIPAL] = principal.object_id
    access_token, lifetime = ctx.issuer.issue(
        audience=resource.removesuffix("/.default"),
        object_id=principal.object_id,
        app_id=principal.app_id or "",
        name=principal.display_name,
        extra={"appidacr": "2", **_mi_claims(principal)},
        lifetime=MANAGED_IDENTITY_TOKEN_LIFETIME,
    )
    now = int(ctx.now())
    # IMDS's fields, numbers as strings (entra-docs how-to-use-vm-token.md; the azure-cli
    # sample above adds client_id and ext_expires_in and has no refresh_token).
    return web.json_response(
        {
            "access_token": access_token,
            "client_id": principal.app_id,
            "expires_in": str(lifetime - 1),
            "expires_on": str(now + lifetime - 1),
            "ext_expires_in": str(lifetime - 1),
            "not_before": str(now),
            "resource": resource,
            "token_type": "Bearer",
        }
    )


def _managed_identity(ctx: Context, q: Mapping[str, str]) -> Principal | None:
    identities = [p for p in ctx.store.principals.values() if p.managed_identity_of]
    if q.get("client_id"):
        return next(
            (p for p in identities if (p.app_id or "").lower() == q["client_id"].lower()), None
        )
    if q.get("object_id"):
        return next((p for p in identities if p.object_id.lower() == q["object_id"].lower()), None)
    resource_id = q.get("msi_res_id") or q.get("mi_res_id")
    if resource_id:
        return next(
            (p for p in identities if armids.same(p.managed_identity_of or "", resource_id)), None
        )
    return None
