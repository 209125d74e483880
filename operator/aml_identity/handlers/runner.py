"""Start the operator: configuration, clients built once, kopf, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket

import kopf
from prometheus_client import start_http_server

from aml_identity.azure.clients import AzureClients
from aml_identity.controllers.outcome import Deps
from aml_identity.handlers.guardrails import webhook_server
from aml_identity.handlers.registry import build_registry, configure
from aml_identity.handlers.resync import Peering
from aml_identity.handlers.shell import Memo
from aml_identity.kube.cluster import Cluster
from aml_identity.settings import Settings

log = logging.getLogger("aml_identity")


async def operate(settings: Settings, stop: asyncio.Event | None = None) -> None:
    # azure-core logs every request and response at INFO; the operator's own log lines
    # and events say what changed. Failures still reach the log through our handlers.
    logging.getLogger("azure").setLevel(logging.WARNING)
    cluster = Cluster()
    settings = await settings.with_cluster_id(cluster.kube_system_uid)
    issuer = settings.oidc_issuer or await cluster.issuer()
    azure = AzureClients.build(settings)
    deps = Deps(settings=settings, azure=azure, cluster=cluster, issuer=issuer)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_address)
    kopf_settings = kopf.OperatorSettings()
    configure(kopf_settings, settings)
    # With peering, replicas elect the one with the highest priority; equal priorities
    # would pause them all, so each process draws its own unless told.
    priority = settings.priority if settings.priority is not None else random.randint(1, 1_000_000)  # noqa: S311
    kopf_settings.peering.lifetime = settings.peering_lifetime
    if settings.webhook_port:
        kopf_settings.admission.server = webhook_server(settings)
        if settings.webhook_configuration:
            kopf_settings.admission.managed = settings.webhook_configuration
    log.info(
        "starting: cluster id %s, issuer %s, ARM %s, subscription %s, resync %ss",
        settings.cluster_id,
        issuer,
        settings.arm_endpoint,
        settings.subscription_id,
        settings.resync_seconds,
    )
    # Our resync loop reads the peering object with kopf's rule: it needs this process's
    # peer id, so we choose it (as kopf would: the Pod's name when POD_ID is set).
    identity = os.environ.get("POD_ID") or (
        f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
    )
    peering = Peering(cluster, settings, identity, priority) if settings.peering else None
    try:
        await kopf.operator(
            registry=build_registry(settings, peering),
            settings=kopf_settings,
            memo=kopf.Memo(shared=Memo(deps)),
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=not settings.peering,
            peering_name=settings.peering or None,
            priority=priority,
            identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
            liveness_endpoint=settings.liveness_endpoint or None,
            stop_flag=stop,
        )
    finally:
        await azure.close()
        await cluster.close()
