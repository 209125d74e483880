"""Plan for an MLRoleBinding's role assignments: pure, no I/O.

Additive: the plan deletes only assignments this binding created (listed in its status
with created=True), and creates new ones before deleting old ones, so a change of role,
scope or subjects never leaves a gap in access.
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
class BindingPlan:
    scope: str
    role_definition_id: str
    creates: tuple[Create, ...]
    deletes: tuple[Owned, ...]
    keep: tuple[Owned, ...]  # desired and present (ours or adopted)

    @property
    def empty(self) -> bool:
        return not (self.creates or self.deletes)

    @property
    def changes(self) -> tuple[str, ...]:
        return tuple(
            [
                f"assign role to {c.principal.subject} ({c.principal.principal_id}) at {self.scope}"
                for c in self.creates
            ]
            + [
                f"remove role assignment {d.name} ({d.principal_id}) at {d.scope}"
                for d in self.deletes
            ]
        )


def plan_binding(
    *,
    scope: str,
    role_definition: str,
    principals: list[Principal],
    observed: dict[str, list[RoleAssignment]],
    owned: list[Owned],
) -> BindingPlan:
    """`observed` maps each principal id to its assignments exactly at `scope`."""
    role_guid = definition_guid(role_definition)
    creates: list[Create] = []
    keep: list[Owned] = []
    previously_created = {o.name for o in owned if o.created}
    for principal in principals:
        name = role_assignment_name(scope, role_definition, principal.principal_id)
        same_role = [
            a
            for a in observed.get(principal.principal_id, [])
            if definition_guid(a.role_definition_id) == role_guid
        ]
        ours = [a for a in same_role if a.name.lower() == name]
        if ours:
            keep.append(Owned(name, scope, principal.principal_id, role_definition, True))
        elif same_role:
            # Granted before, by someone else: record it, never delete it.
            existing = same_role[0]
            keep.append(
                Owned(
                    existing.name,
                    scope,
                    principal.principal_id,
                    role_definition,
                    existing.name in previously_created,
                )
            )
        else:
            creates.append(Create(name, principal))
    wanted = {k.name for k in keep} | {c.name for c in creates}
    deletes = tuple(o for o in owned if o.created and o.name not in wanted)
    return BindingPlan(scope, role_definition, tuple(creates), deletes, tuple(keep))
