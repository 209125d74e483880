"""Azure RBAC evaluation: does a principal hold an action at a scope?

Pure: the caller passes the assignments and definitions. Matches Azure's documented
rules: the assignments that count are those at the scope or any ancestor, for the
principal or any group it belongs to; a permission block allows an action when one of
its `actions` matches and none of its `notActions` does; `*` matches any run of
characters; comparison is case-insensitive. Deny assignments and ABAC conditions are
not emulated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from . import armids


@dataclass(frozen=True)
class Permission:
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grant:
    """One role assignment reduced to what evaluation needs."""

    principal_id: str
    scope: str
    permissions: tuple[Permission, ...]


@lru_cache(maxsize=4096)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in expression.split("*")) + "$", re.I)


def matches(expression: str, action: str) -> bool:
    return bool(_pattern(expression).match(action))


def permission_allows(permission: Permission, action: str, *, data: bool = False) -> bool:
    allowed, denied = (
        (permission.data_actions, permission.not_data_actions)
        if data
        else (permission.actions, permission.not_actions)
    )
    return any(matches(a, action) for a in allowed) and not any(matches(n, action) for n in denied)


def is_allowed(
    grants: Iterable[Grant],
    principal_ids: Iterable[str],
    action: str,
    scope: str,
    *,
    data: bool = False,
) -> bool:
    """True when any grant to any of `principal_ids` at or above `scope` allows `action`."""
    ids = {p.lower() for p in principal_ids}
    for grant in grants:
        if grant.principal_id.lower() not in ids or not armids.is_within(scope, grant.scope):
            continue
        if any(permission_allows(p, action, data=data) for p in grant.permissions):
            return True
    return False
