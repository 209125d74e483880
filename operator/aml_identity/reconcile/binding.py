"""Plan for an MLRoleBinding's role assignments: pure, no I/O.

Additive: the plan deletes only assignments this binding created (listed in its status
with created=True), and creates new ones before deleting old ones, so a change of role,
scope or subjects never leaves a gap in access.

The ABAC condition is part of what is granted: an assignment of the right role whose
condition differs from the spec's is rewritten when it is this binding's, and neither
adopted nor changed when it is someone else's (a conflict, reported).
"""

from __future__ import annotations

from dataclasses import dataclass

from aml_identity.api.mlrolebinding import Scope
from aml_identity.api.observed import RoleAssignment
from aml_identity.reconcile.names import definition_guid, role_assignment_name

ML = "Microsoft.MachineLearningServices"


def scope_id(scope: Scope, default_subscription: str) -> str:
    """The ARM id of a binding's scope."""
    if scope.workspace is not None:
        w = scope.workspace
        sub = w.subscription_id or default_subscription
        group = f"/subscriptions/{sub}/resourceGroups/{w.resource_group}"
        return f"{group}/providers/{ML}/workspaces/{w.name}"
    if scope.registry is not None:
        r = scope.registry
        sub = r.subscription_id or default_subscription
        group = f"/subscriptions/{sub}/resourceGroups/{r.resource_group}"
        return f"{group}/providers/{ML}/registries/{r.name}"
    if scope.resource_group is not None:
        g = scope.resource_group
        return f"/subscriptions/{g.subscription_id or default_subscription}/resourceGroups/{g.name}"
    if scope.resource_id is not None:
        return scope.resource_id.rstrip("/")
    raise ValueError("scope has no form set")  # the CRD's CEL rule prevents this


def role_definition_id(value: str, scope: str, default_subscription: str) -> str:
    """A full role definition id from a GUID or an id."""
    if "/" in value:
        return value
    parts = scope.split("/")
    sub = (
        parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else default_subscription
    )
    return f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{value}"


@dataclass(frozen=True)
class Principal:
    """A resolved subject."""

    subject: str  # how the spec named it, for status and messages
    principal_id: str
    principal_type: str


@dataclass(frozen=True)
class Owned:
    """An assignment recorded in the binding's status."""

    name: str
    scope: str
    principal_id: str
    role_definition_id: str
    created: bool  # False when it existed before and was only adopted


@dataclass(frozen=True)
class Create:
    name: str
    principal: Principal


@dataclass(frozen=True)
class Conflict:
    """The role is already granted to a subject, by an assignment this binding did not
    make, under a different condition: adopting it would record a grant the spec does not
    describe, and changing it would change someone else's grant."""

    principal: Principal
    assignment: str
    condition: str | None

    @property
    def message(self) -> str:
        theirs = f"condition {self.condition!r}" if self.condition else "no condition"
        return (
            f"{self.principal.subject} already holds the role at this scope through role "
            f"assignment {self.assignment} with {theirs}, which differs from the spec's; "
            "it was made outside this binding and is left as it is"
        )


@dataclass(frozen=True)
class BindingPlan:
    scope: str
    role_definition_id: str
    creates: tuple[Create, ...]
    deletes: tuple[Owned, ...]
    keep: tuple[Owned, ...]  # desired and present (ours or adopted)
    # Ours, with a condition that differs from the spec's: written again (a PUT of the
    # same assignment replaces its condition; the grant itself never lapses).
    updates: tuple[Create, ...] = ()
    conflicts: tuple[Conflict, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.creates or self.deletes or self.updates)

    @property
    def changes(self) -> tuple[str, ...]:
        return tuple(
            [
                f"assign role to {c.principal.subject} ({c.principal.principal_id}) at {self.scope}"
                for c in self.creates
            ]
            + [
                f"set the condition of role assignment {u.name} ({u.principal.principal_id})"
                for u in self.updates
            ]
            + [
                f"remove role assignment {d.name} ({d.principal_id}) at {d.scope}"
                for d in self.deletes
            ]
        )


def same_condition(a: str | None, b: str | None) -> bool:
    """Conditions compared as Azure stores them: no condition and an empty one are the same."""
    return (a or "").strip() == (b or "").strip()


def plan_binding(
    *,
    scope: str,
    role_definition: str,
    principals: list[Principal],
    observed: dict[str, list[RoleAssignment]],
    owned: list[Owned],
    condition: str | None = None,
) -> BindingPlan:
    """`observed` maps each principal id to its assignments exactly at `scope`;
    `condition` is the spec's ABAC condition (None: unconditional)."""
    role_guid = definition_guid(role_definition)
    creates: list[Create] = []
    updates: list[Create] = []
    keep: list[Owned] = []
    conflicts: list[Conflict] = []
    previously_created = {o.name.lower() for o in owned if o.created}
    for principal in principals:
        name = role_assignment_name(scope, role_definition, principal.principal_id)
        same_role = [
            a
            for a in observed.get(principal.principal_id, [])
            if definition_guid(a.role_definition_id) == role_guid
        ]
        # Ours: by its name, or recorded in status as made by this binding.
        ours = [a for a in same_role if a.name.lower() in (name, *previously_created)]
        alike = [a for a in same_role if same_condition(a.condition, condition)]
        if ours:
            mine = ours[0].name
            keep.append(Owned(mine, scope, principal.principal_id, role_definition, True))
            if not same_condition(ours[0].condition, condition):
                updates.append(Create(mine, principal))
        elif alike:
            # Granted before, by someone else, exactly as the spec says: record it, never
            # delete it.
            existing = alike[0]
            keep.append(
                Owned(
                    existing.name,
                    scope,
                    principal.principal_id,
                    role_definition,
                    existing.name.lower() in previously_created,
                )
            )
        elif same_role:
            # Azure allows one assignment per scope, role and principal: ours cannot be
            # made beside it, and theirs is not ours to change.
            conflicts.append(Conflict(principal, same_role[0].name, same_role[0].condition))
        else:
            creates.append(Create(name, principal))
    wanted = {k.name for k in keep} | {c.name for c in creates}
    deletes = tuple(o for o in owned if o.created and o.name not in wanted)
    return BindingPlan(
        scope,
        role_definition,
        tuple(creates),
        deletes,
        tuple(keep),
        tuple(updates),
        tuple(conflicts),
    )
