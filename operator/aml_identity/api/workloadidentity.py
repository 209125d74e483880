"""WorkloadIdentity: a non-human Azure identity federated with Kubernetes service accounts."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from .common import (
    DURATION_PATTERN,
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
    management_policy_field,
    pattern_with_message,
    schema_extra,
)

# User-assigned identity names: 3-128 letters, digits, hyphens and underscores,
# starting with a letter or digit (Azure naming rules, Microsoft.ManagedIdentity).
IDENTITY_NAME_PATTERN = r"^[a-zA-Z0-9][-a-zA-Z0-9_]*$"
IDENTITY_NAME_MIN, IDENTITY_NAME_MAX = 3, 128
# Federated identity credential names (Microsoft.ManagedIdentity spec and Entra).
FIC_NAME_PATTERN = r"^[a-zA-Z0-9][-a-zA-Z0-9_]*$"
FIC_NAME_MIN, FIC_NAME_MAX = 3, 120
MAX_FEDERATED_CREDENTIALS = 20  # Azure's limit per identity or application.
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105 (an audience, not a secret)


def _immutable(field: str, why: str) -> dict[str, str]:
    """CEL: an optional field keeps its value (and its presence) once set."""
    return cel(
        f"has(self.{field}) == has(oldSelf.{field}) && "
        f"(!has(self.{field}) || self.{field} == oldSelf.{field})",
        f"{field} is immutable: {why}",
    )


class ManagedIdentitySpec(ApiModel):
    """A user-assigned managed identity in Azure Resource Manager."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                _immutable(
                    "subscriptionId",
                    "an identity cannot move; create a new WorkloadIdentity instead",
                ),
                _immutable(
                    "resourceGroup",
                    "an identity cannot move; create a new WorkloadIdentity instead",
                ),
                _immutable("name", "Azure cannot rename an identity"),
                _immutable("location", "Azure cannot move an identity to another region"),
            ]
        )
    }

    subscription_id: str | None = Field(
        default=None,
        pattern=GUID_PATTERN,
        description="Subscription of the identity. Defaults to the operator's subscription.",
    )
    resource_group: str = Field(
        min_length=1,
        max_length=RESOURCE_GROUP_MAX,
        pattern=RESOURCE_GROUP_PATTERN,
        description=(
            "Existing resource group that holds the identity: 1-90 letters, digits, "
            "underscores, hyphens, periods and parentheses, not ending in a period."
        ),
        json_schema_extra=pattern_with_message(RESOURCE_GROUP_PATTERN, RESOURCE_GROUP_RULE),
    )
    location: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9]+$",
        description="Azure region, lower case without spaces, e.g. westeurope.",
    )
    name: str | None = Field(
        default=None,
        min_length=IDENTITY_NAME_MIN,
        max_length=IDENTITY_NAME_MAX,
        pattern=IDENTITY_NAME_PATTERN,
        description=(
            "Name of the identity in Azure: 3-128 letters, digits, hyphens and "
            "underscores, starting with a letter or digit. Defaults to a name derived "
            "from the namespace and the WorkloadIdentity's name."
        ),
        json_schema_extra=pattern_with_message(
            IDENTITY_NAME_PATTERN,
            "name must be 3-128 letters, digits, hyphens and underscores, starting with a "
            "letter or digit (Azure's rule for managed identities)",
        ),
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra Azure tags. The operator adds its own ownership tags (prefix "
            "aml-identity.); tags with that prefix here are ignored."
        ),
        json_schema_extra={
            "maxProperties": 40,
            "additionalProperties": {"type": "string", "maxLength": 256},
        },
    )


