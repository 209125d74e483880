"""Building blocks shared by every kind: base model, policies, conditions, reasons."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Azure's GUID shape (subscription, tenant, object and client ids).
GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Resource group: 1-90 letters, digits, underscores, hyphens, periods and parentheses,
# not ending in a period (Azure naming rules for Microsoft.Resources/resourceGroups).
RESOURCE_GROUP_PATTERN = r"^[-\pL\pN_.()]*[-\pL\pN_()]$"
RESOURCE_GROUP_MAX = 90
RESOURCE_GROUP_RULE = (
    "resource group names are 1-90 letters, digits, underscores, hyphens, periods and "
    "parentheses, and cannot end with a period"
)
# Go duration strings as Kubernetes and cert-manager write them: "8760h", "1h30m", "90s".
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(h|m|s))+$"
# Kubernetes object names (DNS-1123 subdomain; service accounts, Secrets, same-namespace refs).
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
K8S_NAME_MAX = 253


class ApiModel(BaseModel):
    """Base for every API model: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        # The API server prunes unknown fields before the operator ever sees them;
        # ignoring extras keeps an older operator tolerant of a newer CRD.
        extra="ignore",
        use_enum_values=True,
    )


def scope_within(scope: str, ancestor: str) -> bool:
    """Whether ARM scope `scope` is `ancestor` or below it (ARM ids ignore case)."""
    s, a = scope.lower().rstrip("/"), ancestor.lower().rstrip("/")
    return s == a or s.startswith(a + "/")


def arm_id_part(arm_id: str, key: str) -> str:
    """The segment after `key` in an ARM id (e.g. resourceGroups), matched ignoring case."""
    parts = arm_id.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == key.lower():
            return parts[i + 1]
    raise ValueError(f"{arm_id} has no {key}")


def cel(rule: str, message: str, **extra: Any) -> dict[str, Any]:
    """One `x-kubernetes-validations` entry (a CEL rule the API server enforces)."""
    return {"rule": rule, "message": message, **extra}


def exactly_one(fields: list[str], what: str) -> dict[str, str]:
    """CEL: exactly one of the optional fields is set."""
    count = " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields)
    listed = ", ".join(fields[:-1]) + " or " + fields[-1]
    return cel(f"{count} == 1", f"{what}: set exactly one of {listed}")


def matches_rule(pattern: str) -> str:
    """The CEL form of a `pattern` (a raw string, so backslashes stay RE2's)."""
    return f"self.matches(r'{pattern}')"


def pattern_with_message(pattern: str, message: str) -> dict[str, Any]:
    """Schema extra for a string whose pattern deserves a human error message.

    The API server reports a failed `pattern` as the regular expression itself; a
    CEL rule can say what is wrong. The CRD generator keeps only the CEL rule.
    """
    return {"x-kubernetes-validations": [cel(matches_rule(pattern), message)]}


def schema_extra(**entries: Any) -> dict[str, Any]:
    """Schema keywords for the CRD that pydantic has no field for (x-kubernetes-*)."""
    return {key.replace("_", "-"): value for key, value in entries.items()}


class DeletionPolicy(StrEnum):
    """What happens in Azure when the custom resource is deleted."""

    DELETE = "Delete"
    ORPHAN = "Orphan"


class ManagementPolicy(StrEnum):
    """Whether the operator may write to Azure for this resource."""

    MANAGE = "Manage"
    OBSERVE = "Observe"


DELETION_POLICY_DOC = (
    "What to do in Azure when this resource is deleted. Delete (default) removes what the "
    "operator created; Orphan leaves it in Azure and only removes the finalizer."
)
MANAGEMENT_POLICY_DOC = (
    "Manage (default) creates, updates and deletes in Azure. Observe never writes: the "
    "operator reads Azure, reports in status what it would change, and stays Ready=False "
    "with reason DriftDetected while Azure differs from the spec."
)


def deletion_policy_field() -> Any:
    return Field(default=DeletionPolicy.DELETE, description=DELETION_POLICY_DOC)


