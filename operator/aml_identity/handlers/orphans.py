"""Orphans: `aml-identity orphans [--delete]`, the periodic scan behind the
aml_identity_orphans metric, and the report's section. Finding reads only; removing is
only ever what a person asks for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import kopf

from aml_identity.azure.clients import AzureClients
from aml_identity.azure.errors import AzureFailure
from aml_identity.controllers import orphans
from aml_identity.controllers.outcome import Deps
from aml_identity.handlers.resync import Peering
from aml_identity.kube.cluster import UNREACHABLE, Cluster, KubeError
from aml_identity.reconcile.orphans import Orphan, render
from aml_identity.settings import Settings

log = logging.getLogger("aml_identity.orphans")

# The first scan waits this long after start (at most the interval): the operator's own
# resources are being read back in meanwhile, and a restart storm should not scan.
FIRST_SCAN_SECONDS = 60.0


@asynccontextmanager
async def reading(settings: Settings) -> AsyncIterator[Deps]:
    """The operator's view for a command: the cluster from the kubeconfig, Azure with the
    operator's credentials; nothing is written unless the caller asks."""
    cluster = Cluster()
    azure: AzureClients | None = None
    try:
        settings = await settings.with_cluster_id(cluster.kube_system_uid)
        azure = AzureClients.build(settings)
        yield Deps(settings=settings, azure=azure, cluster=cluster, issuer="", manage=False)
    finally:
        if azure is not None:
            await azure.close()
        await cluster.close()


def _in(found: orphans.Scan, namespace: str | None) -> list[Orphan]:
    return [o for o in found.orphans if namespace is None or o.namespace == namespace]


async def find(settings: Settings, namespace: str | None) -> list[Orphan]:
    async with reading(settings) as deps:
        return _in(await orphans.scan(deps), namespace)


async def _command(settings: Settings, namespace: str | None, delete: bool, output: str) -> int:
    async with reading(settings) as deps:
        scanned = await orphans.scan(deps)
        found = _in(scanned, namespace)
        if output == "json":
            print(json.dumps([asdict(o) for o in found], indent=2))
        else:
            print(render(found), end="")
        if not delete or not found:
            return 0
        if scanned.live_identities and not scanned.owned_live:
            # Every object of the cluster id looks orphaned: the wrong kube context, or
            # another cluster's id in the environment. Deleting would take it all.
            print(
                f"aml-identity: refusing to delete: none of this cluster's "
                f"{scanned.live_identities} WorkloadIdentities owns an object tagged "
                f"aml-identity.cluster={deps.settings.cluster_id}; is the kube context "
                "(or AML_IDENTITY_CLUSTER_ID) the operator's?",
                file=sys.stderr,
            )
            return 1

        def done(orphan: Orphan) -> None:
            print(f"deleted {orphan.kind} {orphan.id}", file=sys.stderr)

        await orphans.remove(deps, found, done)
    return 0


def run(settings: Settings, namespace: str | None, delete: bool, output: str) -> int:
    """Exit code: 0 listed (and deleted when asked), 1 something could not be read or
    deleted (what was deleted before is printed)."""
    try:
        return asyncio.run(_command(settings, namespace, delete, output))
    except AzureFailure as failure:
        print(f"aml-identity: Azure: {failure}", file=sys.stderr)
    except UNREACHABLE as error:
        print(f"aml-identity: reading the cluster: {error}", file=sys.stderr)
    return 1


def register(registry: kopf.OperatorRegistry, settings: Settings, peering: Peering | None) -> None:
    """The periodic scan, on the shard that owns the cluster's resources (one per
    cluster), while this replica is the active one."""
    interval = settings.orphan_scan_seconds
    if interval <= 0 or not settings.shard_cluster_resources:
        return

    async def scanning(memo: Any) -> None:
        await asyncio.sleep(min(interval, FIRST_SCAN_SECONDS))
        while True:
            try:
                if peering is None or await peering.active():
                    found = (await orphans.scan(memo.shared.deps)).orphans
                    orphans.record(found)
                    if found:
                        log.warning(
                            "%d orphan(s) in Azure: objects of this cluster whose resource is "
                            "gone (aml-identity orphans lists them)",
                            len(found),
                        )
            except asyncio.CancelledError:
                raise
            except (AzureFailure, KubeError) as error:
                log.warning("cannot look for orphans: %s", error)
            except Exception:  # a dropped connection, a bug: the next scan tries again
                log.exception("looking for orphans failed")
            await asyncio.sleep(interval)

    @kopf.on.startup(registry=registry, id="orphan-scan")
    async def start(memo: Any, **_: Any) -> None:
        memo.orphan_scan = asyncio.create_task(scanning(memo), name="orphan scan")

    @kopf.on.cleanup(registry=registry, id="orphan-scan")
    async def stop(memo: Any, **_: Any) -> None:
        task = getattr(memo, "orphan_scan", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
