"""Throttling buckets, injected faults and latency, the request log and counters."""

from __future__ import annotations

import time
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from azlocal.server import AzLocal
from support.azure import ARM_SCOPE, Arm, code_of, msi_client, operator_credential
from support.world import RG_IDENTITIES, SUB


def identity_path(name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{RG_IDENTITIES}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )


def test_write_burst_is_throttled_and_sdk_retries_succeed(azlocal: AzLocal) -> None:
    name = f"burst-{uuid.uuid4().hex[:6]}"
    client = msi_client(azlocal, operator_credential(azlocal))
    client.user_assigned_identities.create_or_update(
        RG_IDENTITIES, name, {"location": "westeurope"}
    )
    azlocal.admin("PATCH", "settings", {"throttling": True})
    raw = Arm(azlocal, operator_credential(azlocal), retry_total=0)
    remaining: list[int] = []
    throttled = None
    for i in range(400):
        answer = raw.send("PATCH", identity_path(name), "2024-11-30", {"tags": {"n": str(i)}})
        if answer.status_code == 429:
            throttled = answer
            break
        assert answer.status_code == 200
        remaining.append(int(answer.headers["x-ms-ratelimit-remaining-subscription-writes"]))
    assert throttled is not None, "200 writes in a burst were never throttled"
    # Azure's write bucket: 200 tokens, refilled at 10 per second while the loop runs.
    assert 195 <= len(remaining) < 260
    assert remaining == sorted(remaining, reverse=True)
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    # Reads have their own bucket.
    assert raw.send("GET", identity_path(name), "2024-11-30").status_code == 200
    # The SDK's own retry policy honours Retry-After and gets through.
    azlocal.admin("DELETE", "requests")
    for i in range(15):
        updated = client.user_assigned_identities.update(
            RG_IDENTITIES, name, {"tags": {"sdk": str(i)}}
        )
        assert updated.tags == {"sdk": str(i)}
    statuses = [r["status"] for r in azlocal.admin("GET", "requests")]
    assert 429 in statuses
    assert statuses[-1] == 200


def test_injected_faults_are_retried_by_the_sdk(azlocal: AzLocal) -> None:
    name = f"fault-{uuid.uuid4().hex[:6]}"
    client = msi_client(azlocal, operator_credential(azlocal), retry_backoff_factor=0.05)
    client.user_assigned_identities.create_or_update(
        RG_IDENTITIES, name, {"location": "westeurope"}
    )
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "GET",
            "pathPattern": f"userAssignedIdentities/{name}$",
            "count": 2,
            "status": 503,
            "code": "ServiceUnavailable",
            "message": "try later",
        },
    )
    azlocal.admin("DELETE", "requests")
    assert client.user_assigned_identities.get(RG_IDENTITIES, name).name == name
    statuses = [r["status"] for r in azlocal.admin("GET", "requests") if name in r["path"]]
    assert statuses == [503, 503, 200]


def test_injected_error_reaches_the_caller(azlocal: AzLocal) -> None:
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "PUT",
            "pathPattern": "/roleAssignments/",
            "count": 1,
            "status": 400,
            "code": "PrincipalNotFound",
            "message": "Principal does not exist in the directory.",
        },
    )
    raw = Arm(azlocal, operator_credential(azlocal), retry_total=0)
    answer = raw.send(
        "PUT",
        f"/subscriptions/{SUB}/resourceGroups/rg-ml/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
        "2022-04-01",
        {"properties": {}},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "PrincipalNotFound"
    with pytest.raises(HttpResponseError) as err:
        msi_client(azlocal, operator_credential(azlocal)).user_assigned_identities.get(
            RG_IDENTITIES, "does-not-exist"
        )
    assert code_of(err.value) == "ResourceNotFound", "a rule fires only as many times as asked"


def test_token_endpoint_faults_use_entra_errors(azlocal: AzLocal) -> None:
    azlocal.admin(
        "POST",
        "faults",
        {
            "method": "POST",
            "pathPattern": "/oauth2/v2.0/token$",
            "count": 1,
            "status": 400,
            "code": "invalid_request",
            "message": "Injected outage of the token endpoint.",
        },
    )
    with pytest.raises(ClientAuthenticationError, match="Injected outage of the token endpoint"):
        operator_credential(azlocal).get_token(ARM_SCOPE)


def test_latency_injection(azlocal: AzLocal) -> None:
    raw = Arm(azlocal, operator_credential(azlocal), retry_total=0)
    path = f"/subscriptions/{SUB}/resourceGroups/rg-ml"
    raw.send("GET", path, "2021-04-01")  # token fetched before measuring
    azlocal.admin("PATCH", "settings", {"latencyMs": 300, "jitterMs": 50})
    started = time.monotonic()
    assert raw.send("GET", path, "2021-04-01").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_counters_by_operation_and_status(azlocal: AzLocal) -> None:
    azlocal.admin("DELETE", "requests")
    client = msi_client(azlocal, operator_credential(azlocal))
    with pytest.raises(HttpResponseError):
        client.user_assigned_identities.get(RG_IDENTITIES, "missing-identity")
    counters = {(c["operation"], c["status"]): c["count"] for c in azlocal.admin("GET", "counters")}
    assert counters[("userAssignedIdentities/read", 404)] == 1
    entry = [r for r in azlocal.admin("GET", "requests") if r["status"] == 404][-1]
    assert entry["principal"] == azlocal.principal("aml-identity-operator").object_id
    assert entry["requestId"]
    assert entry["clientRequestId"]


def test_unknown_settings_are_refused(azlocal: AzLocal) -> None:
    with pytest.raises(RuntimeError, match="400"):
        azlocal.admin("PATCH", "settings", {"noSuchSetting": 1})


def test_chaos_rates_fail_and_reset_requests_but_never_sign_in(azlocal: AzLocal) -> None:
    from azure.core.exceptions import ServiceResponseError

    credential = operator_credential(azlocal)
    raw = Arm(azlocal, credential, retry_total=0)
    path = f"/subscriptions/{SUB}/resourceGroups/{RG_IDENTITIES}"
    try:
        azlocal.admin("PATCH", "settings", {"serverErrorRate": 1.0})
        answer = raw.send("GET", path, "2021-04-01")
        assert answer.status_code in (500, 503)
        assert answer.json()["error"]["code"] in ("InternalServerError", "ServiceUnavailable")
        # Tokens are still issued: only the services' answers are chaotic.
        assert credential.get_token(ARM_SCOPE).token
        azlocal.admin("PATCH", "settings", {"serverErrorRate": 0.0, "resetRate": 1.0})
        with pytest.raises(ServiceResponseError):
            raw.send("GET", path, "2021-04-01")
        counters = {
            (c["operation"], c["status"]): c["count"] for c in azlocal.admin("GET", "counters")
        }
        assert counters.get(("injected-reset", 0), 0) >= 1
    finally:
        azlocal.admin("PATCH", "settings", {"serverErrorRate": 0.0, "resetRate": 0.0})
    assert raw.send("GET", path, "2021-04-01").status_code == 200
