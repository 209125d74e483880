"""The service-account issuer works as Azure's token exchange needs it to."""

from __future__ import annotations

import json

import jwt
import pytest

from localcluster import LocalCluster

AUDIENCE = "api://AzureADTokenExchange"


def test_discovery_and_jwks_are_anonymous(cluster: LocalCluster) -> None:
    code, body = cluster.request("GET", "/.well-known/openid-configuration", anonymous=True)
    assert code == 200, body
    discovery = json.loads(body)
    assert discovery["issuer"] == cluster.issuer
    assert discovery["jwks_uri"] == f"{cluster.issuer}/openid/v1/jwks"
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    code, body = cluster.request("GET", "/openid/v1/jwks", anonymous=True)
    assert code == 200, body
    keys = json.loads(body)["keys"]
    assert keys
    assert all(k["kty"] == "RSA" for k in keys)
    assert all(k["use"] == "sig" for k in keys)
    # Anything else stays closed to anonymous callers.
    code, _ = cluster.request("GET", "/api/v1/namespaces", anonymous=True)
    assert code == 403


def test_token_request_verifies_against_the_jwks(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "trainer", "-n", namespace)
    token = cluster.kubectl(
        "create", "token", "trainer", "-n", namespace, f"--audience={AUDIENCE}", "--duration=1h"
    ).stdout.strip()
    _, body = cluster.request("GET", "/openid/v1/jwks", anonymous=True)
    jwks = jwt.PyJWKSet.from_dict(json.loads(body))
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims = jwt.decode(
        token, key=key, algorithms=["RS256"], audience=AUDIENCE, issuer=cluster.issuer
    )
    assert claims["sub"] == f"system:serviceaccount:{namespace}:trainer"
    assert claims["aud"] == [AUDIENCE]
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "trainer"
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(
            token, key=key, algorithms=["RS256"], audience="api://other", issuer=cluster.issuer
        )
