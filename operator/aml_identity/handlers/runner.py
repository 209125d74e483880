"""Start the operator: configuration, clients built once, kopf, metrics."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import kopf
from azure.identity.aio import DefaultAzureCredential
from prometheus_client import start_http_server

from aml_identity.azure.gateway import Gateway
from aml_identity.azure.graph import GraphGateway
from aml_identity.azure.vault import VaultGateway
from aml_identity.controllers.outcome import Deps
from aml_identity.handlers.guardrails import webhook_server
from aml_identity.handlers.registry import build_registry, configure
from aml_identity.handlers.shell import Memo
from aml_identity.kube.cluster import Cluster, load_config
from aml_identity.settings import Settings

log = logging.getLogger("aml_identity")


def credential(settings: Settings) -> DefaultAzureCredential:
    """One credential for the operator's life: the DefaultAzureCredential chain
    (workload identity on AKS, a certificate or secret from the environment, ...)."""
    options: dict[str, Any] = {"authority": settings.authority_host}
    if settings.ca_bundle:
        options["connection_verify"] = settings.ca_bundle
    if settings.disable_instance_discovery:
        options["disable_instance_discovery"] = True
    return DefaultAzureCredential(**options)


async def operate(settings: Settings, stop: asyncio.Event | None = None) -> None:
    # azure-core logs every request and response at INFO; the operator's own log lines
    # and events say what changed. Failures still reach the log through our handlers.
    logging.getLogger("azure").setLevel(logging.WARNING)
    load_config()
    cluster = Cluster()
    issuer = settings.oidc_issuer or await cluster.issuer()
    gateway = Gateway(credential(settings), settings)
    graph = GraphGateway(gateway.credential, settings)
    vault = VaultGateway(gateway.credential, settings)
    deps = Deps(
        settings=settings, gateway=gateway, cluster=cluster, issuer=issuer, graph=graph, vault=vault
    )
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    kopf_settings = kopf.OperatorSettings()
    configure(kopf_settings)
    # With peering, replicas elect the one with the highest priority; equal priorities
    # would pause them all, so each process draws its own unless told.
    priority = settings.priority if settings.priority is not None else random.randint(1, 1_000_000)  # noqa: S311
    kopf_settings.peering.lifetime = settings.peering_lifetime
    if settings.webhook_port:
        kopf_settings.admission.server = webhook_server(settings)
        if settings.webhook_configuration:
            kopf_settings.admission.managed = settings.webhook_configuration
    log.info(
        "starting: issuer %s, ARM %s, subscription %s, resync %ss",
        issuer,
        settings.arm_endpoint,
        settings.subscription_id,
        settings.resync_seconds,
    )
    try:
        await kopf.operator(
            registry=build_registry(settings),
            settings=kopf_settings,
            memo=kopf.Memo(shared=Memo(deps)),
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=not settings.peering,
            peering_name=settings.peering or None,
            priority=priority,
            liveness_endpoint=settings.liveness_endpoint or None,
            stop_flag=stop,
        )
    finally:
        await graph.close()
        await vault.close()
        await gateway.close()
