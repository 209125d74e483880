"""Certificate operations (issuer `Self`, or `Unknown` completed by a merge) and the
secret view of a certificate."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from aiohttp import web

from .certs import (
    PKCS12,
    PolicyError,
    issue_self_signed,
    merged,
    request_for_unknown_issuer,
    secret_value,
    x5t,
)
from .dataplane import VaultRequest, route
from .errors import (
    KeyVaultError,
    bad_parameter,
    certificate_not_found,
    pending_not_found,
    secret_not_found,
)
from .model import CertificateVersion, PendingOperation, StoredCertificate

KV = "Microsoft.KeyVault/vaults"
NAME = r"(?P<name>[^/]+)"
RECOVERABLE_DAYS = 90
RECOVERY_LEVEL = "Recoverable+Purgeable"
DAY = 24 * 3600


def _attributes(version: CertificateVersion) -> dict[str, Any]:
    return {
        "enabled": version.enabled,
        "nbf": int(version.not_before),
        "exp": int(version.expires),
        "created": int(version.created),
        "updated": int(version.created),
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    }


def _policy(req: VaultRequest, name: str, version: CertificateVersion) -> dict[str, Any]:
    created = int(version.created)
    return {
        **version.policy,
        "id": f"{req.base}certificates/{name}/policy",
        "attributes": {"enabled": True, "created": created, "updated": created},
    }


def _bundle(
    req: VaultRequest, cert: StoredCertificate, version: CertificateVersion, *, policy: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"{req.base}certificates/{cert.name}/{version.version}",
        "kid": f"{req.base}keys/{cert.name}/{version.version}",
        "sid": f"{req.base}secrets/{cert.name}/{version.version}",
        "x5t": x5t(version.cer_b64),
        "cer": version.cer_b64,
        "attributes": _attributes(version),
        "tags": dict(version.tags),
    }
    if policy:
        body["policy"] = _policy(req, cert.name, version)
    return body


def _deleted_bundle(req: VaultRequest, cert: StoredCertificate) -> dict[str, Any]:
    latest = cert.latest
    body = _bundle(req, cert, latest, policy=True) if latest else {}
    body.update(
        {
            "recoveryId": f"{req.base}deletedcertificates/{cert.name}",
            "deletedDate": int(cert.deleted_at or 0),
            "scheduledPurgeDate": int(cert.scheduled_purge or 0),
        }
    )
    return body


def _version(cert: StoredCertificate, wanted: str | None) -> CertificateVersion | None:
    """The version asked for, or the latest for an empty one."""
    if not wanted:
        return cert.latest
    return next((v for v in cert.versions if v.version == wanted.lower()), None)


def _live(req: VaultRequest, name: str) -> StoredCertificate:
    cert = req.data.certificates.get(name.lower())
    if cert is None or cert.deleted_at is not None or not cert.versions:
        raise certificate_not_found(name)
    return cert


def _operation(req: VaultRequest, cert: StoredCertificate) -> dict[str, Any]:
    op = cert.pending
    assert op is not None
    body: dict[str, Any] = {
        "id": f"{req.base}certificates/{cert.name}/pending",
        "issuer": {"name": op.issuer},
        "csr": op.csr_b64,
        "cancellation_requested": False,
        "status": op.status,
        "request_id": op.request_id,
    }
    if op.status == "inProgress":
        body["status_details"] = (
            "Pending certificate created. Certificate request is in progress. This may take "
            "some time based on the issuer provider. Please check again later."
        )
    else:
        body["target"] = f"{req.base}certificates/{cert.name}"
    return body


def _normalized_policy(raw: Any) -> dict[str, Any]:
    """The policy as Key Vault stores it: the request's, with Key Vault's defaults."""
    if not isinstance(raw, dict):
        raise bad_parameter("Property policy is required.")
    policy: dict[str, Any] = {k: v for k, v in raw.items() if k not in ("id", "attributes")}
    key_props = {"exportable": True, "kty": "RSA", "key_size": 2048, "reuse_key": False}
    key_props.update(policy.get("key_props") or {})
    if key_props["kty"] in ("EC", "EC-HSM"):
        key_props.pop("key_size", None)
        key_props.setdefault("crv", "P-256")
    policy["key_props"] = key_props
    policy["secret_props"] = {"contentType": PKCS12, **(policy.get("secret_props") or {})}
    x509_props = {"validity_months": 12, **(policy.get("x509_props") or {})}
    policy["x509_props"] = x509_props
    policy["issuer"] = {"name": "Self", **(policy.get("issuer") or {})}
    return policy


@route(
    "POST",
    rf"^/certificates/{NAME}/create$",
    "keyvault/certificates/create",
    f"{KV}/certificates/create/action",
)
async def create(req: VaultRequest) -> web.Response:
    body = req.body if isinstance(req.body, dict) else {}
    name = req.param("name")
    policy = _normalized_policy(body.get("policy"))
    issuer = str(policy["issuer"].get("name", ""))
    if issuer.lower() not in ("self", "unknown"):
        # Unverified wording; only self-signed issuance and merges are emulated.
        raise bad_parameter(
            f"Issuer '{issuer}' is not supported by azlocal; use 'Self' or 'Unknown'."
        )
    existing = req.data.certificates.get(name.lower())
    if existing is not None and existing.deleted_at is not None:
        raise KeyVaultError(
            409,
            "Conflict",
            f"Certificate {name} is currently in a deleted but recoverable state, and its name "
            "cannot be reused; in this state, the certificate can only be recovered or purged.",
            inner="ObjectIsDeletedButRecoverable",
        )
    pending = existing.pending if existing is not None else None
    if pending is not None and pending.status == "inProgress":
        # Unverified wording.
        raise KeyVaultError(409, "Conflict", f"Certificate {name} has an operation in progress.")
    unknown = issuer.lower() == "unknown"
    try:
        issue = request_for_unknown_issuer if unknown else issue_self_signed
        version, csr = issue(policy, req.ctx.now())
    except PolicyError as err:
        raise bad_parameter(str(err)) from None
    attributes = body.get("attributes") or {}
    if isinstance(attributes, dict) and attributes.get("enabled") is False:
        version.enabled = False
    version.tags = {str(k): str(v) for k, v in (body.get("tags") or {}).items()}
    cert = existing or StoredCertificate(name=name)
    cert.pending = PendingOperation(
        request_id=uuid.uuid4().hex,
        csr_b64=csr,
        polls_left=max(0, req.ctx.settings.keyvault_pending_polls),
        result=version,
        issuer="Unknown" if unknown else "Self",
    )
    req.data.certificates[name.lower()] = cert
    location = f"{req.base}certificates/{name}/pending?api-version={req.http.query['api-version']}"
    return web.json_response(
        _operation(req, cert), status=202, headers={"Location": location, "Retry-After": "10"}
    )


def _complete(cert: StoredCertificate) -> None:
    op = cert.pending
    assert op is not None
    if op.status != "completed":
        op.status = "completed"
        cert.versions.append(op.result)


@route(
    "GET",
    rf"^/certificates/{NAME}/pending$",
    "keyvault/certificates/pending/read",
    f"{KV}/certificates/read",
)
async def get_operation(req: VaultRequest) -> web.Response:
    name = req.param("name")
    cert = req.data.certificates.get(name.lower())
    if cert is None or cert.deleted_at is not None or cert.pending is None:
        # Unverified code and wording.
        raise pending_not_found(name)
    op = cert.pending
    if op.status == "inProgress" and op.issuer == "Self":
        if op.polls_left > 0:
            op.polls_left -= 1
        else:
            _complete(cert)
    return web.json_response(_operation(req, cert))


@route(
    "POST",
    rf"^/certificates/{NAME}/pending/merge$",
    "keyvault/certificates/pending/merge",
    f"{KV}/certificates/create/action",
)
async def merge(req: VaultRequest) -> web.Response:
    """Complete an `Unknown`-issuer request with a certificate for its key."""
    name = req.param("name")
    cert = req.data.certificates.get(name.lower())
    op = cert.pending if cert is not None and cert.deleted_at is None else None
    if cert is None or op is None or op.status != "inProgress" or op.issuer != "Unknown":
        raise pending_not_found(name)
    body = req.body if isinstance(req.body, dict) else {}
    chain = body.get("x5c") or []
    if not isinstance(chain, list) or not chain:
        raise bad_parameter("Property x5c is required.")
    try:
        version = merged(op.result, base64.b64decode(str(chain[0])), req.ctx.now())
    except (PolicyError, ValueError) as err:
        raise bad_parameter(str(err)) from None
    version.tags = {str(k): str(v) for k, v in (body.get("tags") or {}).items()}
    attributes = body.get("attributes") or {}
    if isinstance(attributes, dict) and attributes.get("enabled") is False:
        version.enabled = False
    op.result = version
    _complete(cert)
    return web.json_response(_bundle(req, cert, version, policy=True), status=201)


@route(
    "DELETE",
    rf"^/certificates/{NAME}/pending$",
    "keyvault/certificates/pending/delete",
    f"{KV}/certificates/update/action",
)
async def delete_operation(req: VaultRequest) -> web.Response:
    name = req.param("name")
    cert = req.data.certificates.get(name.lower())
    if cert is None or cert.pending is None:
        raise pending_not_found(name)
    body = _operation(req, cert)
    cert.pending = None
    if not cert.versions:
        del req.data.certificates[cert.name.lower()]
    return web.json_response(body)


@route(
    "PATCH",
    rf"^/certificates/{NAME}/(?P<version>[^/]*)$",
    "keyvault/certificates/update",
    f"{KV}/certificates/update/action",
)
async def update_properties(req: VaultRequest) -> web.Response:
    """Tags and enabled flag of one version (or the latest, for an empty version)."""
    name, wanted = req.param("name"), req.param("version")
    cert = _live(req, name)
    version = _version(cert, wanted)
    if version is None:
        raise certificate_not_found(f"{name}/{wanted}")
    body = req.body if isinstance(req.body, dict) else {}
    if isinstance(body.get("tags"), dict):
        version.tags = {str(k): str(v) for k, v in body["tags"].items()}
    attributes = body.get("attributes") or {}
    if isinstance(attributes, dict) and "enabled" in attributes:
        version.enabled = bool(attributes["enabled"])
    return web.json_response(_bundle(req, cert, version, policy=True))


@route(
    "GET",
    rf"^/certificates/{NAME}/versions$",
    "keyvault/certificates/versions/list",
    f"{KV}/certificates/read",
)
async def list_versions(req: VaultRequest) -> web.Response:
    cert = _live(req, req.param("name"))
    items = [
        {
            "id": f"{req.base}certificates/{cert.name}/{v.version}",
            "x5t": x5t(v.cer_b64),
            "attributes": _attributes(v),
            "tags": dict(v.tags),
        }
        for v in cert.versions
    ]
    return _page(req, items)


def _page(req: VaultRequest, items: list[dict[str, Any]]) -> web.Response:
    size = max(1, req.ctx.settings.page_size)
    try:
        size = min(size, int(req.http.query.get("maxresults", size)))
        offset = int(req.http.query.get("$skiptoken", "0"))
    except ValueError:
        raise bad_parameter("maxresults and $skiptoken must be integers.") from None
    body: dict[str, Any] = {"value": items[offset : offset + size], "nextLink": None}
    if offset + size < len(items):
        version = req.http.query["api-version"]
        body["nextLink"] = (
            f"{req.base}{req.http.path.lstrip('/')}?api-version={version}"
            f"&maxresults={size}&$skiptoken={offset + size}"
        )
    return web.json_response(body)


@route("GET", r"^/certificates/?$", "keyvault/certificates/list", f"{KV}/certificates/read")
async def list_certificates(req: VaultRequest) -> web.Response:
    items = [
        {
            "id": f"{req.base}certificates/{c.name}",
            "x5t": x5t(c.latest.cer_b64),
            "attributes": _attributes(c.latest),
            "tags": dict(c.latest.tags),
        }
        for c in req.data.certificates.values()
        if c.deleted_at is None and c.latest is not None
    ]
    return _page(req, items)


@route(
    "GET",
    rf"^/certificates/{NAME}/policy$",
    "keyvault/certificates/policy/read",
    f"{KV}/certificates/read",
)
async def get_policy(req: VaultRequest) -> web.Response:
    cert = _live(req, req.param("name"))
    assert cert.latest is not None
    return web.json_response(_policy(req, cert.name, cert.latest))


@route(
    "GET",
    rf"^/certificates/{NAME}(/(?P<version>[^/]*))?$",
    "keyvault/certificates/read",
    f"{KV}/certificates/read",
)
async def get_certificate(req: VaultRequest) -> web.Response:
    name, wanted = req.param("name"), req.param("version")
    cert = _live(req, name)
    if not wanted:
        assert cert.latest is not None
        return web.json_response(_bundle(req, cert, cert.latest, policy=True))
    version = _version(cert, wanted)
    if version is None:
        raise certificate_not_found(f"{name}/{wanted}")  # unverified id form
    return web.json_response(_bundle(req, cert, version, policy=False))


@route(
    "DELETE",
    rf"^/certificates/{NAME}/?$",
    "keyvault/certificates/delete",
    f"{KV}/certificates/delete",
)
async def delete_certificate(req: VaultRequest) -> web.Response:
    cert = _live(req, req.param("name"))
    now = req.ctx.now()
    cert.deleted_at = now
    cert.scheduled_purge = now + RECOVERABLE_DAYS * DAY
    cert.pending = None
    return web.json_response(_deleted_bundle(req, cert))


def _deleted(req: VaultRequest, name: str) -> StoredCertificate:
    cert = req.data.certificates.get(name.lower())
    if cert is None or cert.deleted_at is None:
        # Key Vault answers a missing deleted certificate with CertificateNotFound too
        # (unverified: wording as for live certificates).
        raise certificate_not_found(name)
    return cert


@route(
    "GET",
    rf"^/deletedcertificates/{NAME}$",
    "keyvault/deletedcertificates/read",
    f"{KV}/certificates/read",
)
async def get_deleted(req: VaultRequest) -> web.Response:
    return web.json_response(_deleted_bundle(req, _deleted(req, req.param("name"))))


@route(
    "DELETE",
    rf"^/deletedcertificates/{NAME}$",
    "keyvault/deletedcertificates/purge",
    f"{KV}/certificates/purge/action",
)
async def purge(req: VaultRequest) -> web.Response:
    cert = _deleted(req, req.param("name"))
    del req.data.certificates[cert.name.lower()]
    return web.Response(status=204)


@route(
    "GET",
    rf"^/secrets/{NAME}(/(?P<version>[^/]*))?$",
    "keyvault/secrets/read",
    f"{KV}/secrets/getSecret/action",
    collection="secrets",
)
async def get_secret(req: VaultRequest) -> web.Response:
    """A certificate's secret: its key and certificate (only certificates are emulated)."""
    name, wanted = req.param("name"), req.param("version")
    cert = req.data.certificates.get(name.lower())
    if cert is None or cert.deleted_at is not None or not cert.versions:
        raise secret_not_found(name)
    version = _version(cert, wanted)
    if version is None:
        raise secret_not_found(f"{name}/{wanted}")
    content_type = str((version.policy.get("secret_props") or {}).get("contentType") or PKCS12)
    exportable = bool((version.policy.get("key_props") or {}).get("exportable", True))
    attributes = _attributes(version)
    return web.json_response(
        {
            "value": secret_value(version, content_type, exportable),
            "contentType": content_type,
            "id": f"{req.base}secrets/{cert.name}/{version.version}",
            "kid": f"{req.base}keys/{cert.name}/{version.version}",
            "managed": True,
            "attributes": attributes,
            "tags": dict(version.tags),
        }
    )
