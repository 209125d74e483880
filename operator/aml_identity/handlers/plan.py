"""`aml-identity plan -f DIR`: what the operator would change, without changing anything.

Reads manifests, reads Azure (and the live objects in the cluster, for their uid and
status) with the operator's own credentials, and runs the same workflows with writes
disabled. Exit code: 0 nothing would change, 2 something would, 1 something cannot be
planned (invalid spec, missing permission, missing dependency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from aml_identity.api import GROUP
from aml_identity.api.common import Reason
from aml_identity.azure.clients import AzureClients
from aml_identity.controllers.outcome import Deps, Outcome
from aml_identity.handlers.guardrails import live_policies
from aml_identity.handlers.registry import KINDS
from aml_identity.kube.cluster import Cluster
from aml_identity.settings import Settings

PLURALS = {kind: plural for plural, (kind, _, _) in KINDS.items()}


def manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if doc and str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"):
                    docs.append(doc)
    return docs


async def plan(settings: Settings, paths: list[Path]) -> int:
    cluster = Cluster()
    settings = await settings.with_cluster_id(cluster.kube_system_uid)
    azure = AzureClients.build(settings)
    issuer = settings.oidc_issuer or await cluster.issuer()
    policies = await live_policies(cluster, settings)
    deps = Deps(
        settings=settings,
        azure=azure,
        cluster=cluster,
        issuer=issuer,
        manage=False,
        policies=policies,
    )
    worst = 0
    try:
        for doc in manifests(paths):
            kind = doc["kind"]
            plural = PLURALS.get(kind)
            if plural is None:
                continue
            meta = doc.get("metadata", {})
            namespace = meta.get("namespace") if kind != "MLRole" else None
            if kind != "MLRole" and namespace is None:
                namespace = "default"
            live = await cluster.get_custom(plural, namespace, meta["name"])
            body = {
                "metadata": {
                    "name": meta["name"],
                    "namespace": namespace,
                    "uid": (live or {}).get("metadata", {}).get("uid", "(not yet created)"),
                    "annotations": meta.get("annotations", {}),
                    "generation": 1,
                },
                "spec": doc.get("spec", {}),
                "status": (live or {}).get("status"),
            }
            _, reconcile, _ = KINDS[plural]
            outcome = await reconcile(deps, body)
            worst = max(worst, _report(kind, namespace, meta["name"], outcome))
    finally:
        await azure.close()
        await cluster.close()
    return {0: 0, 1: 2, 2: 1}[worst]


def _report(kind: str, namespace: str | None, name: str, outcome: Outcome) -> int:
    """Print one resource's plan; 0 no change, 1 changes, 2 cannot plan."""
    where = f"{namespace}/{name}" if namespace else name
    if outcome.pending_changes:
        print(f"{kind} {where}: {len(outcome.pending_changes)} change(s)")
        for change in outcome.pending_changes:
            print(f"  + {change}")
        return 1
    if outcome.reason is Reason.RECONCILED:
        print(f"{kind} {where}: no changes")
        return 0
    print(f"{kind} {where}: cannot plan ({outcome.reason.value}): {outcome.message}")
    return 2


def run(settings: Settings, paths: list[Path]) -> int:
    return asyncio.run(plan(settings, paths))
