"""Undeclared grants: role assignments to an identity the operator manages that no
MLRoleBinding declares (made by hand, or by another tool).

Git is meant to hold every grant; this is where the operator says when Azure disagrees.
Pure: what counts as declared is decided by the caller (the bindings' records), and this
module sorts the assignments, says what is new since the last look, and words the
condition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aml_identity.api.common import ConditionStatus, Reason, scope_within
from aml_identity.api.mlrolebinding import MLRoleBinding
from aml_identity.api.observed import RoleAssignment
from aml_identity.reconcile.binding import scope_id
from aml_identity.reconcile.names import definition_guid

# The condition's type on a WorkloadIdentity.
UNDECLARED_GRANTS = "UndeclaredGrants"
# Listed in the condition's message at most; status.undeclaredGrants has them all.
SHOWN = 5


def scan_scopes(configured: Sequence[str], subscription: str) -> tuple[str, ...]:
    """The ARM scopes to list, from AML_IDENTITY_GRANT_SCOPES ('subscription' is the
    operator's own); duplicates and scopes inside another listed scope are dropped (a
    listing includes everything below its scope)."""
    scopes = []
    for value in configured:
        value = value.strip().rstrip("/")
        if not value:
            continue
        scopes.append(f"/subscriptions/{subscription}" if value == "subscription" else value)
    kept: list[str] = []
    for scope in sorted(scopes, key=len):  # stable: the first of equals is kept
        if not any(scope_within(scope, outer) for outer in kept):
            kept.append(scope)
    return tuple(kept)


def undeclared(
    assignments: Iterable[RoleAssignment],
    principal_id: str,
    declared: Callable[[RoleAssignment], bool],
    scopes: Sequence[str],
) -> list[RoleAssignment]:
    """The assignments to `principal_id` at or below one of `scopes` that `declared` does
    not account for, once each, in a stable order (scope, then role). Those above (a
    management group's, inherited) are not the compared scopes' and no binding can
    declare them."""
    found: dict[str, RoleAssignment] = {}
    for assignment in assignments:
        if assignment.principal_id.lower() != principal_id.lower():
            continue
        if not any(scope_within(assignment.scope, scope) for scope in scopes):
            continue
        if not declared(assignment):
            found.setdefault(assignment.name.lower(), assignment)
    return sorted(
        found.values(), key=lambda a: (a.scope.lower(), definition_guid(a.role_definition_id))
    )


# A grant is reported (and removed) only once it has been seen undeclared for this long,
# at most the resync period: a binding applied with its identity (an adopted identity
# and the binding that declares its existing grant, as `aml-identity export` writes
# them) may reach the cluster, or its first reconcile, after the identity's first look.
GRACE_SECONDS = 30.0
# A removal Azure refused (e.g. an ABAC condition that allows deleting only some roles)
# is tried again after this, not at every look.
REMOVAL_BACKOFF = 3600.0


@dataclass
class Sightings:
    """When each candidate undeclared grant of each identity was first seen (in the
    process: after a restart, a grant not yet reported waits one grace period more)."""

    _first: dict[str, dict[str, float]] = field(default_factory=dict)
    _refused: dict[str, dict[str, float]] = field(default_factory=dict)

    def confirmed(self, owner: str, names: Iterable[str], now: float, grace: float) -> set[str]:
        """Record the candidates seen now for identity `owner` (its uid); return those
        first seen at least `grace` seconds ago. Candidates no longer seen are dropped."""
        current = {name.lower() for name in names}
        seen = {n: t for n, t in self._first.get(owner, {}).items() if n in current}
        refused = {n: t for n, t in self._refused.get(owner, {}).items() if n in current}
        if refused:
            self._refused[owner] = refused
        else:
            self._refused.pop(owner, None)
        for name in current:
            seen.setdefault(name, now)
        if seen:
            self._first[owner] = seen
        else:
            self._first.pop(owner, None)
        return {name for name, first in seen.items() if now - first >= grace}

    def refused(self, owner: str, name: str, now: float) -> None:
        """Azure refused to remove this grant: not asked again for REMOVAL_BACKOFF."""
        self._refused.setdefault(owner, {})[name.lower()] = now

    def may_remove(self, owner: str, name: str, now: float) -> bool:
        refused = self._refused.get(owner, {}).get(name.lower())
        return refused is None or now - refused >= REMOVAL_BACKOFF

    def forget(self, owner: str) -> None:
        self._first.pop(owner, None)
        self._refused.pop(owner, None)

    def __len__(self) -> int:
        return len(self._first)


@dataclass(frozen=True)
class Declaration:
    """What one MLRoleBinding naming the identity declares, read from its spec (whatever
    its state: Observe, waiting, denied): a role at a scope. `role_guid` None and
    `built_in` None: the role is not known yet (an MLRole not resolved), so any role at
    the scope counts as declared."""

    scope: str
    role_guid: str | None = None
    built_in: str | None = None

    def covers(self, assignment: RoleAssignment, role_name: str | None) -> bool:
        if assignment.scope.lower().rstrip("/") != self.scope.lower():
            return False
        if self.role_guid is not None:
            return definition_guid(assignment.role_definition_id) == self.role_guid.lower()
        if self.built_in is not None:
            # Unknown name (unreadable): counted as declared rather than reported.
            return role_name is None or role_name.lower() == self.built_in.lower()
        return True


def declaration(
    body: Mapping[str, Any], identity: str, default_subscription: str
) -> Declaration | None:
    """The declaration of an MLRoleBinding body if it names WorkloadIdentity `identity`
    (of its own namespace) as a subject; None otherwise."""
    try:
        binding = MLRoleBinding.model_validate(body)
    except ValueError:
        return None
    if not any(s.workload_identity == identity for s in binding.spec.subjects):
        return None
    scope = scope_id(binding.spec.scope, default_subscription)
    role = binding.spec.role
    if role.role_definition_id:
        return Declaration(scope, role_guid=definition_guid(role.role_definition_id))
    if role.built_in:
        return Declaration(scope, built_in=role.built_in)
    resolved = binding.status.role_definition_id if binding.status else None
    return Declaration(scope, role_guid=definition_guid(resolved) if resolved else None)


@dataclass
class Snapshot:
    """One read kept for a while (the MLRoleBindings of the cluster, for the undeclared-
    grants check of every identity): a cluster-wide list per identity per resync would
    grow with the square of the resources."""

    items: list[dict[str, Any]] = field(default_factory=list)
    read_at: float | None = None

    def fresh(self, now: float, max_age: float) -> list[dict[str, Any]] | None:
        if self.read_at is None or now - self.read_at >= max_age:
            return None
        return self.items

    def keep(self, items: list[dict[str, Any]], now: float) -> None:
        self.items, self.read_at = items, now


def newly_found(previous: Iterable[str], found: Iterable[RoleAssignment]) -> list[RoleAssignment]:
    """Those not already reported (by name): each finding gets one event, not one per look."""
    known = {name.lower() for name in previous}
    return [a for a in found if a.name.lower() not in known]


def describe(assignment: RoleAssignment, names: Mapping[str, str | None] | None = None) -> str:
    """'<role> at <scope> (assignment <name>)', the role by name when `names` (role
    definition ids in lower case) has it."""
    role = (names or {}).get(assignment.role_definition_id.lower()) or definition_guid(
        assignment.role_definition_id
    )
    return f"{role} at {assignment.scope} (assignment {assignment.name})"


@dataclass(frozen=True)
class GrantScan:
    """One comparison of an identity's role assignments with the bindings."""

    scopes: tuple[str, ...]
    undeclared: tuple[RoleAssignment, ...] = ()
    removed: tuple[RoleAssignment, ...] = ()
    # Why the assignments could not be listed (e.g. no read permission at a scope).
    unreadable: str | None = None
    # Why undeclared grants are kept though spec.exclusiveGrants asks to remove them.
    kept_because: str | None = None
    # Why the last removal failed (Azure's refusal), when one did.
    not_removed: str | None = None
    # Role names by role definition id (lower case), where they could be read.
    role_names: Mapping[str, str | None] = field(default_factory=dict)

    def condition(self) -> tuple[ConditionStatus, Reason, str]:
        where = ", ".join(self.scopes)
        if self.unreadable is not None:
            return (
                ConditionStatus.UNKNOWN,
                Reason.GRANTS_UNREADABLE,
                f"cannot list the role assignments at {where}: {self.unreadable}",
            )
        removed = (
            f"; removed {len(self.removed)} (spec.exclusiveGrants): "
            + "; ".join(describe(a, self.role_names) for a in self.removed[:SHOWN])
            if self.removed
            else ""
        )
        if not self.undeclared:
            return (
                ConditionStatus.FALSE,
                Reason.ALL_GRANTS_DECLARED,
                f"every role assignment to this identity at {where} is declared by an "
                f"MLRoleBinding{removed}",
            )
        shown = "; ".join(describe(a, self.role_names) for a in self.undeclared[:SHOWN])
        more = len(self.undeclared) - SHOWN
        more_text = f"; and {more} more (status.undeclaredGrants)" if more > 0 else ""
        kept = f"; kept: {self.kept_because}" if self.kept_because else ""
        if self.not_removed:
            kept += f"; cannot remove: {self.not_removed}"
        return (
            ConditionStatus.TRUE,
            Reason.UNDECLARED_GRANTS,
            f"{len(self.undeclared)} role assignment(s) to this identity at {where} are "
            f"declared by no MLRoleBinding: {shown}{more_text}{removed}{kept}",
        )

    def status(self) -> list[dict[str, str]]:
        """status.undeclaredGrants (camelCase, as the API server stores it)."""
        return [
            {
                "name": a.name,
                "scope": a.scope,
                "roleDefinitionId": a.role_definition_id,
                **(
                    {"roleName": name}
                    if (name := self.role_names.get(a.role_definition_id.lower()))
                    else {}
                ),
                **({"condition": a.condition} if a.condition else {}),
            }
            for a in self.undeclared
        ]
