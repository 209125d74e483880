"""MLAccessPolicy: what the namespaces it selects may ask the operator for.

The operator holds Azure rights no namespace holds; a namespace may use them only as far
as the union of the policies selecting it allows. No policy, nothing allowed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from .common import (
    DURATION_PATTERN,
    ApiModel,
    exactly_one,
    schema_extra,
)

GLOB_DOC = "Shell-style patterns: * matches within one path segment or name, ? one character."


class Enforcement(StrEnum):
    """What the operator does with a request no policy allows."""

    ENFORCE = "Enforce"
    AUDIT = "Audit"


class CredentialKind(StrEnum):
    CERTIFICATE = "Certificate"
    CLIENT_SECRET = "ClientSecret"  # noqa: S105 (a kind, not a secret)


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement (the shape of metav1.LabelSelectorRequirement)."""

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Values for In and NotIn; empty for Exists and DoesNotExist.",
    )


class LabelSelector(ApiModel):
    """Selects namespaces by their labels (metav1.LabelSelector). {} selects every namespace."""

    match_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels a namespace must carry, with these values.",
        json_schema_extra={"maxProperties": 50},
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=50, description="Requirements, all of which must hold."
    )


class ResourceGroupPattern(ApiModel):
    """Resource groups by name pattern, in one subscription (pattern)."""

    subscription_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Subscription id or pattern. Defaults to the operator's subscription. " + GLOB_DOC
        ),
    )
    name: str = Field(
        min_length=1, max_length=90, description="Resource group name or pattern. " + GLOB_DOC
    )


class MLResourcePattern(ApiModel):
    """Azure ML workspaces or registries by resource group and name pattern."""

    subscription_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Subscription id or pattern. Defaults to the operator's subscription. " + GLOB_DOC
        ),
    )
    resource_group: str = Field(
        min_length=1, max_length=90, description="Resource group name or pattern."
    )
    name: str = Field(
        min_length=1, max_length=33, description="Workspace or registry name or pattern."
    )


class ScopeRule(ApiModel):
    """Where role assignments may be made: this scope and everything under it, never above."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                exactly_one(
                    ["subscription", "resourceGroup", "workspace", "registry", "resourceIdPrefix"],
                    "scope rule",
                )
            ]
        )
    }

    subscription: str | None = Field(
        default=None,
        max_length=64,
        description="A whole subscription (id or pattern). The broadest rule: use sparingly.",
    )
    resource_group: ResourceGroupPattern | None = Field(
        default=None, description="Resource groups by name pattern, and all they contain."
    )
    workspace: MLResourcePattern | None = Field(
        default=None, description="Azure ML workspaces by pattern, and all they contain."
    )
    registry: MLResourcePattern | None = Field(
        default=None, description="Azure ML registries by pattern, and all they contain."
    )
    resource_id_prefix: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^/subscriptions/.+",
        description=(
            "An ARM id (segments may be patterns); the scope itself and everything under it. "
            "Matched segment by segment, so /.../workspaces/ws-a never allows ws-ab."
        ),
    )


class RoleRule(ApiModel):
    """Roles a namespace may bind, optionally only at some scopes."""

    built_in: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Built-in role names, e.g. AzureML Data Scientist (exact, case-insensitive).",
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": 512}},
    )
    ml_roles: list[str] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "MLRole names or patterns (the custom roles defined in this cluster). " + GLOB_DOC
        ),
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": 253}},
    )
    role_definition_ids: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Role definition GUIDs (built-in or custom).",
        json_schema_extra={
            "items": {"type": "string", "pattern": r"^[0-9a-fA-F-]{36}$", "maxLength": 36}
        },
    )
    scopes: list[ScopeRule] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "Where these roles may be bound. Empty: wherever spec.scopes of this policy allows."
        ),
    )
    # No schema default: a default inside an item of an atomic list makes the stored list
    # differ from every applied one, and server-side apply then sees two managers
    # disagree (GitOps tools applying a policy another tool applied first).
    privileged: bool | None = Field(
        default=None,
        description=(
            "Set true to allow a privileged role: Owner, Contributor, User Access "
            "Administrator, Role Based Access Control Administrator, or any role whose "
            "actions include * or Microsoft.Authorization writes. Without it such a role is "
            "refused even when listed. Default false."
        ),
    )


class PrincipalRule(ApiModel):
    """An existing Entra principal that bindings may name as a subject."""

    principal_id: str = Field(
        pattern=r"^[0-9a-fA-F-]{36}$", description="Object id of the principal."
    )
    principal_type: Literal["User", "Group", "ServicePrincipal", "ForeignGroup"] | None = Field(
        default=None, description="Its type; when set, a binding must name the same type."
    )


class SubjectRules(ApiModel):
    """Subjects beyond the namespace's own WorkloadIdentities (which are always allowed)."""

    principal_ids: list[PrincipalRule] = Field(
        default_factory=list,
        max_length=200,
        description="Principals that bindings may name by principalId.",
    )
    system_assigned_identity_of: list[str] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "ARM id patterns of resources whose system-assigned identity may be a subject, "
            "e.g. /subscriptions/*/resourceGroups/rg-ml/providers/"
            "Microsoft.MachineLearningServices/workspaces/ws-a/computes/*. " + GLOB_DOC
        ),
        json_schema_extra={
            "items": {"type": "string", "maxLength": 1024, "pattern": r"^/subscriptions/.+"}
        },
    )


