"""The Azure-side wall: an ABAC condition for the operator's own role assignment.

Role Based Access Control Administrator (or User Access Administrator) may be assigned
with a condition that limits which role assignments its holder can write and delete
("delegate Azure access management with conditions"). Printed from the live policies, it
stops the operator from granting any role no policy allows, even if the operator were
misconfigured, compromised or its policies set to Audit. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from aml_identity.reconcile.policy import PolicyBook

WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
ATTRIBUTE = "Microsoft.Authorization/roleAssignments"
ALL_PRINCIPAL_TYPES = ("ServicePrincipal", "User", "Group", "ForeignGroup")


def delegation_condition(role_guids: Iterable[str], principal_types: Iterable[str]) -> str:
    """The documented condition form: writes and deletes of role assignments only for
    these role definitions and principal types; every other action is unaffected."""
    guids = ", ".join(sorted({g.lower() for g in role_guids}))
    types = ", ".join(f"'{t}'" for t in sorted(set(principal_types)))
    if not guids or not types:
        raise ValueError("no role or principal type is allowed: the condition would deny all")

    def clause(action: str, source: str) -> str:
        return (
            "(\n"
            " (\n"
            f"  !(ActionMatches{{'{action}'}})\n"
            " )\n"
            " OR\n"
            " (\n"
            f"  @{source}[{ATTRIBUTE}:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{guids}}}\n"
            "  AND\n"
            f"  @{source}[{ATTRIBUTE}:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
            f"{{{types}}}\n"
            " )\n"
            ")"
        )

    return clause(WRITE, "Request") + "\nAND\n" + clause(DELETE, "Resource")


def principal_types(book: PolicyBook) -> set[str]:
    """ServicePrincipal (workload and system-assigned identities) and the types of the
    principals the policies list (every type, for a principal listed without one)."""
    types = {"ServicePrincipal"}
    for policy in book.policies:
        for rule in policy.spec.subjects.principal_ids:
            types |= {rule.principal_type} if rule.principal_type else set(ALL_PRINCIPAL_TYPES)
    return types
