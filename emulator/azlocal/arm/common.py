"""Helpers the ARM providers share: existence checks and path patterns."""

from __future__ import annotations

from typing import Any

from azlocal.context import Context
from azlocal.errors import ArmError, resource_group_not_found, subscription_not_found
from azlocal.store import ArmResource

SUB = r"^/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
NAME = r"(?P<name>[^/]+)"
RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"


def require_subscription(ctx: Context, subscription: str) -> str:
    for known in ctx.store.subscriptions:
        if known.lower() == subscription.lower():
            return known
    raise subscription_not_found(subscription)


def resource_group_id(subscription: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{name}"


def require_resource_group(ctx: Context, subscription: str, name: str) -> ArmResource:
    sub = require_subscription(ctx, subscription)
    group = ctx.store.get(resource_group_id(sub, name))
    if group is None:
        raise resource_group_not_found(name)
    return group


def require_body_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the body must be "
            "a JSON object.",
        )
    return body
