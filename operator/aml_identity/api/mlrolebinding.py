"""MLRoleBinding: one Azure role, granted at one scope, to one or more subjects."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .common import (
    GUID_PATTERN,
    K8S_NAME_MAX,
    K8S_NAME_PATTERN,
    RESOURCE_GROUP_MAX,
    RESOURCE_GROUP_PATTERN,
    RESOURCE_GROUP_RULE,
    ApiModel,
    CommonStatus,
    DeletionPolicy,
    ManagementPolicy,
    cel,
    deletion_policy_field,
    exactly_one,
    management_policy_field,
    pattern_with_message,
    schema_extra,
)

# An ARM resource id, or any ARM scope: starts at a subscription or at the tenant root.
ARM_ID_PATTERN = r"^/(subscriptions|providers)/.+"
# Azure ML workspace and registry names: 3-33 letters, digits, hyphens and underscores,
# starting with a letter or digit.
ML_NAME_PATTERN = r"^[a-zA-Z0-9][-a-zA-Z0-9_]*$"


class RoleRef(ApiModel):
    """The role to grant: a built-in role by name, an MLRole, or a role definition id."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                exactly_one(["builtIn", "mlRole", "roleDefinitionId"], "role"),
            ]
        )
    }

    built_in: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Built-in role name, e.g. AzureML Data Scientist or Reader.",
    )
    ml_role: str | None = Field(
        default=None,
        max_length=K8S_NAME_MAX,
        pattern=K8S_NAME_PATTERN,
        description="Name of an MLRole (cluster-scoped) that defines a custom role.",
    )
    role_definition_id: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^(/.*/)?[0-9a-fA-F-]{36}$",
        description=(
            "Role definition GUID, or its full id "
            "(/subscriptions/<s>/providers/Microsoft.Authorization/roleDefinitions/<guid>)."
        ),
    )


class Subject(ApiModel):
    """Who receives the role."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                exactly_one(
                    ["workloadIdentity", "principalId", "systemAssignedIdentityOf"], "subject"
                ),
                cel(
                    "has(self.principalId) == has(self.principalType)",
                    "principalId and principalType go together: Azure needs the type to "
                    "assign roles to new principals reliably",
                ),
            ]
        )
    }

    workload_identity: str | None = Field(
        default=None,
        max_length=K8S_NAME_MAX,
        pattern=K8S_NAME_PATTERN,
        description="A WorkloadIdentity in this namespace; waits until it is Ready.",
    )
    principal_id: str | None = Field(
        default=None,
        pattern=GUID_PATTERN,
        description="Object id of an existing Entra principal (user, group or service principal).",
    )
    principal_type: Literal["User", "Group", "ServicePrincipal", "ForeignGroup"] | None = Field(
        default=None,
        description="Type of principalId: User, Group, ServicePrincipal or ForeignGroup.",
    )
    system_assigned_identity_of: str | None = Field(
        default=None,
        max_length=1024,
        pattern=ARM_ID_PATTERN,
        description=(
            "ARM id of a resource whose system-assigned identity receives the role, e.g. "
            "an Azure ML compute cluster."
        ),
    )


class MLResourceScope(ApiModel):
    """An Azure ML workspace or registry."""

    subscription_id: str | None = Field(
        default=None,
        pattern=GUID_PATTERN,
        description="Subscription. Defaults to the operator's subscription.",
    )
    resource_group: str = Field(
        min_length=1,
        max_length=RESOURCE_GROUP_MAX,
        pattern=RESOURCE_GROUP_PATTERN,
        description="Resource group of the resource.",
        json_schema_extra=pattern_with_message(RESOURCE_GROUP_PATTERN, RESOURCE_GROUP_RULE),
    )
    name: str = Field(
        min_length=3, max_length=33, pattern=ML_NAME_PATTERN, description="Name of the resource."
    )


class ResourceGroupScope(ApiModel):
    """A resource group."""

    subscription_id: str | None = Field(
        default=None,
        pattern=GUID_PATTERN,
        description="Subscription. Defaults to the operator's subscription.",
    )
    name: str = Field(
        min_length=1,
        max_length=RESOURCE_GROUP_MAX,
        pattern=RESOURCE_GROUP_PATTERN,
        description=(
            "Resource group name: 1-90 letters, digits, underscores, hyphens, periods and "
            "parentheses, not ending in a period."
        ),
        json_schema_extra=pattern_with_message(RESOURCE_GROUP_PATTERN, RESOURCE_GROUP_RULE),
    )


class Scope(ApiModel):
    """Where the role applies. Prefer the narrowest scope that works."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                exactly_one(["workspace", "registry", "resourceGroup", "resourceId"], "scope"),
            ]
        )
    }

    workspace: MLResourceScope | None = Field(
        default=None, description="An Azure ML workspace (Microsoft.MachineLearningServices)."
    )
    registry: MLResourceScope | None = Field(default=None, description="An Azure ML registry.")
    resource_group: ResourceGroupScope | None = Field(
        default=None, description="A whole resource group."
    )
    resource_id: str | None = Field(
        default=None,
        max_length=1024,
        pattern=ARM_ID_PATTERN,
        description="Any ARM scope by id, e.g. an online endpoint.",
    )