class CertificateCredentialSpec(ApiModel):
    """An X.509 certificate credential, rotated before it expires."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                cel(
                    "!(has(self.secretName) && has(self.keyVault))",
                    "secretName and keyVault are mutually exclusive: the certificate "
                    "lives in one store",
                ),
                cel(
                    "!has(self.renewBefore) || "
                    "duration(self.renewBefore) < duration(self.duration)",
                    "renewBefore must be shorter than duration",
                ),
            ]
        )
    }

    duration: str = Field(
        default="8760h",
        pattern=DURATION_PATTERN,
        description="Lifetime of each certificate, as a Go duration (default 8760h, a year).",
    )
    renew_before: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        description=(
            "Renew this long before expiry. Defaults to a third of the lifetime "
            "(renewal at two thirds, as cert-manager does)."
        ),
    )
    overlap: str = Field(
        default="24h",
        pattern=DURATION_PATTERN,
        description=(
            "How long the previous certificate stays valid on the application after a "
            "rotation, so running workloads can pick up the new one."
        ),
    )
    secret_name: str | None = Field(
        default=None,
        max_length=K8S_NAME_MAX,
        pattern=K8S_NAME_PATTERN,
        description=(
            "Kubernetes Secret (same namespace) that receives the certificate and key. "
            "Defaults to <name>-credentials when keyVault is not set."
        ),
    )
    key_vault: KeyVaultCertificateRef | None = Field(
        default=None,
        description="Keep the certificate in Key Vault instead; the key never leaves the vault.",
    )


class KeyVaultCertificateRef(ApiModel):
    """A certificate in Azure Key Vault."""

    vault_url: str = Field(
        pattern=r"^https://",
        max_length=2048,
        description="Vault URL, e.g. https://ml-identities.vault.azure.net/.",
    )
    certificate_name: str = Field(
        min_length=1,
        max_length=127,
        pattern=r"^[a-zA-Z0-9-]+$",
        description="Certificate name in the vault: letters, digits and hyphens.",
    )


class ClientSecretCredentialSpec(ApiModel):
    """A client secret (discouraged: prefer a certificate or federation)."""

    duration: str = Field(
        default="2160h",
        pattern=DURATION_PATTERN,
        description="Lifetime of each secret (default 2160h, 90 days).",
    )
    renew_before: str | None = Field(
        default=None, pattern=DURATION_PATTERN, description="Renew this long before expiry."
    )
    overlap: str = Field(
        default="24h",
        pattern=DURATION_PATTERN,
        description="How long the previous secret stays valid after a rotation.",
    )
    secret_name: str | None = Field(
        default=None,
        max_length=K8S_NAME_MAX,
        pattern=K8S_NAME_PATTERN,
        description="Kubernetes Secret that receives it. Defaults to <name>-credentials.",
    )


class CredentialSpec(ApiModel):
    """The credential of a service principal: a certificate, or a client secret."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                cel(
                    "has(self.certificate) != has(self.clientSecret)",
                    "set exactly one of certificate or clientSecret",
                )
            ]
        )
    }

    certificate: CertificateCredentialSpec | None = Field(
        default=None, description="A certificate credential (recommended)."
    )
    client_secret: ClientSecretCredentialSpec | None = Field(
        default=None, description="A client secret (discouraged; kept for compatibility)."
    )


class ServicePrincipalSpec(ApiModel):
    """An Entra application and its service principal, owned by the operator."""

    display_name: str = Field(
        min_length=1,
        max_length=120,
        description="Display name of the application in Entra ID.",
    )
    credential: CredentialSpec | None = Field(
        default=None,
        description=(
            "Credential for workloads outside Kubernetes. Omit it to use only federation "
            "(serviceAccounts and federatedCredentials)."
        ),
    )


class ServiceAccountRef(ApiModel):
    """A Kubernetes service account in the same namespace, federated with the identity."""

    name: str = Field(
        max_length=K8S_NAME_MAX,
        pattern=K8S_NAME_PATTERN,
        description="Service account name in this namespace.",
    )
    create: bool = Field(
        default=False,
        description=(
            "Create the service account when it does not exist (and delete it with this "
            "resource). Otherwise only annotate an existing one."
        ),
    )


