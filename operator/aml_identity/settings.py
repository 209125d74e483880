"""The operator's configuration, from the environment (pydantic-settings).

The same settings serve Azure public cloud, sovereign clouds and azlocal: only the
endpoints and the CA bundle differ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """`aml-identity run` reads these; every one has an AML_IDENTITY_ variable."""

    model_config = SettingsConfigDict(env_prefix="AML_IDENTITY_", extra="ignore")

    tenant_id: str = Field(
        validation_alias=AliasChoices("AML_IDENTITY_TENANT_ID", "AZURE_TENANT_ID"),
        description="Entra tenant of the operator and of the identities it manages.",
    )
    subscription_id: str = Field(
        validation_alias=AliasChoices("AML_IDENTITY_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID"),
        description="Default subscription for resources that do not name one.",
    )
    arm_endpoint: str = Field(
        default="https://management.azure.com",
        description="Azure Resource Manager base URL (sovereign clouds and azlocal differ).",
    )
    arm_scope: str = Field(
        default="https://management.azure.com/.default",
        description="Token scope for ARM.",
    )
    graph_endpoint: str = Field(
        default="https://graph.microsoft.com",
        description=(
            "Microsoft Graph base URL without /v1.0 (sovereign clouds and azlocal differ)."
        ),
    )
    graph_scope: str = Field(
        default="https://graph.microsoft.com/.default",
        description="Token scope for Microsoft Graph.",
    )
    authority_host: str = Field(
        default="https://login.microsoftonline.com",
        validation_alias=AliasChoices("AML_IDENTITY_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST"),
        description="Entra authority host.",
    )
    key_vault_hosts: list[str] = Field(
        default_factory=lambda: ["*.vault.azure.net"],
        description=(
            "Host patterns of this cloud's Key Vaults (public cloud *.vault.azure.net; "
            "*.vault.azure.cn, *.vault.usgovcloudapi.net elsewhere). A keyVault.vaultUrl "
            "outside them is refused: the operator sends its Azure token there."
        ),
    )
    ca_bundle: str | None = Field(
        default=None,
        description="CA bundle (PEM) to trust for ARM and Entra (a private cloud's, azlocal's).",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="This cluster's service-account issuer; read from the API server when unset.",
    )
    resync_seconds: float = Field(
        default=600.0, gt=0, description="How often each resource is compared with Azure."
    )
    federation_resync_every: int = Field(
        default=2,
        ge=1,
        description=(
            "Compare a managed identity's federated credentials on every Nth resync: ARM "
            "lists them one identity at a time, so they cost a read per identity, while "
            "identities and role assignments are read in batches. Creates, spec changes "
            "and restarts always compare them. 1: on every resync."
        ),
    )
    resync_jitter: float = Field(
        default=0.1, ge=0, le=1, description="Random spread of resyncs, as a fraction."
    )
    concurrent_reconciles: int = Field(
        default=32,
        ge=1,
        description=(
            "Resources of one kind reconciled at the same time (kopf's workers). ARM's "
            "write bucket, not this, is what limits throughput; this bounds memory and "
            "connections to the API server."
        ),
    )
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means all."
    )
    cluster_id: str = Field(
        default="",
        pattern=r"^([a-zA-Z0-9][-a-zA-Z0-9_.]{0,62})?$",
        description=(
            "Names this cluster in the tags of Azure objects it creates, and in the names "
            "of its custom roles and applications; no two clusters may share one. Empty: "
            "the UID of the cluster's kube-system namespace."
        ),
    )

    async def with_cluster_id(self, kube_system_uid: Callable[[], Awaitable[str]]) -> Settings:
        """These settings with the cluster id decided (read from the cluster if unset)."""
        if self.cluster_id:
            return self
        return self.model_copy(update={"cluster_id": await kube_system_uid()})

    shard: str = Field(
        default="",
        pattern=r"^([a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?)?$",
        description=(
            "Name of this shard when several operator Deployments share the cluster, each "
            "with its own namespaces and Azure principal (ARM's limits are per principal). "
            "Empty: the only one. Each shard keeps its own finalizer."
        ),
    )
    shard_namespace_selector: str = Field(
        default="",
        description=(
            "Label selector (kubectl syntax, e.g. 'aml-identity/shard=b' or "
            "'!aml-identity/shard') of the namespaces whose resources this shard "
            "reconciles. Empty: every namespace it watches. Shards must not overlap."
        ),
    )
    shard_cluster_resources: bool = Field(
        default=True,
        description=(
            "Whether this shard reconciles the cluster-scoped MLRoles (exactly one should)."
        ),
    )
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="Prometheus metrics port.")
    # Loopback unless told: outside a Pod (a laptop, a VM) nothing else should reach them.
    # The chart sets 0.0.0.0, where the kubelet and Prometheus reach the Pod's IP.
    metrics_address: str = Field(
        default="127.0.0.1", description="Address the Prometheus metrics listen on."
    )
    liveness_endpoint: str = Field(
        default="http://127.0.0.1:8081/healthz", description="kopf's liveness probe endpoint."
    )
    peering: str = Field(
        default="",
        description=(
            "Name of a ClusterKopfPeering for high availability: replicas elect one active "
            "operator. Empty runs standalone (one replica)."
        ),
    )
    priority: int | None = Field(
        default=None,
        description="Peering priority; a random one per process when unset, so replicas differ.",
    )
    peering_lifetime: int = Field(
        default=60, ge=5, description="Seconds after which a silent peer is considered gone."
    )
    disable_instance_discovery: bool = Field(
        default=False,
        description="Skip MSAL's authority validation (private authorities and azlocal).",
    )
    check_role_operations: bool = Field(
        default=True,
        description=(
            "Refuse an MLRole whose actions, notActions, dataActions or notDataActions "
            "name operations Azure does not publish, for the providers in the operator's "
            "operations catalog (at admission, and before any write). Turn off only when "
            "Azure has published an operation newer than this version's catalog."
        ),
    )
    grant_scopes: list[str] = Field(
        default_factory=lambda: ["subscription"],
        description=(
            "ARM scopes whose role assignments are compared with the MLRoleBindings, to "
            "find grants to the operator's identities that no binding declares (made by "
            "hand or by another tool). 'subscription' is the operator's subscription; a "
            "listing there includes every resource group and resource in it. Read once per "
            "resync period, shared by every identity. Empty: not looked for."
        ),
    )
    orphan_scan_seconds: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "How often to look for Azure objects tagged with this cluster's id whose custom "
            "resource no longer exists (the aml_identity_orphans metric). 0: never; "
            "`aml-identity orphans` still looks when asked."
        ),
    )
    webhook_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description=(
            "Port of the validating admission webhook (HTTPS); 0 serves none. The chart sets 9443."
        ),
    )
    webhook_address: str = Field(
        default="0.0.0.0",  # noqa: S104 (in a Pod the Service reaches it on the Pod IP)
        description="Address the webhook listens on.",
    )
    webhook_cert_dir: str | None = Field(
        default=None,
        description=(
            "Directory with tls.crt and tls.key for the webhook (the chart mounts its "
            "Secret here). Unset: a self-signed certificate is made at start-up."
        ),
    )
    webhook_host: str = Field(
        default="127.0.0.1",
        description=(
            "Host the API server calls the webhook at, when the operator manages the "
            "webhook configuration itself (webhook_configuration)."
        ),
    )
    webhook_configuration: str = Field(
        default="",
        description=(
            "Name of a ValidatingWebhookConfiguration the operator creates and keeps "
            "pointing at itself (outside a cluster: development, tests, the demo). Empty: "
            "the Helm chart manages it."
        ),
    )