class MLRoleBindingSpec(ApiModel):
    """Desired state of an MLRoleBinding."""

    role: RoleRef = Field(description="The role to grant.")
    subjects: list[Subject] = Field(
        min_length=1,
        max_length=50,
        description="Principals that receive the role; one role assignment each.",
        json_schema_extra=schema_extra(
            x_kubernetes_validations=[
                # A subject listed twice would be granted once and reported twice.
                cel("self.all(s, self.exists_one(t, t == s))", "each subject may be listed once"),
            ]
        ),
    )
    scope: Scope = Field(
        description=(
            "Where the role applies. Prefer the narrowest scope that works: a workspace or "
            "registry rather than its resource group."
        )
    )
    condition: str | None = Field(
        default=None,
        max_length=8192,
        description=(
            "Optional ABAC condition (conditionVersion 2.0) on every assignment. Changing "
            "it rewrites this binding's assignments in place; an assignment of the role "
            "made outside the binding under another condition is reported as Conflict, "
            "never adopted."
        ),
    )
    description: str | None = Field(
        default=None, max_length=1024, description="Description stored on each assignment."
    )
    deletion_policy: DeletionPolicy = deletion_policy_field()
    management_policy: ManagementPolicy = management_policy_field()


class AssignmentStatus(ApiModel):
    """A role assignment this binding created or adopted."""

    name: str = Field(
        description=(
            "Role assignment name (a GUID derived from scope, role and principal). Its "
            "description names the binding that created it."
        )
    )
    scope: str = Field(description="ARM scope of the assignment.")
    role_definition_id: str = Field(description="Role definition id of the assignment.")
    principal_id: str = Field(description="Object id of the subject.")
    principal_type: str | None = Field(default=None, description="Type of the subject.")
    subject: str | None = Field(default=None, description="The spec subject it came from.")
    created: bool = Field(
        default=True,
        description=(
            "True when this binding created the assignment (and will delete it); false when "
            "it existed before and is only recorded."
        ),
    )
    owned_by: str | None = Field(
        default=None,
        description=(
            "namespace/name of the MLRoleBinding that created the assignment, when another "
            "binding did: the grant is shared, and it stays until that binding lets it go "
            "(it is handed over to this binding when that one is deleted)."
        ),
    )


class MLRoleBindingStatus(CommonStatus):
    """Observed state of an MLRoleBinding."""

    role_name: str | None = Field(default=None, description="Resolved role name.")
    role_definition_id: str | None = Field(default=None, description="Resolved role definition id.")
    scope: str | None = Field(default=None, description="Resolved ARM scope.")
    assignments: list[AssignmentStatus] = Field(
        default_factory=list, description="Role assignments owned by this binding."
    )


class MLRoleBinding(ApiModel):
    """Grants one Azure role at one scope to WorkloadIdentities and other principals.
    Additive: it only ever removes the role assignments it created."""

    KIND: ClassVar[str] = "MLRoleBinding"
    spec: MLRoleBindingSpec = Field(description="Desired role assignments.")
    status: MLRoleBindingStatus | None = Field(default=None, description="Observed state.")
