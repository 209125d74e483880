"""Error bodies as Azure sends them: ARM's envelope and Entra's OAuth errors."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from aiohttp import web


class ArmError(Exception):
    """An ARM failure: rendered as {"error": {"code", "message"}} with the status."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(
            {"error": {"code": self.code, "message": self.message}},
            status=self.status,
            headers=self.headers,
        )


def not_found(resource_type: str, name: str, resource_group: str | None) -> ArmError:
    if resource_group is None:
        return ArmError(
            404, "ResourceNotFound", f"The Resource '{resource_type}/{name}' was not found."
        )
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not "
        "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def resource_group_not_found(name: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")


def subscription_not_found(subscription: str) -> ArmError:
    return ArmError(
        404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
    )


class AadError(Exception):
    """An Entra token-endpoint failure (OAuth 2.0 error JSON with an AADSTS code)."""

    def __init__(
        self,
        status: int,
        error: str,
        aadsts: int,
        description: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"AADSTS{aadsts}: {description}")
        self.headers = headers or {}
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def response(self) -> web.Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body: dict[str, Any] = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace} "
                f"Correlation ID: {correlation} Timestamp: {now}"
            ),
            "error_codes": [self.aadsts],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
        }
        return web.Response(
            status=self.status,
            text=json.dumps(body),
            content_type="application/json",
            headers=self.headers,
        )
