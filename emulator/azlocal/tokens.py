"""Access tokens azlocal issues, and the assertions it accepts.

Access tokens are RS256 JWTs signed by azlocal's own key (published at the tenant's
JWKS), with the claims Azure's carry: aud, iss, tid, oid, sub, appid, idtyp, iat, nbf,
exp. ARM checks signature, audience and expiry on every call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import AadError, ArmError

ARM_AUDIENCES = (
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
)
TOKEN_LIFETIME = 3600
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(epoch))


def b64url_thumbprint(der: bytes, algorithm: str) -> str:
    digest = hashlib.new(algorithm, der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Caller:
    """Who is calling, from a verified access token."""

    object_id: str
    app_id: str
    tenant_id: str
    name: str


@dataclass
class TokenIssuer:
    tenant_id: str
    issuer_base: str  # e.g. https://127.0.0.1:8443
    clock: Callable[[], float] = time.time
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def issue(
        self,
        *,
        audience: str,
        object_id: str,
        app_id: str,
        name: str,
        extra: dict[str, Any] | None = None,
        lifetime: int = TOKEN_LIFETIME,
    ) -> tuple[str, int]:
        now = int(self.clock())
        claims = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": self.tenant_id,
            "oid": object_id,
            "sub": object_id,
            "appid": app_id,
            "app_displayname": name,
            "idtyp": "app",
            "ver": "1.0",
            "uti": uuid.uuid4().hex,
            **(extra or {}),
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        return token, lifetime

    def bearer_claims(self, authorization: str | None) -> dict[str, Any]:
        """Claims of an `Authorization: Bearer` token azlocal signed and that has not
        expired. Audience and tenant are each service's own check; each service renders
        a TokenProblem in its own error format."""
        if not authorization:
            raise TokenProblem("missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenProblem("malformed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise TokenProblem("signature") from None
        if claims.get("exp", 0) < self.clock():
            raise TokenProblem("expired", float(claims.get("exp", 0)))
        return claims

    def verify_arm(self, authorization: str | None) -> dict[str, Any]:
        """Claims of an ARM bearer token, or the 401 ARM answers."""
        challenge = {
            "WWW-Authenticate": (
                f'Bearer authorization_uri="{self.issuer_base}/{self.tenant_id}", '
                'error="invalid_token", error_description="The authentication failed because '
                "of missing 'Authorization' header.\""
            )
        }
        try:
            claims = self.bearer_claims(authorization)
        except TokenProblem as problem:
            raise _arm_error(problem, self.clock(), challenge) from None
        if claims.get("aud") not in ARM_AUDIENCES:
            allowed = "','".join(ARM_AUDIENCES)
            raise ArmError(
                401,
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource "
                f"'{claims.get('aud')}'. It should exactly match with one of the allowed "
                f"audiences '{allowed}'.",
                challenge,
            )
        return claims


class TokenProblem(Exception):
    """Why a bearer token was refused: missing, malformed, signature or expired."""

    def __init__(self, kind: str, expired_at: float = 0.0) -> None:
        super().__init__(kind)
        self.kind = kind
        self.expired_at = expired_at


def _arm_error(problem: TokenProblem, now: float, challenge: dict[str, str]) -> ArmError:
    if problem.kind == "missing":
        return ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            challenge,
        )
    if problem.kind == "malformed":
        return ArmError(
            401,
            "AuthenticationFailedInvalidHeader",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            challenge,
        )
    if problem.kind == "expired":
        expiry = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(problem.expired_at))
        current = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(now))
        return ArmError(
            401,
            "ExpiredAuthenticationToken",
            f"The access token expiry UTC time '{expiry}' is earlier than current UTC time "
            f"'{current}'.",
            challenge,
        )
    return ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.", challenge)


def certificate_assertion_thumbprints(assertion: str) -> tuple[str | None, str | None, str]:
    """(x5t, x5t#S256, alg) from a client assertion's header, unverified."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise AadError(
            400, "invalid_request", 50027, "JWT token is invalid or malformed."
        ) from None
    return header.get("x5t"), header.get("x5t#S256"), str(header.get("alg", ""))


def verify_certificate_assertion(
    assertion: str, der: bytes, *, client_id: str, audiences: list[str], now: float
) -> None:
    """Check a certificate-signed client assertion (RS256 + x5t or PS256 + x5t#S256)."""
    public_key = x509.load_der_x509_certificate(der).public_key()
    try:
        claims = jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256", "PS256"],
            audience=audiences,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError:
        raise AadError(
            401,
            "invalid_client",
            700024,
            "Client assertion audience claim does not match the token endpoint.",
        ) from None
    except jwt.PyJWTError:
        raise AadError(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not "
            "registered on application, or the signature is invalid.",
        ) from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AadError(
            401,
            "invalid_client",
            700023,
            "Client assertion issuer and subject must both be the application's client id.",
        )
    _check_time_window(claims, now)


def _check_time_window(claims: dict[str, Any], now: float) -> None:
    skew = 300
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is None or exp + skew < now or (nbf is not None and nbf - skew > now):
        raise AadError(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: "
            f"{_iso(now)}, assertion valid from {_iso(nbf or 0)}, expiry time of assertion "
            f"{_iso(exp or 0)}.",
        )


@dataclass
class OidcVerifier:
    """Verifies tokens from external OIDC issuers (federated credentials).

    Discovery and JWKS are fetched over HTTPS with the configured CA bundles, so the
    real kube-apiserver's service-account issuer works exactly as a cloud cluster's.
    """

    ssl_context: ssl.SSLContext
    cache_seconds: float = 300
    _cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    async def jwks(self, issuer: str) -> dict[str, Any]:
        cached = self._cache.get(issuer)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context),
                timeout=aiohttp.ClientTimeout(total=10),
            ) as session:
                async with session.get(
                    issuer.rstrip("/") + "/.well-known/openid-configuration"
                ) as r:
                    r.raise_for_status()
                    discovery = await r.json(content_type=None)
                if discovery.get("issuer") != issuer:
                    raise ValueError(f"discovery issuer {discovery.get('issuer')!r} != {issuer!r}")
                async with session.get(discovery["jwks_uri"]) as r:
                    r.raise_for_status()
                    keys: dict[str, Any] = await r.json(content_type=None)
        except (aiohttp.ClientError, ValueError, KeyError, TimeoutError) as err:
            raise AadError(
                400,
                "invalid_request",
                50166,
                f"Request to External OIDC endpoint failed: {type(err).__name__}: {err}",
            ) from None
        self._cache[issuer] = (time.monotonic() + self.cache_seconds, keys)
        return keys

    async def verify(self, assertion: str, audiences: list[str], now: float) -> dict[str, Any]:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        issuer = str(unverified.get("iss", ""))
        jwks = jwt.PyJWKSet.from_dict(await self.jwks(issuer))
        key = next((k for k in jwks.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise AadError(
                401,
                "invalid_client",
                5002738,
                f"Invalid JWT token. No matching key for kid '{header.get('kid')}' at issuer "
                f"'{issuer}'.",
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key,
                algorithms=["RS256", "ES256", "PS256"],
                audience=audiences,
                issuer=issuer,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidAudienceError:
            raise AadError(
                401,
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented assertion audience "
                f"'{unverified.get('aud')}'. Please check your federated identity credential "
                "Subject, Audience and Issuer against the presented assertion.",
            ) from None
        except jwt.PyJWTError as err:
            raise AadError(
                401, "invalid_client", 50027, f"JWT token is invalid or malformed: {err}"
            ) from None
        _check_time_window(claims, now)
        return claims