def management_policy_field() -> Any:
    return Field(default=ManagementPolicy.MANAGE, description=MANAGEMENT_POLICY_DOC)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """The fixed list of reasons a `Ready` condition can carry.

    Tooling (kstatus, Argo CD health scripts, alerts) keys on these, so they are part
    of the API: add, never rename.
    """

    # Ready=True
    RECONCILED = "Reconciled"
    # Ready=Unknown or False while work is under way or waiting on something that will pass.
    RECONCILING = "Reconciling"
    WAITING_FOR_DEPENDENCY = "WaitingForDependency"
    WAITING_FOR_PRINCIPAL_REPLICATION = "WaitingForPrincipalReplication"
    THROTTLED = "Throttled"
    DELETING = "Deleting"
    # Ready=False that needs a person: the spec, Azure permissions or ownership must change.
    INVALID_SPEC = "InvalidSpec"
    NOT_OWNED = "NotOwned"
    FORBIDDEN = "Forbidden"
    CONFLICT = "Conflict"
    DRIFT_DETECTED = "DriftDetected"
    DELETION_BLOCKED = "DeletionBlocked"
    CREDENTIAL_EXPIRING = "CredentialExpiring"
    CREDENTIAL_EXPIRED = "CredentialExpired"
    AZURE_ERROR = "AzureError"
    # The Kubernetes API refused one of the operator's own writes (a service account, a
    # Secret) for a reason the error table does not know.
    KUBERNETES_ERROR = "KubernetesError"
    # No MLAccessPolicy allows (part of) the request: nothing denied is written to Azure,
    # and what was granted before is revoked.
    POLICY_DENIED = "PolicyDenied"
    # The PolicyViolation condition (Audit): allowed to proceed, reported.
    POLICY_VIOLATION = "PolicyViolation"
    # The UndeclaredGrants condition: role assignments to the identity that no
    # MLRoleBinding declares (True), none (False), or they could not be listed (Unknown).
    UNDECLARED_GRANTS = "UndeclaredGrants"
    ALL_GRANTS_DECLARED = "AllGrantsDeclared"
    GRANTS_UNREADABLE = "GrantsUnreadable"


# Reasons after which the operator keeps retrying on its own and the resource is
# expected to become Ready without anyone acting (Argo CD: Progressing).
TRANSIENT_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.RECONCILING,
        Reason.WAITING_FOR_DEPENDENCY,
        Reason.WAITING_FOR_PRINCIPAL_REPLICATION,
        Reason.THROTTLED,
        Reason.DELETING,
    }
)


class Condition(ApiModel):
    """A Kubernetes-style status condition (the shape of metav1.Condition)."""

    type: str = Field(
        description=(
            "Condition type. The operator sets Ready, and PolicyViolation while an "
            "MLAccessPolicy in Audit mode would deny part of the resource."
        )
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description=(
            "One word in CamelCase from a fixed list: Reconciled, Reconciling, "
            "WaitingForDependency, WaitingForPrincipalReplication, Throttled, Deleting, "
            "InvalidSpec, NotOwned, Forbidden, Conflict, DriftDetected, DeletionBlocked, "
            "CredentialExpiring, CredentialExpired, AzureError, KubernetesError, "
            "PolicyDenied, PolicyViolation."
        )
    )
    message: str = Field(default="", description="What happened, for a person to read.")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this condition was computed for."
    )
    last_transition_time: datetime = Field(
        description="When status last changed (kept when only reason or message change)."
    )


class CommonStatus(ApiModel):
    """Status fields every kind carries."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current state; Ready summarises it for people, kstatus and Argo CD.",
        json_schema_extra=schema_extra(
            x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["type"]
        ),
    )
    pending_changes: list[str] = Field(
        default_factory=list,
        description=(
            "With managementPolicy Observe: the Azure changes the operator would make, "
            "one line each. Empty when Azure matches the spec."
        ),
    )