class FederatedCredentialSpec(ApiModel):
    """Trust tokens from an external OIDC issuer, e.g. GitHub Actions."""

    name: str = Field(
        min_length=FIC_NAME_MIN,
        max_length=FIC_NAME_MAX,
        pattern=FIC_NAME_PATTERN,
        description=(
            "Name of the federated identity credential in Azure: 3-120 letters, digits, "
            "hyphens and underscores, starting with a letter or digit."
        ),
        json_schema_extra=pattern_with_message(
            FIC_NAME_PATTERN,
            "name must be 3-120 letters, digits, hyphens and underscores, starting with a "
            "letter or digit (Azure's rule for federated identity credentials)",
        ),
    )
    issuer: str = Field(
        pattern=r"^https://",
        max_length=600,
        description="OIDC issuer URL, e.g. https://token.actions.githubusercontent.com.",
    )
    subject: str = Field(
        min_length=1,
        max_length=600,
        description="Token subject, e.g. repo:contoso/ml-pipelines:environment:prod.",
    )
    audiences: list[str] = Field(
        default=[TOKEN_EXCHANGE_AUDIENCE],
        min_length=1,
        max_length=1,
        description="Accepted audience (Azure allows one). Default api://AzureADTokenExchange.",
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": 600}},
    )


class WorkloadIdentitySpec(ApiModel):
    """Desired state of a WorkloadIdentity."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": schema_extra(
            x_kubernetes_validations=[
                cel(
                    "!(has(self.managedIdentity) && has(self.servicePrincipal))",
                    "managedIdentity and servicePrincipal are mutually exclusive: set exactly one",
                ),
                cel(
                    "has(self.managedIdentity) || has(self.servicePrincipal)",
                    "set one of managedIdentity (a user-assigned managed identity) or "
                    "servicePrincipal (an Entra application)",
                ),
                cel(
                    "has(self.managedIdentity) == has(oldSelf.managedIdentity)",
                    "cannot switch between managedIdentity and servicePrincipal; create a "
                    "new WorkloadIdentity instead",
                ),
                cel(
                    "(has(self.serviceAccounts) ? size(self.serviceAccounts) : 0) + "
                    "(has(self.federatedCredentials) ? size(self.federatedCredentials) : 0) <= 20",
                    "Azure allows at most 20 federated credentials per identity "
                    "(serviceAccounts plus federatedCredentials)",
                ),
            ]
        )
    }

    managed_identity: ManagedIdentitySpec | None = Field(
        default=None, description="A user-assigned managed identity (recommended in Azure)."
    )
    service_principal: ServicePrincipalSpec | None = Field(
        default=None,
        description=(
            "An Entra application with a service principal, owned by the operator, e.g. "
            "for automation outside Azure: federated like a managed identity, or given a "
            "certificate (or client secret) that the operator rotates with overlap."
        ),
    )
    service_accounts: list[ServiceAccountRef] = Field(
        default_factory=list,
        max_length=MAX_FEDERATED_CREDENTIALS,
        description=(
            "Service accounts in this namespace that may act as the identity. Each gets a "
            "federated credential (issuer: this cluster) and the "
            "azure.workload.identity/client-id annotation."
        ),
        json_schema_extra=schema_extra(
            x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]
        ),
    )
    federated_credentials: list[FederatedCredentialSpec] = Field(
        default_factory=list,
        max_length=MAX_FEDERATED_CREDENTIALS,
        description="Extra federated credentials for issuers outside this cluster.",
        json_schema_extra=schema_extra(
            x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]
        ),
    )
    deletion_policy: DeletionPolicy | None = Field(
        default=None,
        description=(
            "What to do in Azure when this resource is deleted. Delete removes what the "
            "operator created; Orphan leaves it in Azure and only removes the finalizer. "
            "Unset: Delete for an identity the operator created, Orphan for an adopted one "
            "(only the federated credentials this resource added are removed)."
        ),
    )
    exclusive_grants: bool = Field(
        default=False,
        description=(
            "Delete role assignments to this identity that no MLRoleBinding declares (made "
            "by hand or by another tool), wherever the operator compares them (by default "
            "its whole subscription). Needs an MLAccessPolicy selecting this namespace with "
            "spec.identities.exclusiveGrants: true; nothing is deleted with "
            "managementPolicy Observe. False (default): they are only reported, in the "
            "UndeclaredGrants condition and status.undeclaredGrants."
        ),
    )
    management_policy: ManagementPolicy = management_policy_field()


class UndeclaredGrant(ApiModel):
    """A role assignment to this identity that no MLRoleBinding declares."""

    name: str = Field(description="Role assignment name (a GUID).")
    scope: str = Field(description="ARM scope of the assignment.")
    role_definition_id: str = Field(description="ARM id of the role definition it grants.")
    role_name: str | None = Field(default=None, description="The role's name, when readable.")
    condition: str | None = Field(default=None, description="Its ABAC condition, if any.")


class CredentialStatus(ApiModel):
    """Public facts about one credential; never the secret or the private key."""

    key_id: str | None = Field(default=None, description="keyCredential or passwordCredential id.")
    thumbprint: str | None = Field(default=None, description="Certificate SHA-1 thumbprint (hex).")
    not_before: datetime | None = Field(default=None, description="Start of validity.")
    not_after: datetime | None = Field(default=None, description="Expiry.")
    renewal_time: datetime | None = Field(default=None, description="When rotation is due.")


class WorkloadIdentityCredentialStatus(CredentialStatus):
    """The current credential, and the previous one while it overlaps."""

    kind: str | None = Field(default=None, description="Certificate or ClientSecret.")
    discouraged: bool = Field(
        default=False,
        description=(
            "True for a client secret: secrets leak into logs and source control; prefer a "
            "certificate or federation."
        ),
    )
    previous: CredentialStatus | None = Field(
        default=None, description="The credential being retired, until overlap ends."
    )
    secret_name: str | None = Field(
        default=None, description="The Secret that holds it (a credential kept in a Secret)."
    )
    vault_url: str | None = Field(default=None, description="The Key Vault that holds it.")
    certificate_name: str | None = Field(
        default=None, description="Its certificate's name in that Key Vault."
    )


class WorkloadIdentityStatus(CommonStatus):
    """Observed state of a WorkloadIdentity."""

    client_id: str | None = Field(default=None, description="Client (application) id.")
    principal_id: str | None = Field(
        default=None, description="Object id of the service principal; role assignments use it."
    )
    tenant_id: str | None = Field(default=None, description="Entra tenant id.")
    resource_id: str | None = Field(
        default=None, description="ARM id of the managed identity (managedIdentity form)."
    )
    application_object_id: str | None = Field(
        default=None, description="Object id of the Entra application (servicePrincipal form)."
    )
    federated_credentials: list[str] = Field(
        default_factory=list, description="Names of the federated credentials in Azure."
    )
    adopted: bool = Field(
        default=False,
        description=(
            "The managed identity was adopted (it existed, and its owner consented): deleting "
            "this resource releases it, and the owner withdrawing consent stops its management."
        ),
    )
    adopted_federated_credentials: list[str] | None = Field(
        default=None,
        description=(
            "Federated credentials an adopted identity already had and the spec declares: "
            "its owner's, never removed by the operator (not when dropped from the spec, "
            "revoked, or released)."
        ),
    )
    service_accounts: list[str] = Field(
        default_factory=list,
        description="Service accounts annotated with this identity (released when dropped).",
    )
    credential: WorkloadIdentityCredentialStatus | None = Field(
        default=None, description="Credential facts (servicePrincipal form)."
    )
    undeclared_grants: list[UndeclaredGrant] = Field(
        default_factory=list,
        description=(
            "Role assignments to this identity, within the compared scopes, that no "
            "MLRoleBinding declares (see the UndeclaredGrants condition); kept as last "
            "found while they cannot be listed."
        ),
    )


class WorkloadIdentity(ApiModel):
    """A non-human Azure identity for ML automation, federated with Kubernetes service
    accounts: a user-assigned managed identity, or an Entra service principal with a
    rotated certificate."""

    KIND: ClassVar[str] = "WorkloadIdentity"
    spec: WorkloadIdentitySpec = Field(description="Desired identity.")
    status: WorkloadIdentityStatus | None = Field(default=None, description="Observed state.")


CertificateCredentialSpec.model_rebuild()
