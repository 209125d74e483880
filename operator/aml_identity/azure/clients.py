"""The operator's Azure clients, built once per process.

ARM's are built at start; Microsoft Graph's and Key Vault's only when a resource first
needs them (most clusters use managed identities only): the Key Vault SDKs take a few MiB
and a fraction of a second to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import DefaultAzureCredential

from aml_identity.azure.gateway import Gateway
from aml_identity.azure.transport import close_transport, shared_transport
from aml_identity.settings import Settings

if TYPE_CHECKING:
    from aml_identity.azure.graph import GraphGateway
    from aml_identity.azure.vault import VaultGateway


def credential(settings: Settings, transport: AioHttpTransport) -> DefaultAzureCredential:
    """One credential for the operator's life: the DefaultAzureCredential chain
    (workload identity on AKS, a certificate or secret from the environment, ...)."""
    options: dict[str, Any] = {"authority": settings.authority_host, "transport": transport}
    if settings.disable_instance_discovery:
        options["disable_instance_discovery"] = True
    return DefaultAzureCredential(**options)


@dataclass
class AzureClients:
    settings: Settings
    transport: AioHttpTransport
    credential: DefaultAzureCredential
    arm: Gateway
    _graph: GraphGateway | None = field(default=None, init=False)
    _vault: VaultGateway | None = field(default=None, init=False)

    @classmethod
    def build(cls, settings: Settings) -> AzureClients:
        """Call inside the running event loop (the transport's session belongs to it)."""
        transport = shared_transport(settings)
        token = credential(settings, transport)
        return cls(settings, transport, token, Gateway(token, settings, transport))

    @property
    def graph(self) -> GraphGateway:
        if self._graph is None:
            from aml_identity.azure.graph import GraphGateway

            self._graph = GraphGateway(self.credential, self.settings, self.transport)
        return self._graph

    @property
    def vault(self) -> VaultGateway:
        if self._vault is None:
            from aml_identity.azure.vault import VaultGateway

            self._vault = VaultGateway(self.credential, self.settings, self.transport)
        return self._vault

    async def close(self) -> None:
        if self._graph is not None:
            await self._graph.close()
        if self._vault is not None:
            await self._vault.close()
        await self.arm.close()
        await self.credential.close()
        await close_transport(self.transport)
