"""Seed a converged world fast, for the at-rest benchmark (`scale.py --seed`).

At 10,000 identities the write floor alone is over an hour (40,000 writes at 10/s), so the
benchmark builds the converged state directly: azlocal with throttling and latency off,
and the operator's own workflows run in this process (without kopf) over every resource,
writing the same Azure objects, service accounts and status the operator would. Then the
operator starts on a world where nothing is left to do, as after a restart.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

GROUP_PATH = "/apis/identity.aml.dev/v1alpha1"


def converge(operator_env: Mapping[str, str], plurals: list[str], concurrency: int = 48) -> int:
    """Run the operator's reconcile workflow over every resource of `plurals` (in that
    order: bindings need their identities Ready) and store each status. Returns how many
    were not Ready."""
    saved = dict(os.environ)
    os.environ.update(operator_env)
    try:
        return asyncio.run(_converge(plurals, concurrency))
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _converge(plurals: list[str], concurrency: int) -> int:
    import kopf

    from aml_identity.azure import pacing
    from aml_identity.azure.clients import AzureClients
    from aml_identity.controllers import mlrolebinding, workloadidentity
    from aml_identity.controllers.outcome import Deps
    from aml_identity.handlers import guardrails
    from aml_identity.handlers.registry import FINALIZER
    from aml_identity.handlers.shell import write_status
    from aml_identity.kube.cluster import MERGE_PATCH, Cluster
    from aml_identity.reconcile.policy import PolicyBook
    from aml_identity.settings import Settings

    # azlocal's throttling is off while seeding; so is the operator's model of ARM's
    # buckets in this process (the operator under test keeps its own).
    for kind in pacing.ARM_BUCKETS:
        pacing.ARM_BUCKETS[kind] = (1e9, 1e9)
    workflows = {"workloadidentities": workloadidentity, "mlrolebindings": mlrolebinding}
    settings = Settings()
    cluster = Cluster()
    azure = AzureClients.build(settings)
    issuer = await cluster.issuer()
    policies = [
        p
        for item in await cluster.list_cluster_custom("mlaccesspolicies")
        if (p := guardrails.parse_policy(item["metadata"]["name"], item["spec"])) is not None
    ]
    book = PolicyBook(
        policies=tuple(policies),
        namespace_labels=await cluster.all_namespace_labels(),
        default_subscription=settings.subscription_id,
    )
    deps = Deps(settings=settings, azure=azure, cluster=cluster, issuer=issuer, policies=book)
    slots = asyncio.Semaphore(concurrency)
    not_ready = 0

    async def one(plural: str, body: dict[str, Any]) -> None:
        nonlocal not_ready
        async with slots:
            outcome = await workflows[plural].reconcile(deps, body)
            patch = kopf.Patch()
            write_status(outcome, body, patch)
            meta = body["metadata"]
            await cluster.patch_status(plural, meta["namespace"], meta["name"], dict(patch.status))
            # The operator's finalizer, as after its first run: a restart, not a first start
            # (kopf spends a whole round trip adding its finalizer before any handler).
            await cluster._call(
                "PATCH",
                cluster._custom_path(plural, meta["namespace"], meta["name"]),
                {"metadata": {"finalizers": [FINALIZER]}},
                content_type=MERGE_PATCH,
            )
            if outcome.reason.value != "Reconciled":
                not_ready += 1

    try:
        for plural in plurals:
            items = await cluster.list_cluster_custom(plural)
            await asyncio.gather(*(one(plural, body) for body in items))
    finally:
        await azure.close()
        await cluster.close()
    return not_ready
