"""ARM ids and scopes: parsing and comparison, case-insensitive as ARM is."""

from __future__ import annotations

import re
import uuid

_GUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


def norm(scope: str) -> str:
    """The canonical key of a scope: lower case, no trailing slash ('/' stays '/')."""
    s = scope.strip()
    if len(s) > 1:
        s = s.rstrip("/")
    return s.lower() or "/"


def same(a: str, b: str) -> bool:
    return norm(a) == norm(b)


def is_within(scope: str, ancestor: str) -> bool:
    """True when `scope` is `ancestor` or below it (the root '/' contains everything)."""
    s, a = norm(scope), norm(ancestor)
    return a == "/" or s == a or s.startswith(a + "/")


def subscription_of(scope: str) -> str | None:
    parts = [p for p in scope.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1].lower()
    return None


def resource_group_of(scope: str) -> str | None:
    parts = [p for p in scope.split("/") if p]
    if (
        len(parts) >= 4
        and parts[0].lower() == "subscriptions"
        and parts[2].lower() == "resourcegroups"
    ):
        return parts[3]
    return None


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def guid_hex(value: str) -> str:
    """32 hex digits without dashes, as ARM writes ids in some messages."""
    return uuid.UUID(value).hex


def last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]
