"""Plan for an MLRole's custom role definition: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aml_identity.api.common import Reason
from aml_identity.api.mlrole import MLRoleSpec
from aml_identity.api.observed import RoleDefinition

MARKER = "[managed by aml-identity-operator]"


def definition_body(spec: MLRoleSpec) -> dict[str, Any]:
    """The role definition as azure-mgmt-authorization takes it."""
    description = (spec.description or "").strip()
    p = spec.permissions
    return {
        "role_name": spec.role_name,
        "description": f"{description} {MARKER}".strip(),
        "role_type": "CustomRole",
        "permissions": [
            {
                "actions": list(p.actions),
                "not_actions": list(p.not_actions),
                "data_actions": list(p.data_actions),
                "not_data_actions": list(p.not_data_actions),
            }
        ],
        "assignable_scopes": list(spec.assignable_scopes),
    }


def matches(spec: MLRoleSpec, observed: RoleDefinition) -> bool:
    body = definition_body(spec)
    p = body["permissions"][0]
    return (
        observed.role_name == spec.role_name
        and observed.description == body["description"]
        and sorted(observed.actions) == sorted(p["actions"])
        and sorted(observed.not_actions) == sorted(p["not_actions"])
        and sorted(observed.data_actions) == sorted(p["data_actions"])
        and sorted(observed.not_data_actions) == sorted(p["not_data_actions"])
        and sorted(s.lower() for s in observed.assignable_scopes)
        == sorted(s.lower() for s in spec.assignable_scopes)
    )


@dataclass(frozen=True)
class RolePlan:
    guid: str
    put: bool
    blocked: tuple[Reason, str] | None = None
    change: str | None = None


def plan_role(
    spec: MLRoleSpec,
    guid: str,
    observed: RoleDefinition | None,
    same_name: RoleDefinition | None,
    *,
    adopt: bool,
) -> RolePlan:
    """`observed` is the definition under our GUID; `same_name` one found by role name."""
    if observed is None and same_name is not None and same_name.name.lower() != guid.lower():
        if same_name.role_type == "BuiltInRole":
            return RolePlan(
                guid, False, (Reason.CONFLICT, f"'{spec.role_name}' is a built-in role name")
            )
        if not adopt:
            return RolePlan(
                guid,
                False,
                (
                    Reason.CONFLICT,
                    f"a custom role named '{spec.role_name}' already exists ({same_name.id}) and "
                    "was not created by this MLRole; rename it, or annotate the MLRole with "
                    "identity.aml.dev/adopt=true to take it over",
                ),
            )
        return RolePlan(
            same_name.name, not matches(spec, same_name), change=f"adopt custom role {same_name.id}"
        )
    if observed is None:
        return RolePlan(guid, True, change=f"create custom role '{spec.role_name}'")
    if not matches(spec, observed):
        return RolePlan(guid, True, change=f"update custom role '{spec.role_name}'")
    return RolePlan(guid, False)
