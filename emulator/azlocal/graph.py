"""Microsoft Graph v1.0: applications, their credentials and federated credentials, and
service principals, with Graph's permission model for application callers.

Permissions come from the `roles` claim of the caller's Graph token:

- Application.ReadWrite.All: every application and service principal.
- Application.ReadWrite.OwnedBy: read every application and service principal; create
  applications (the caller becomes an owner) and service principals for applications it
  owns; update, add and remove credentials, and delete only the applications and service
  principals it owns. Microsoft's permission reference: it "cannot update any apps that
  it is not an owner of" (and, per graphpermissions.merill.net's copy of the reference,
  may still read them all).

Errors use Graph's OData envelope. Addressing by id, `(appId='...')` and
`(uniqueName='...')` is supported, and PATCH on an alternate key with
`Prefer: create-if-missing` is an upsert.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .context import OPERATION, PRINCIPAL, Context
from .store import Application, CertificateCredential, Principal, SecretCredential
from .tokens import TokenProblem

GRAPH_AUDIENCES = (
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
)
PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
READ_WRITE_ALL = "Application.ReadWrite.All"
OWNED_BY = "Application.ReadWrite.OwnedBy"
MAX_FEDERATED = 20
FIC_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9_]{2,119}$")
TWO_YEARS = 2 * 365 * 24 * 3600


class GraphError(Exception):
    """A Graph failure, rendered in the OData error envelope."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self, request: web.Request | None = None) -> web.Response:
        inner = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": str(uuid.uuid4()),
            "client-request-id": (request.headers.get("client-request-id") if request else None)
            or str(uuid.uuid4()),
        }
        return web.json_response(
            {"error": {"code": self.code, "message": self.message, "innerError": inner}},
            status=self.status,
            headers=self.headers,
        )


def denied() -> GraphError:
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


@dataclass(frozen=True)
class Caller:
    object_id: str
    roles: frozenset[str]


@dataclass
class Call:
    ctx: Context
    request: web.Request
    caller: Caller
    match: re.Match[str]
    body: Any

    def owns(self, owners: list[str]) -> bool:
        return self.caller.object_id in owners

    def may_write(self, owners: list[str]) -> None:
        if READ_WRITE_ALL in self.caller.roles:
            return
        if OWNED_BY in self.caller.roles and self.owns(owners):
            return
        raise denied()

    def may_read(self, owners: list[str]) -> None:
        if not self.caller.roles & {READ_WRITE_ALL, OWNED_BY}:
            raise denied()


Handler = Callable[[Call], Awaitable[web.StreamResponse]]
ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []
APP = r"/applications(?:/(?P<id>[0-9a-fA-F-]{36})|\((?P<alt>appId|uniqueName)='(?P<key>[^']*)'\))"
SP = r"/servicePrincipals(?:/(?P<id>[0-9a-fA-F-]{36})|\(appId='(?P<key>[^']*)'\))"


def route(method: str, pattern: str, operation: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{pattern}$"), operation, handler))
        return handler

    return register


def authenticate(ctx: Context, authorization: str | None) -> Caller:
    try:
        claims = ctx.issuer.bearer_claims(authorization)
    except TokenProblem as problem:
        message = {
            "signature": "Access token validation failure. Invalid signature.",
            "expired": "Lifetime validation failed, the token is expired.",
        }.get(problem.kind, "Access token is empty.")
        raise GraphError(401, "InvalidAuthenticationToken", message) from None
    if claims.get("aud") not in GRAPH_AUDIENCES:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    return Caller(str(claims.get("oid", "")), frozenset(claims.get("roles") or ()))


async def handle(request: web.Request) -> web.StreamResponse:
    """Every /v1.0 request."""
    ctx: Context = request.app[CTX]
    path = request.path[len("/v1.0") :] or "/"
    for method, pattern, operation, handler in ROUTES:
        match = pattern.match(path)
        if match and method == request.method:
            request[OPERATION] = operation
            caller = authenticate(ctx, request.headers.get("Authorization"))
            request[PRINCIPAL] = caller.object_id
            body = await request.json() if request.can_read_body else None
            return await handler(Call(ctx, request, caller, match, body))
    request[OPERATION] = "graph/unrouted"
    segment = path.strip("/").split("/")[-1] or path
    raise bad_request(f"Resource not found for the segment '{segment}'.", "BadRequest")


CTX: web.AppKey[Context] = web.AppKey("graph-ctx", Context)


# --- wire forms ---


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: Any) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise bad_request(f"Invalid date/time value '{text}'.") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key_json(cert: CertificateCredential, *, with_key: bool) -> dict[str, Any]:
    return {
        "customKeyIdentifier": base64.b64encode(bytes.fromhex(cert.thumbprint_sha1)).decode(),
        "displayName": cert.display_name or None,
        "endDateTime": _iso(cert.end),
        "key": cert.der_b64 if with_key else None,
        "keyId": cert.key_id,
        "startDateTime": _iso(cert.start),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    }


