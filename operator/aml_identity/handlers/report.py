"""`aml-identity report` (also `kubectl aml-identity report`): the access report of every
WorkloadIdentity in the cluster. Reads only: the custom resources, Pods and the cluster's
issuer, with the caller's kubeconfig."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

from aml_identity.kube.cluster import UNREACHABLE, Cluster
from aml_identity.reconcile import report


async def gather(output: str) -> str:
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
        )
    finally:
        await cluster.close()
    return report.render(built, output)


def run(output: str) -> int:
    try:
        print(asyncio.run(gather(output)), end="")
    except UNREACHABLE as error:
        print(f"aml-identity: reading the cluster: {error}", file=sys.stderr)
        return 1
    return 0
