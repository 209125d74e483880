"""Plan for an MLRoleBinding's role assignments: pure, no I/O.

Additive: the plan deletes only assignments this binding created (listed in its status
with created=True), and creates new ones before deleting old ones, so a change of role,
scope or subjects never leaves a gap in access.

A binding records itself in the description of every assignment it creates (role
assignments have no tags). Two bindings that grant the same role to the same principal at
the same scope share one assignment (Azure allows only one): the first one's, which the
second records as shared (created=False, with the owner's name) and never deletes.

The ABAC condition is part of what is granted: an assignment of the right role whose
condition differs from the spec's is rewritten when it is this binding's, and neither
adopted nor changed when it is someone else's (a conflict, reported).
"""

from __future__ import annotations

from dataclasses import dataclass

from aml_identity.api.mlrolebinding import Scope
from aml_identity.api.observed import RoleAssignment
from aml_identity.reconcile.names import (
    AssignmentOwner,
    assignment_description,
    assignment_owner,
    definition_guid,
    role_assignment_name,
)

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
    # "<namespace>/<name>" of the MLRoleBinding that created it, when another one did:
    # the grant is shared, and that binding decides when it goes.
    owner: str | None = None


@dataclass(frozen=True)
class Create:
    name: str
    principal: Principal


@dataclass(frozen=True)
class Update:
    """One of this binding's assignments, written again in place: its condition or its
    description (which records the owner) differs from the spec's."""

    name: str
    principal: Principal
    condition_changed: bool


@dataclass(frozen=True)
class Conflict:
    """The role is already granted to a subject, by an assignment this binding did not
    make, under a different condition: adopting it would record a grant the spec does not
    describe, and changing it would change someone else's grant."""

    principal: Principal
    assignment: str
    condition: str | None
    owner: str | None = None  # the MLRoleBinding that made it, if one did

    @property
    def message(self) -> str:
        theirs = f"condition {self.condition!r}" if self.condition else "no condition"
        made_by = (
            f"it belongs to MLRoleBinding {self.owner}"
            if self.owner
            else "it was made outside this binding"
        )
        return (
            f"{self.principal.subject} already holds the role at this scope through role "
            f"assignment {self.assignment} with {theirs}, which differs from the spec's; "
            f"{made_by} and is left as it is"
        )


@dataclass(frozen=True)
class BindingPlan:
    scope: str
    role_definition_id: str
    creates: tuple[Create, ...]
    deletes: tuple[Owned, ...]
    keep: tuple[Owned, ...]  # desired and present (ours, shared or adopted)
    # Ours, with a condition or description that differs from the spec's: written again
    # (a PUT of the same assignment replaces both; the grant itself never lapses).
    updates: tuple[Update, ...] = ()
    conflicts: tuple[Conflict, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.creates or self.deletes or self.updates)

    @property
    def shared(self) -> tuple[Owned, ...]:
        """Kept assignments another MLRoleBinding created."""
        return tuple(k for k in self.keep if k.owner)

    @property
    def changes(self) -> tuple[str, ...]:
        return tuple(
            [
                f"assign role to {c.principal.subject} ({c.principal.principal_id}) at {self.scope}"
                for c in self.creates
            ]
            + [
                f"set the {'condition' if u.condition_changed else 'description'} of role "
                f"assignment {u.name} ({u.principal.principal_id})"
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


def made_by(assignment: RoleAssignment, binding: AssignmentOwner, recorded: bool) -> bool:
    """Whether `binding` created `assignment`: its description names the binding, or it
    names none and the binding's status records it as created (made before bindings
    recorded themselves in the description)."""
    owner = assignment_owner(assignment.description)
    return owner.uid == binding.uid if owner is not None else recorded


def plan_binding(
    *,
    scope: str,
    role_definition: str,
    principals: list[Principal],
    observed: dict[str, list[RoleAssignment]],
    owned: list[Owned],
    binding: AssignmentOwner,
    condition: str | None = None,
    description: str | None = None,
) -> BindingPlan:
    """`observed` maps each principal id to its assignments exactly at `scope`;
    `binding` is the binding planned for (recorded in what it creates); `condition` and
    `description` are the spec's (None: unconditional, no text)."""
    role_guid = definition_guid(role_definition)
    wanted_description = assignment_description(description, binding)
    creates: list[Create] = []
    updates: list[Update] = []
    keep: list[Owned] = []
    conflicts: list[Conflict] = []
    previously_created = {o.name.lower() for o in owned if o.created}
    for principal in principals:
        same_role = [
            a
            for a in observed.get(principal.principal_id, [])
            if definition_guid(a.role_definition_id) == role_guid
        ]
        ours = [a for a in same_role if made_by(a, binding, a.name.lower() in previously_created)]
        alike = [a for a in same_role if same_condition(a.condition, condition)]
        if ours:
            mine = ours[0]
            keep.append(Owned(mine.name, scope, principal.principal_id, role_definition, True))
            condition_changed = not same_condition(mine.condition, condition)
            if condition_changed or mine.description != wanted_description:
                updates.append(Update(mine.name, principal, condition_changed))
        elif alike:
            # Granted before, by someone else, exactly as the spec says: record it, never
            # delete it. Made by another binding: shared, and that binding decides.
            existing = alike[0]
            other = assignment_owner(existing.description)
            keep.append(
                Owned(
                    existing.name,
                    scope,
                    principal.principal_id,
                    role_definition,
                    False,
                    other.ref if other else None,
                )
            )
        elif same_role:
            # Azure allows one assignment per scope, role and principal: ours cannot be
            # made beside it, and theirs is not ours to change.
            theirs = same_role[0]
            other = assignment_owner(theirs.description)
            conflicts.append(
                Conflict(
                    principal,
                    theirs.name,
                    theirs.condition,
                    other.ref if other else None,
                )
            )
        else:
            name = role_assignment_name(scope, role_definition, principal.principal_id)
            creates.append(Create(name, principal))
    wanted = {k.name for k in keep} | {c.name for c in creates}
    # A shared record may have been handed over to this binding since (its description
    # now names it): releasing it deletes it then, and leaves it otherwise.
    deletes = tuple(o for o in owned if (o.created or o.owner) and o.name not in wanted)
    return BindingPlan(
        scope,
        role_definition,
        tuple(creates),
        deletes,
        tuple(keep),
        tuple(updates),
        tuple(conflicts),
    )
