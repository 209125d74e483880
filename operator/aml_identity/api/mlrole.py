"""MLRole: a custom Azure role definition, e.g. a read-only endpoint monitor."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .common import (
    ApiModel,
    CommonStatus,
    DeletionPolicy,
    ManagementPolicy,
    cel,
    deletion_policy_field,
    management_policy_field,
    schema_extra,
)
from .mlrolebinding import ARM_ID_PATTERN

# An operation name: Provider/resource/.../action, with * wildcards.
OPERATION_PATTERN = r"^[a-zA-Z0-9.*]+(/[-a-zA-Z0-9._*]+)*$"


def _operations(description: str) -> Any:
    return Field(
        default_factory=list,
        max_length=1000,
        description=description,
        json_schema_extra={
            "items": {"type": "string", "maxLength": 512, "pattern": OPERATION_PATTERN}
        },
    )


class Permissions(ApiModel):
    """Operations the role allows (actions) and subtracts from them (notActions)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                cel(
                    "(has(self.actions) && size(self.actions) > 0) || "
                    "(has(self.dataActions) && size(self.dataActions) > 0)",
                    "a role needs at least one entry in actions or dataActions",
                )
            ]
        )
    }

    actions: list[str] = _operations(
        "Control-plane operations, e.g. "
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read."
    )
    not_actions: list[str] = _operations("Operations removed from actions.")
    data_actions: list[str] = _operations("Data-plane operations.")
    not_data_actions: list[str] = _operations("Data-plane operations removed from dataActions.")


class MLRoleSpec(ApiModel):
    """Desired state of an MLRole."""

    role_name: str = Field(
        min_length=1,
        max_length=512,
        description="Role name in Azure; unique in the tenant.",
    )
    description: str | None = Field(default=None, max_length=2048, description="Role description.")
    permissions: Permissions = Field(description="What the role allows.")
    assignable_scopes: list[str] = Field(
        min_length=1,
        max_length=100,
        description=(
            "Scopes where the role may be assigned, e.g. /subscriptions/<s>/resourceGroups/rg-ml. "
            "The definition is created at the first one."
        ),
        json_schema_extra={
            "items": {"type": "string", "maxLength": 1024, "pattern": ARM_ID_PATTERN}
        },
    )
    privileged: bool = Field(
        default=False,
        description=(
            "Must be true for a role whose actions include *, a wildcard over a whole "
            "provider (Microsoft.Storage/*, */write) or Microsoft.Authorization writes; such "
            "a role is refused otherwise. Binding a privileged MLRole needs an "
            "MLAccessPolicy role rule with privileged: true."
        ),
    )
    deletion_policy: DeletionPolicy = deletion_policy_field()
    management_policy: ManagementPolicy = management_policy_field()


class RoleOperations(ApiModel):
    """What the role allows after its notActions, counted over Azure's published
    operations of the providers in the operator's catalog (`aml-identity explain-role`
    lists them)."""

    read: int = Field(default=0, description="Read operations allowed.")
    write: int = Field(default=0, description="Write (create or update) operations allowed.")
    delete: int = Field(default=0, description="Delete operations allowed.")
    action: int = Field(
        default=0, description="Other operations allowed (.../action: listKeys, score, ...)."
    )
    data_actions: int = Field(default=0, description="Data-plane operations allowed.")
    not_resolved: list[str] = Field(
        default_factory=list,
        description=(
            "Patterns that reach providers outside the catalog (*, */read, "
            "Microsoft.Insights/*): what they allow there is not counted."
        ),
    )


class MLRoleStatus(CommonStatus):
    """Observed state of an MLRole."""

    role_definition_id: str | None = Field(default=None, description="Full role definition id.")
    role_definition_name: str | None = Field(default=None, description="Role definition GUID.")
    operations: RoleOperations | None = Field(
        default=None, description="How many operations the role allows, by kind."
    )


class MLRole(ApiModel):
    """A custom Azure role definition for ML automation (cluster-scoped)."""

    KIND: ClassVar[str] = "MLRole"
    spec: MLRoleSpec = Field(description="Desired role definition.")
    status: MLRoleStatus | None = Field(default=None, description="Observed state.")
