"""Fixtures the operator's end-to-end tests share."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from localcluster import LocalCluster
from support.operator import OperatorProcess
from support.policies import GUARD_LABEL, Policies


@pytest.fixture
def webhook_down(cluster: LocalCluster, operator: OperatorProcess) -> Iterator[None]:
    """The webhook configuration removed (as when it is broken or not installed), then
    put back as it was."""
    saved = json.loads(
        cluster.kubectl(
            "get", "validatingwebhookconfiguration", operator.webhook_name, "-o", "json"
        ).stdout
    )
    cluster.kubectl("delete", "validatingwebhookconfiguration", operator.webhook_name)
    try:
        yield
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            saved["metadata"].pop(key, None)
        cluster.kubectl("create", "-f", "-", input=json.dumps(saved))
        operator.wait_for_webhook()


@pytest.fixture
def guarded(cluster: LocalCluster, bare_namespace: str) -> Iterator[tuple[str, Policies]]:
    """A namespace only this test's policies select."""
    cluster.kubectl("label", "namespace", bare_namespace, f"{GUARD_LABEL}={bare_namespace}")
    policies = Policies(cluster, bare_namespace)
    try:
        yield bare_namespace, policies
    finally:
        policies.delete_all()