def _password_json(secret: SecretCredential) -> dict[str, Any]:
    return {
        "customKeyIdentifier": None,
        "displayName": secret.display_name or None,
        "endDateTime": _iso(secret.end),
        "hint": secret.hint,
        "keyId": secret.key_id,
        "secretText": None,
        "startDateTime": _iso(secret.start),
    }


def _before_write(call: Call, app: Application) -> None:
    """Remember the credentials as they were, for the replicas that lag (settings)."""
    if call.ctx.settings.graph_read_lag_seconds > 0:
        call.ctx.graph_before_write[app.object_id] = (
            time.monotonic(),
            list(app.certificates),
            list(app.secrets),
        )


def _as_a_replica_sees(call: Call, app: Application) -> Application:
    """The application as a read may see it: before a credential write made less than
    graph_read_lag_seconds ago."""
    lag = call.ctx.settings.graph_read_lag_seconds
    before = call.ctx.graph_before_write.get(app.object_id)
    if lag <= 0 or before is None or time.monotonic() - before[0] >= lag:
        return app
    return replace(app, certificates=before[1], secrets=before[2])


def _app_json(app: Application, *, with_keys: bool = False) -> dict[str, Any]:
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#applications/$entity",
        "id": app.object_id,
        "appId": app.app_id,
        "displayName": app.display_name,
        "uniqueName": app.unique_name,
        "signInAudience": app.sign_in_audience,
        "notes": app.notes,
        "tags": list(app.tags),
        "createdDateTime": _iso(app.created_at),
        "keyCredentials": [_key_json(c, with_key=with_keys) for c in app.certificates],
        "passwordCredentials": [_password_json(s) for s in app.secrets],
    }


def _sp_json(sp: Principal) -> dict[str, Any]:
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity",
        "id": sp.object_id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "servicePrincipalType": sp.service_principal_type,
        "accountEnabled": True,
        "tags": list(sp.tags),
    }


def certificate_from_json(
    raw: dict[str, Any], existing: list[CertificateCredential]
) -> CertificateCredential:
    """A keyCredential from a request; `key` (base64 DER) is required."""
    if (
        raw.get("type", "AsymmetricX509Cert") != "AsymmetricX509Cert"
        or raw.get("usage", "Verify") != "Verify"
    ):
        raise bad_request("Only AsymmetricX509Cert keys with usage Verify are supported.")
    key = raw.get("key")
    if not key:
        key_id = raw.get("keyId")
        kept = next((c for c in existing if c.key_id == key_id), None)
        if kept is None:
            raise bad_request("Property 'key' is required for a new key credential.")
        return kept
    try:
        der = base64.b64decode(str(key))
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        raise bad_request("Key credential's key is not a valid X.509 certificate.") from None
    start = _epoch(raw.get("startDateTime")) or certificate.not_valid_before_utc.timestamp()
    end = _epoch(raw.get("endDateTime")) or certificate.not_valid_after_utc.timestamp()
    if end > certificate.not_valid_after_utc.timestamp() + 1:
        raise bad_request(
            "Key credential end date is invalid: it is later than the certificate's expiry.",
            "KeyCredentialsInvalidEndDate",
        )
    return CertificateCredential(
        key_id=str(raw.get("keyId") or uuid.uuid4()),
        der_b64=base64.b64encode(der).decode(),
        thumbprint_sha1=hashlib.sha1(der).hexdigest().upper(),  # noqa: S324 (thumbprint)
        thumbprint_sha256=hashlib.sha256(der).hexdigest().upper(),
        start=start,
        end=end,
        display_name=str(raw.get("displayName") or ""),
    )


