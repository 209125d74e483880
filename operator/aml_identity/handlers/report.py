"""`aml-identity report` (also `kubectl aml-identity report`): the access report of every
WorkloadIdentity in the cluster. Reads only: the custom resources, Pods and the cluster's
issuer, with the caller's kubeconfig; and, for the orphans section, Azure with the
operator's settings from the environment (the section says why when it cannot)."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

from pydantic import ValidationError

from aml_identity.azure.errors import AzureFailure
from aml_identity.handlers import orphans
from aml_identity.kube.cluster import UNREACHABLE, Cluster
from aml_identity.reconcile import report
from aml_identity.reconcile.orphans import Orphan
from aml_identity.settings import Settings


async def _orphans() -> tuple[list[Orphan], str | None]:
    """The orphans, or why they were not looked for."""
    try:
        settings = Settings()
    except ValidationError:
        return [], "no Azure settings in the environment (AZURE_TENANT_ID, AZURE_CLIENT_ID, ...)"
    try:
        return await orphans.find(settings, None), None
    except AzureFailure as failure:
        return [], f"Azure: {failure}"
    except UNREACHABLE as error:  # the rest of the report may still be readable
        return [], f"reading the cluster: {error}"


async def gather(output: str, with_orphans: bool = True) -> str:
    found, not_scanned = await _orphans() if with_orphans else ([], "not asked (--no-orphans)")
    cluster = Cluster()
    try:
        issuer = os.environ.get("AML_IDENTITY_OIDC_ISSUER") or await cluster.issuer()
        built = report.build(
            await cluster.list_cluster_custom("workloadidentities"),
            await cluster.list_cluster_custom("mlrolebindings"),
            await cluster.list_cluster_custom("mlroles"),
            await cluster.list_pods(),
            issuer=issuer,
            subscription=os.environ.get("AML_IDENTITY_SUBSCRIPTION_ID")
            or os.environ.get("AZURE_SUBSCRIPTION_ID", ""),
            now=datetime.now(UTC),
            orphans=found,
            orphans_not_scanned=not_scanned,
        )
    finally:
        await cluster.close()
    return report.render(built, output)


def run(output: str, with_orphans: bool = True) -> int:
    try:
        print(asyncio.run(gather(output, with_orphans)), end="")
    except UNREACHABLE as error:
        print(f"aml-identity: reading the cluster: {error}", file=sys.stderr)
        return 1
    return 0
