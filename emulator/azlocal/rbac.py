"""Azure RBAC evaluation: does a principal hold an action at a scope?

Pure: the caller passes the assignments and definitions. Matches Azure's documented
rules: the assignments that count are those at the scope or any ancestor, for the
principal or any group it belongs to; a permission block allows an action when one of
its `actions` matches and none of its `notActions` does. What a pattern matches is
Azure's wildcard semantics, implemented once in azure_operations.matching and shared with
the operator.

An assignment may carry an ABAC condition (abac.py): its grant then counts for an action
only when the condition holds for that request, given the request's attributes (which
the caller passes). Another grant without a condition still allows the action, as in
Azure, where access is the union of all applicable assignments. Only the delegation
conditions on role-assignment writes and deletes are evaluated; deny assignments are not
emulated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from azure_operations import matches

from . import abac, armids

__all__ = ["Grant", "Permission", "is_allowed", "matches", "permission_allows"]


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
    condition: str | None = None  # an ABAC condition (conditionVersion 2.0), unparsed


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
    attributes: abac.Attributes = abac.NO_ATTRIBUTES,
) -> bool:
    """True when any grant to any of `principal_ids` at or above `scope` allows `action`
    and its condition, if any, holds for `action` with `attributes`."""
    ids = {p.lower() for p in principal_ids}
    for grant in grants:
        if grant.principal_id.lower() not in ids or not armids.is_within(scope, grant.scope):
            continue
        if not any(permission_allows(p, action, data=data) for p in grant.permissions):
            continue
        if grant.condition is None or abac.holds(grant.condition, action, attributes):
            return True
    return False