# --- finding things ---


def _application(call: Call) -> Application:
    apps = call.ctx.store.applications
    found: Application | None
    if call.match.group("id"):
        found = apps.get(call.match.group("id").lower())
        key = call.match.group("id")
    else:
        alt, key = call.match.group("alt"), call.match.group("key")
        field = "app_id" if alt == "appId" else "unique_name"
        found = next(
            (a for a in apps.values() if (getattr(a, field) or "").lower() == key.lower()), None
        )
    if found is None:
        raise not_found(key)
    call.may_read(found.owners)
    return found


def _service_principal(call: Call) -> Principal:
    store = call.ctx.store
    if call.match.group("id"):
        found = store.principals.get(call.match.group("id").lower())
        key = call.match.group("id")
    else:
        key = call.match.group("key")
        found = store.principal_by_app_id(key)
    if found is None or found.kind != "ServicePrincipal" or found.managed_identity_of:
        raise not_found(key)
    call.may_read(found.owners)
    return found


def _body(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise bad_request("Empty Payload. JSON content expected.", "BadRequest")
    return call.body


# --- applications ---


def _create_application(call: Call, body: dict[str, Any], unique_name: str | None) -> Application:
    if OWNED_BY not in call.caller.roles and READ_WRITE_ALL not in call.caller.roles:
        raise denied()
    name = body.get("displayName")
    if not name:
        raise bad_request("Property 'displayName' is required.")
    unique_name = unique_name or body.get("uniqueName")
    if unique_name and any(
        (a.unique_name or "").lower() == unique_name.lower()
        for a in call.ctx.store.applications.values()
    ):
        raise bad_request(
            "Another object with the same value for property uniqueName already exists.",
            "Request_MultipleObjectsWithSameKeyValue",
        )
    app = Application(
        object_id=str(uuid.uuid4()),
        app_id=str(uuid.uuid4()),
        display_name=str(name),
        created_at=call.ctx.now(),
        unique_name=unique_name,
        sign_in_audience=str(body.get("signInAudience") or "AzureADMyOrg"),
        owners=[call.caller.object_id],
    )
    _update_application(app, body)
    call.ctx.store.applications[app.object_id] = app
    return app


def _update_application(app: Application, body: dict[str, Any]) -> None:
    if "passwordCredentials" in body:
        raise bad_request(
            "Updating passwordCredentials is not supported; use addPassword and removePassword.",
        )
    for wire, attribute in (("displayName", "display_name"), ("notes", "notes")):
        if wire in body:
            setattr(app, attribute, body[wire])
    if "tags" in body:
        app.tags = [str(t) for t in body["tags"] or []]
    if "keyCredentials" in body:
        app.certificates = [
            certificate_from_json(raw, app.certificates) for raw in body["keyCredentials"] or []
        ]


@route("POST", r"/applications", "graph/applications/create")
async def create_application(call: Call) -> web.Response:
    app = _create_application(call, _body(call), None)
    return web.json_response(_app_json(app), status=201)


@route("GET", r"/applications", "graph/applications/list")
async def list_applications(call: Call) -> web.Response:
    apps = [
        a
        for a in call.ctx.store.applications.values()
        if call.caller.roles & {READ_WRITE_ALL, OWNED_BY}
    ]
    apps = _filter(call, apps)
    return _page(call, [_app_json(a) for a in apps])


def _filter(call: Call, apps: list[Application]) -> list[Application]:
    expression = call.request.query.get("$filter")
    if not expression:
        return apps
    match = re.fullmatch(r"\s*(appId|displayName|uniqueName)\s+eq\s+'([^']*)'\s*", expression)
    if match:
        field = {"appId": "app_id", "displayName": "display_name", "uniqueName": "unique_name"}
        wanted = match.group(2)
        return [a for a in apps if (getattr(a, field[match.group(1)]) or "") == wanted]
    match = re.fullmatch(r"\s*tags/any\(t:\s*t\s+eq\s+'([^']*)'\)\s*", expression)
    if match:
        return [a for a in apps if match.group(1) in a.tags]
    raise bad_request(f"Unsupported or invalid query filter clause specified: {expression}")


def _page(call: Call, items: list[dict[str, Any]]) -> web.Response:
    query = call.request.query
    try:
        top = min(999, int(query.get("$top", call.ctx.settings.page_size)))
        skip = int(query.get("$skiptoken", "0"))
    except ValueError:
        raise bad_request("Invalid $top or $skiptoken.") from None
    body: dict[str, Any] = {"value": items[skip : skip + top]}
    if skip + top < len(items):
        url = call.request.url.with_query(
            {**query, "$top": str(top), "$skiptoken": str(skip + top)}
        )
        body["@odata.nextLink"] = str(url)
    return web.json_response(body)


@route("GET", APP, "graph/applications/read")
async def get_application(call: Call) -> web.Response:
    app = _as_a_replica_sees(call, _application(call))
    selected = call.request.query.get("$select", "")
    # Graph returns certificates (the `key`) only when keyCredentials is selected.
    with_keys = "keycredentials" in selected.lower()
    return web.json_response(_app_json(app, with_keys=with_keys))


def _creates_if_missing(call: Call, error: GraphError) -> bool:
    """A PATCH on an alternate key that found nothing, asked to upsert."""
    upsert = "create-if-missing" in call.request.headers.get("Prefer", "").lower()
    return error.status == 404 and upsert


@route("PATCH", APP, "graph/applications/update")
async def update_application(call: Call) -> web.Response:
    body = _body(call)
    try:
        app = _application(call)
    except GraphError as error:
        if not _creates_if_missing(call, error) or call.match.group("alt") != "uniqueName":
            raise
        created = _create_application(call, body, call.match.group("key"))
        return web.json_response(_app_json(created), status=201)
    call.may_write(app.owners)
    if "keyCredentials" in body:
        _before_write(call, app)
    _update_application(app, body)
    return web.Response(status=204)


@route("DELETE", APP, "graph/applications/delete")
async def delete_application(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    store = call.ctx.store
    del store.applications[app.object_id]
    # Deleting an application deletes its service principal in the home tenant.
    sp = store.principal_by_app_id(app.app_id)
    if sp is not None and not sp.managed_identity_of:
        del store.principals[sp.object_id]
    return web.Response(status=204)


# --- credentials ---


def bad_proof() -> GraphError:
    """What Graph answers for a proof it cannot accept (microsoft-graph-docs-contrib
    #4259, #1076, #2862 quote it)."""
    return GraphError(
        401, "Authentication_MissingOrMalformed", "Access Token missing or malformed."
    )


def _verify_proof(app: Application, proof: Any, now: float) -> None:
    """addKey/removeKey proof of possession: a JWT signed by a currently valid key of the
    application, aud 00000002-0000-0000-c000-000000000000, iss the application's id. An
    application without a valid certificate cannot prove anything: it must use PATCH."""
    if not isinstance(proof, str) or not proof:
        raise denied()  # msgraph-sdk-powershell#779: a missing proof is a 403
    valid = [c for c in app.certificates if c.start <= now <= c.end]
    if not valid:
        raise bad_proof()
    for certificate in valid:
        public_key = x509.load_der_x509_certificate(
            base64.b64decode(certificate.der_b64)
        ).public_key()
        try:
            claims = jwt.decode(
                proof,
                public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                algorithms=["RS256", "PS256"],
                audience=PROOF_AUDIENCE,
                issuer=app.object_id,
                options={
                    "require": ["aud", "iss", "nbf", "exp"],
                    "verify_exp": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise bad_proof() from None
        if not claims["nbf"] <= now <= claims["exp"] or claims["exp"] - claims["nbf"] > 600:
            raise bad_proof()
        return
    raise bad_proof()


@route("POST", APP + r"/addKey", "graph/applications/addKey")
async def add_key(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    body = _body(call)
    _verify_proof(app, body.get("proof"), call.ctx.now())
    raw = body.get("keyCredential")
    if not isinstance(raw, dict):
        raise bad_request("Property 'keyCredential' is required.")
    certificate = certificate_from_json({**raw, "keyId": None}, [])
    _before_write(call, app)
    app.certificates.append(certificate)
    return web.json_response(_key_json(certificate, with_key=False))


@route("POST", APP + r"/removeKey", "graph/applications/removeKey")
async def remove_key(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    body = _body(call)
    _verify_proof(app, body.get("proof"), call.ctx.now())
    key_id = str(body.get("keyId") or "")
    if not any(c.key_id == key_id for c in app.certificates):
        raise not_found(key_id)
    _before_write(call, app)
    app.certificates = [c for c in app.certificates if c.key_id != key_id]
    return web.Response(status=204)


@route("POST", APP + r"/addPassword", "graph/applications/addPassword")
async def add_password(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    raw = (_body(call).get("passwordCredential") or {}) if call.body else {}
    now = call.ctx.now()
    start = _epoch(raw.get("startDateTime")) or now
    end = _epoch(raw.get("endDateTime")) or start + TWO_YEARS
    text = secrets.token_urlsafe(30)[:40]
    secret = SecretCredential(
        key_id=str(uuid.uuid4()),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        hint=text[:3],
        start=start,
        end=end,
        display_name=str(raw.get("displayName") or ""),
    )
    _before_write(call, app)
    app.secrets.append(secret)
    # The only time the text is ever returned.
    return web.json_response({**_password_json(secret), "secretText": text})


@route("POST", APP + r"/removePassword", "graph/applications/removePassword")
async def remove_password(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    key_id = str(_body(call).get("keyId") or "")
    if not any(s.key_id == key_id for s in app.secrets):
        raise not_found(key_id)
    _before_write(call, app)
    app.secrets = [s for s in app.secrets if s.key_id != key_id]
    return web.Response(status=204)


# --- federated identity credentials on applications ---

FICS = APP + r"/federatedIdentityCredentials"
FIC = FICS + r"/(?P<fic>[^/]+)"


def _fic_json(app: Application, fic: dict[str, Any]) -> dict[str, Any]:
    return {
        "@odata.context": (
            f"https://graph.microsoft.com/v1.0/$metadata#applications('{app.object_id}')"
            "/federatedIdentityCredentials/$entity"
        ),
        **fic,
    }


def _checked_fic(app: Application, raw: dict[str, Any], name: str, fic_id: str) -> dict[str, Any]:
    issuer, subject, audiences = raw.get("issuer"), raw.get("subject"), raw.get("audiences")
    if not FIC_NAME.match(name):
        raise bad_request(f"Invalid federated identity credential name '{name}'.")
    if not isinstance(issuer, str) or not issuer or len(issuer) > 600:
        raise bad_request("Property 'issuer' is required and at most 600 characters.")
    if not isinstance(subject, str) or not subject or len(subject) > 600:
        raise bad_request("Property 'subject' is required and at most 600 characters.")
    if not isinstance(audiences, list) or len(audiences) != 1:
        raise bad_request("Property 'audiences' must contain exactly one value.")
    for other in app.federated:
        if other["id"] != fic_id and (other["issuer"], other["subject"]) == (issuer, subject):
            raise bad_request(
                "FederatedIdentityCredential with the same issuer and subject already exists.",
                "Request_MultipleObjectsWithSameKeyValue",
            )
    return {
        "id": fic_id,
        "name": name,
        "issuer": issuer,
        "subject": subject,
        "audiences": [str(a) for a in audiences],
        "description": raw.get("description"),
    }


def _fic(app: Application, key: str) -> dict[str, Any]:
    found = next((f for f in app.federated if key in (f["id"], f["name"])), None)
    if found is None:
        raise not_found(key)
    return found


@route("GET", FICS, "graph/federatedIdentityCredentials/list")
async def list_fics(call: Call) -> web.Response:
    app = _application(call)
    return _page(call, [dict(f) for f in app.federated])


@route("POST", FICS, "graph/federatedIdentityCredentials/create")
async def create_fic(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    body = _body(call)
    name = str(body.get("name") or "")
    if any(f["name"] == name for f in app.federated):
        raise bad_request(
            f"FederatedIdentityCredential with name {name} already exists.",
            "Request_MultipleObjectsWithSameKeyValue",
        )
    if len(app.federated) >= MAX_FEDERATED:
        # Unverified wording; the limit (20 per application) is documented.
        raise bad_request(
            f"An application can have at most {MAX_FEDERATED} federated identity credentials.",
            "Request_BadRequest",
        )
    fic = _checked_fic(app, body, name, str(uuid.uuid4()))
    app.federated.append(fic)
    return web.json_response(_fic_json(app, fic), status=201)


@route("GET", FIC, "graph/federatedIdentityCredentials/read")
async def get_fic(call: Call) -> web.Response:
    app = _application(call)
    return web.json_response(_fic_json(app, _fic(app, call.match.group("fic"))))


@route("PATCH", FIC, "graph/federatedIdentityCredentials/update")
async def update_fic(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    current = _fic(app, call.match.group("fic"))
    body = _body(call)
    if body.get("name") not in (None, current["name"]):
        raise bad_request("Property 'name' is read-only once set.")
    merged = {**current, **{k: v for k, v in body.items() if k != "name"}}
    updated = _checked_fic(app, merged, current["name"], current["id"])
    app.federated = [updated if f["id"] == current["id"] else f for f in app.federated]
    return web.Response(status=204)


@route("DELETE", FIC, "graph/federatedIdentityCredentials/delete")
async def delete_fic(call: Call) -> web.Response:
    app = _application(call)
    call.may_write(app.owners)
    current = _fic(app, call.match.group("fic"))
    app.federated = [f for f in app.federated if f["id"] != current["id"]]
    return web.Response(status=204)


# --- service principals ---


def _create_service_principal(call: Call, app_id: str, body: dict[str, Any]) -> Principal:
    store = call.ctx.store
    app = store.application_by_app_id(app_id)
    if app is None:
        raise bad_request(
            f"The appId '{app_id}' of the service principal does not reference a valid "
            "application object.",
            "NoBackingApplicationObject",
        )
    call.may_write(app.owners)
    if store.principal_by_app_id(app_id) is not None:
        raise GraphError(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "The service principal cannot be created, updated, or restored because the service "
            "principal name "
            f"{app_id} is already in use.",
        )
    principal = Principal(
        object_id=str(uuid.uuid4()),
        kind="ServicePrincipal",
        display_name=app.display_name,
        created_at=call.ctx.now(),
        app_id=app.app_id,
        owners=[call.caller.object_id],
        tags=[str(t) for t in body.get("tags") or []],
    )
    store.principals[principal.object_id] = principal
    return principal


@route("POST", r"/servicePrincipals", "graph/servicePrincipals/create")
async def create_service_principal(call: Call) -> web.Response:
    body = _body(call)
    principal = _create_service_principal(call, str(body.get("appId") or ""), body)
    return web.json_response(_sp_json(principal), status=201)


@route("GET", SP, "graph/servicePrincipals/read")
async def get_service_principal(call: Call) -> web.Response:
    return web.json_response(_sp_json(_service_principal(call)))


@route("PATCH", SP, "graph/servicePrincipals/update")
async def update_service_principal(call: Call) -> web.Response:
    body = _body(call)
    try:
        principal = _service_principal(call)
    except GraphError as error:
        if not _creates_if_missing(call, error) or not call.match.group("key"):
            raise
        created = _create_service_principal(call, call.match.group("key"), body)
        return web.json_response(_sp_json(created), status=201)
    call.may_write(principal.owners)
    if "tags" in body:
        principal.tags = [str(t) for t in body["tags"] or []]
    return web.Response(status=204)


@route("DELETE", SP, "graph/servicePrincipals/delete")
async def delete_service_principal(call: Call) -> web.Response:
    principal = _service_principal(call)
    call.may_write(principal.owners)
    del call.ctx.store.principals[principal.object_id]
    return web.Response(status=204)


def graph_roles(principal: Principal) -> dict[str, Any]:
    """Extra claims of a token for Graph: the caller's application permissions."""
    return {"roles": list(principal.graph_permissions)} if principal.graph_permissions else {}