class ManagedIdentityRule(ApiModel):
    """Where user-assigned managed identities may be created."""

    subscription_id: str | None = Field(
        default=None,
        max_length=64,
        description="Subscription id or pattern. Defaults to the operator's subscription.",
    )
    resource_group: str = Field(
        min_length=1, max_length=90, description="Resource group name or pattern. " + GLOB_DOC
    )
    locations: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Allowed regions, e.g. westeurope. Empty: any region.",
        json_schema_extra={"items": {"type": "string", "maxLength": 64}},
    )


class ServicePrincipalRule(ApiModel):
    """Whether Entra applications with service principals may be created, and how."""

    credential_kinds: list[CredentialKind] = Field(
        default_factory=lambda: [CredentialKind.CERTIFICATE],
        max_length=2,
        description=(
            "Credential kinds allowed: Certificate (default) and, only when listed, "
            "ClientSecret. Federation-only service principals need no credential."
        ),
    )
    max_certificate_duration: str = Field(
        default="8760h",
        pattern=DURATION_PATTERN,
        description="Longest certificate (or secret) lifetime allowed (default 8760h).",
    )
    key_vaults: list[str] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "Key Vault URLs (patterns) that may hold certificates, e.g. "
            "https://kv-ml-*.vault.azure.net/. Empty: Key Vault storage is not allowed. "
            "Whatever is listed, a vault URL must be a vault host of the operator's cloud."
        ),
        json_schema_extra={"items": {"type": "string", "maxLength": 2048}},
    )


class IdentityRules(ApiModel):
    """What WorkloadIdentities may create."""

    managed_identities: list[ManagedIdentityRule] = Field(
        default_factory=list,
        max_length=100,
        description="Where managed identities may be created. Empty: nowhere.",
    )
    service_principals: ServicePrincipalRule | None = Field(
        default=None,
        description="Set to allow servicePrincipal WorkloadIdentities. Absent: not allowed.",
    )
    exclusive_grants: bool = Field(
        default=False,
        description=(
            "Allow WorkloadIdentities in the selected namespaces to set "
            "spec.exclusiveGrants: the operator then deletes role assignments to them that "
            "no MLRoleBinding declares, including ones a person made by hand, at any scope "
            "it compares (by default its whole subscription, not only the scopes this "
            "policy allows). False (default): such grants are only reported."
        ),
    )


class FederationRule(ApiModel):
    """An external OIDC issuer whose tokens may be trusted, for some subjects."""

    issuer: str = Field(
        pattern=r"^https://",
        max_length=600,
        description="Issuer URL, exactly, e.g. https://token.actions.githubusercontent.com.",
    )
    subjects: list[str] = Field(
        min_length=1,
        max_length=100,
        description=(
            "Subject patterns, e.g. repo:contoso/ml-deploy:* (here * matches any run of "
            "characters, including / and :)."
        ),
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": 600}},
    )
    audiences: list[str] = Field(
        default_factory=list,
        max_length=10,
        description=(
            "Token audiences a federated credential may accept from this issuer. Empty: "
            "only api://AzureADTokenExchange, the one Entra recommends."
        ),
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": 600}},
    )


class AdoptionRules(ApiModel):
    """Where existing managed identities may be adopted (taken over)."""

    resource_groups: list[ResourceGroupPattern] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "Resource groups whose identities may be adopted. The identity itself must also "
            "carry the tag aml-identity.adoptable-by=<namespace>/<name> set by its owner."
        ),
    )


class MLAccessPolicySpec(ApiModel):
    """What the selected namespaces may ask the operator for. Everything not allowed here
    (or by another policy selecting the namespace) is denied."""

    namespace_selector: LabelSelector = Field(
        description="Namespaces this policy applies to. {} selects every namespace."
    )
    enforcement: Enforcement = Field(
        default=Enforcement.ENFORCE,
        description=(
            "Enforce (default): requests no policy allows are refused at admission and "
            "revoked at reconcile. Audit: they are carried out and reported (condition "
            "PolicyViolation, a Warning event and a metric). A namespace is audited only "
            "when every policy selecting it says Audit."
        ),
    )
    scopes: list[ScopeRule] = Field(
        default_factory=list,
        max_length=100,
        description="Where roles without their own scopes may be bound.",
    )
    roles: list[RoleRule] = Field(
        default_factory=list, max_length=100, description="Roles that may be bound, and where."
    )
    subjects: SubjectRules = Field(
        default_factory=SubjectRules,
        description="Subjects other than the namespace's own WorkloadIdentities.",
    )
    identities: IdentityRules = Field(
        default_factory=IdentityRules, description="Identities that may be created."
    )
    federation: list[FederationRule] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "External issuers that may be trusted. This cluster's issuer is never listed: "
            "it may federate only service accounts of the resource's own namespace."
        ),
    )
    adoption: AdoptionRules = Field(
        default_factory=AdoptionRules, description="Where existing identities may be adopted."
    )


class MLAccessPolicy(ApiModel):
    """Guardrails written by platform admins: what WorkloadIdentities and MLRoleBindings
    in the selected namespaces may ask for (cluster-scoped). A namespace gets the union of
    the policies selecting it; with none, nothing is allowed."""

    KIND: ClassVar[str] = "MLAccessPolicy"
    spec: MLAccessPolicySpec = Field(description="What the selected namespaces may ask for.")
