"""Plan for an MLRole's custom role definition: pure, no I/O."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from aml_identity.api.common import Reason
from aml_identity.api.mlrole import MLRoleSpec, Permissions
from aml_identity.api.observed import RoleDefinition
from azure_operations import (
    Catalog,
    Finding,
    Problem,
    Resolution,
    VerbCounts,
    resource_type_and_verb,
)

MARKER = "[managed by aml-identity-operator]"
# Unknown operations listed in one message (a role copied with a wrong prefix can have
# hundreds).
MAX_REPORTED = 5


def definition_body(spec: MLRoleSpec, *, marked: bool = True) -> dict[str, Any]:
    """The role definition as azure-mgmt-authorization takes it. `marked`: the
    description ends with the operator's marker (a role it created); an adopted role
    keeps the description its spec gives, as it was in Azure."""
    description = (spec.description or "").strip()
    p = spec.permissions
    return {
        "role_name": spec.role_name,
        "description": f"{description} {MARKER}".strip() if marked else description,
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


def matches(spec: MLRoleSpec, observed: RoleDefinition, *, marked: bool = True) -> bool:
    body = definition_body(spec, marked=marked)
    p = body["permissions"][0]
    return (
        observed.role_name == spec.role_name
        and observed.description.strip() == body["description"]
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
    # Whether a put writes the operator's marker into the description: not into an
    # adopted role's (definition_body's `marked`).
    marked: bool = True


def plan_role(
    spec: MLRoleSpec,
    guid: str,
    observed: RoleDefinition | None,
    same_name: RoleDefinition | None,
    *,
    adopt: bool,
    adopted: bool = False,
) -> RolePlan:
    """`observed` is the definition under `guid`; `same_name` one found by role name.
    `adopted`: `guid` is a role this MLRole adopted (its status records another GUID than
    the one it would create).

    An adopted role is compared without the operator's marker in its description:
    adopting a role whose name, description, permissions and assignable scopes are the
    spec's writes nothing, and a later change keeps the description the spec gives."""
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
            same_name.name,
            not matches(spec, same_name, marked=False),
            change=f"adopt custom role {same_name.id}",
            marked=False,
        )
    if observed is None:
        return RolePlan(guid, True, change=f"create custom role '{spec.role_name}'")
    if not matches(spec, observed, marked=not adopted):
        change = f"update custom role '{spec.role_name}'"
        return RolePlan(guid, True, change=change, marked=not adopted)
    return RolePlan(guid, False, marked=not adopted)


# --- what a role's patterns mean: checked against, and resolved in, the operations catalog


@dataclass(frozen=True)
class OperationCheck:
    """What the catalog says of a role's patterns, from one pass over them."""

    # Why Azure would refuse them (InvalidActionOrNotAction), with the closest real
    # operations; None when it would not.
    refused: str | None
    # Namespaces that are no resource provider this version knows of: passed through to
    # Azure, which decides (a warning at admission).
    warnings: list[str]


def check_operations(
    spec: MLRoleSpec, known: Catalog, accepted: Collection[str] = ()
) -> OperationCheck:
    """Only providers in the catalog are refused: the operations of the others are
    Azure's to judge. Patterns in `accepted` (lower case: those the definition in Azure
    already has, or the spec already had) pass: Azure took them, so the catalog is older
    than they are, and refusing them now would block a role that works."""
    p = spec.permissions
    found = known.check_all(
        actions=p.actions,
        not_actions=p.not_actions,
        data_actions=p.data_actions,
        not_data_actions=p.not_data_actions,
    )
    warnings = [
        f"spec.permissions.{where}[{index}]: {finding.provider} is not a resource provider "
        "this version of the operator knows; Azure will decide"
        for where, index, finding in found
        if finding.problem == Problem.UNKNOWN_PROVIDER
    ]
    findings = [
        (where, index, finding)
        for where, index, finding in found
        if finding.problem != Problem.UNKNOWN_PROVIDER
        and finding.expression.lower() not in accepted
    ]
    return OperationCheck(_refusal(findings, known), warnings)


def _refusal(findings: list[tuple[str, int, Finding]], known: Catalog) -> str | None:
    if not findings:
        return None
    lines = []
    for where, index, found in findings[:MAX_REPORTED]:
        finding = known.suggested(found)
        provider = known.provider(finding.provider)
        if finding.problem == Problem.MULTIPLE_WILDCARDS or provider is None:
            why = "has more than one *; Azure allows one wildcard per pattern"
        else:
            published = f" (Azure's published operations, list of {provider.published})"
            kind = "a data operation" if finding.data else "an operation"
            why = (
                f"names no data operation: {provider.namespace} publishes none{published}"
                if finding.problem == Problem.NO_DATA_OPERATIONS
                else f"is not {kind} of {provider.namespace}{published}"
            )
        lines.append(
            f"spec.permissions.{where}[{index}]: '{finding.expression}' {why}{finding.hint()}"
        )
    more = len(findings) - MAX_REPORTED
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Explanation:
    """A role's patterns resolved into the operations they allow and deny."""

    actions: Resolution
    data_actions: Resolution

    @classmethod
    def of(cls, p: Permissions, known: Catalog) -> Explanation:
        return cls(
            known.resolve(p.actions, p.not_actions, data=False),
            known.resolve(p.data_actions, p.not_data_actions, data=True),
        )

    def summary(self) -> dict[str, Any]:
        """The MLRole's status.operations."""
        counts = VerbCounts.of(self.actions.allowed)
        summary: dict[str, Any] = {
            "read": counts.read,
            "write": counts.write,
            "delete": counts.delete,
            "action": counts.action,
            "dataActions": len(self.data_actions.allowed),
        }
        unresolved = [*self.actions.unresolved, *self.data_actions.unresolved]
        if unresolved:
            summary["notResolved"] = unresolved
        return summary

    def by_resource_type(self, *, data: bool) -> dict[str, dict[str, list[str]]]:
        """Resource type -> {"allows": verbs, "denies": verbs}, sorted."""
        resolution = self.data_actions if data else self.actions
        grouped: dict[str, dict[str, list[str]]] = {}
        for key, operations in (("allows", resolution.allowed), ("denies", resolution.denied)):
            for operation in operations:
                resource_type, verb = resource_type_and_verb(operation)
                entry = grouped.setdefault(resource_type, {"allows": [], "denies": []})
                entry[key].append(verb)
        return {
            t: {k: sorted(v, key=str.lower) for k, v in entry.items()}
            for t, entry in sorted(grouped.items(), key=lambda i: i[0].lower())
        }


def patterns(p: Permissions | RoleDefinition | None) -> frozenset[str]:
    """Every pattern of a permission block or definition, in lower case."""
    if p is None:
        return frozenset()
    every = (*p.actions, *p.not_actions, *p.data_actions, *p.not_data_actions)
    return frozenset(e.lower() for e in every)


def counts_text(summary: Mapping[str, Any]) -> str:
    """`read 4, write 2, delete 0, other 0` from a summary (status.operations)."""
    return (
        f"read {summary['read']}, write {summary['write']}, delete {summary['delete']}, "
        f"other {summary['action']}"
    )


def explain_spec(spec: MLRoleSpec, known: Catalog) -> Explanation:
    return Explanation.of(spec.permissions, known)
