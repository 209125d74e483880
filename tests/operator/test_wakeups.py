"""Changes reach the resources they affect at once, not at the next resync.

Each test runs its own operator as a shard that owns one namespace (by label), with a
resync of an hour: anything that happens within the test's deadline happened because it
was woken, not polled. The session's operator, which resyncs every 5 s and would hide a
missing wake-up, owns every other namespace and leaves this one alone (shards never
overlap: each keeps its own finalizer).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, msi_client
from support.operator import (
    SOLO_LABEL,
    OperatorProcess,
    apply,
    apply_json,
    get,
    wait_ready,
    wait_reason,
)
from support.policies import policy
from support.poll import wait_until
from support.world import RG_IDENTITIES, SUB

MI = {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}
WS = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}}
HOUR = 3600
PROMPTLY = 30  # seconds: far below the resync, well above a reconcile


@pytest.fixture
def solo(
    cluster: LocalCluster, azlocal: AzLocal, crds_installed: None, tmp_path: Path
) -> Iterator[tuple[str, OperatorProcess]]:
    """A namespace owned by a shard of its own, which resyncs once an hour."""
    name = f"s-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"{SOLO_LABEL}={name}")
    process = OperatorProcess(
        cluster,
        azlocal,
        tmp_path,
        resync=HOUR,
        shard="solo",
        shard_selector=f"{SOLO_LABEL}={name}",
    ).start()
    grants = policy(
        f"{name}-grants",
        {
            "namespaceSelector": {"matchLabels": {SOLO_LABEL: name}},
            "scopes": [{"subscription": SUB}],
            "roles": [{"builtIn": ["Reader", "AzureML Data Scientist"]}],
            "identities": {"managedIdentities": [{"resourceGroup": RG_IDENTITIES}]},
        },
    )
    apply_json(cluster, grants)
    try:
        yield name, process
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
        # The shard's finalizers go with it: wait until its resources are cleaned up.
        cluster.kubectl(
            "wait", "--for=delete", "wid,mlrb", "--all", "-n", name, "--timeout=90s", check=False
        )
        process.stop()
        cluster.kubectl("delete", "mlaccesspolicy", f"{name}-grants", "--ignore-not-found")


def test_a_binding_is_woken_when_its_identity_becomes_ready(
    cluster: LocalCluster, solo: tuple[str, OperatorProcess]
) -> None:
    namespace, process = solo
    binding = {
        "role": {"builtIn": "Reader"},
        "subjects": [{"workloadIdentity": "late"}],
        "scope": WS,
    }
    apply(cluster, "MLRoleBinding", "early", binding, namespace)
    waiting = wait_reason(cluster, "mlrb", "early", "WaitingForDependency", namespace, timeout=60)
    assert "WorkloadIdentity late does not exist" in waiting["message"]
    apply(cluster, "WorkloadIdentity", "late", {"managedIdentity": MI}, namespace)
    identity = wait_ready(cluster, "wid", "late", namespace, timeout=60)
    ready = wait_ready(cluster, "mlrb", "early", namespace, timeout=PROMPTLY)
    annotations = ready["metadata"]["annotations"]
    assert annotations["reconcile.identity.aml.dev/dependency-ready"].startswith(
        "workloadidentities/late@"
    )
    assert ready["status"]["assignments"][0]["principalId"] == identity["status"]["principalId"]
    # Only this shard's finalizer: the session's operator never touched these objects.
    for kind, name in (("wid", "late"), ("mlrb", "early")):
        found = get(cluster, kind, name, namespace) or {}
        assert found["metadata"]["finalizers"] == ["identity.aml.dev/finalizer-solo"], kind
    assert "waking" in process.logs()


def test_a_tightened_policy_revokes_at_once(
    cluster: LocalCluster, solo: tuple[str, OperatorProcess]
) -> None:
    namespace, _ = solo
    apply(cluster, "WorkloadIdentity", "tight", {"managedIdentity": MI}, namespace)
    wait_ready(cluster, "wid", "tight", namespace, timeout=60)
    binding = {
        "role": {"builtIn": "AzureML Data Scientist"},
        "subjects": [{"workloadIdentity": "tight"}],
        "scope": WS,
    }
    apply(cluster, "MLRoleBinding", "tight", binding, namespace)
    wait_ready(cluster, "mlrb", "tight", namespace, timeout=60)
    narrower = policy(
        f"{namespace}-grants",
        {
            "namespaceSelector": {"matchLabels": {SOLO_LABEL: namespace}},
            "scopes": [{"subscription": SUB}],
            "roles": [{"builtIn": ["Reader"]}],
            "identities": {"managedIdentities": [{"resourceGroup": RG_IDENTITIES}]},
        },
    )
    apply_json(cluster, narrower)
    denied = wait_reason(cluster, "mlrb", "tight", "PolicyDenied", namespace, timeout=PROMPTLY)
    assert "AzureML Data Scientist" in denied["message"]
    found = get(cluster, "mlrb", "tight", namespace) or {}
    assert found["status"]["assignments"] == []


def test_a_namespace_moved_to_a_shard_is_taken_over_and_still_cleaned_up(
    cluster: LocalCluster,
    azlocal: AzLocal,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
) -> None:
    """The session's operator (unsharded finalizer) hands a namespace to a shard by a
    relabel: the shard reconciles it, the old finalizer goes, and deleting still cleans
    up Azure instead of hanging on a finalizer nobody removes."""
    apply(cluster, "WorkloadIdentity", "moved", {"managedIdentity": MI}, namespace)
    before = wait_ready(cluster, "wid", "moved", namespace, timeout=60)
    assert before["metadata"]["finalizers"] == ["identity.aml.dev/finalizer"]
    cluster.kubectl("label", "namespace", namespace, f"{SOLO_LABEL}={namespace}")
    shard = OperatorProcess(
        cluster, azlocal, tmp_path, resync=HOUR, shard="solo",
        shard_selector=f"{SOLO_LABEL}={namespace}",
    ).start()  # fmt: skip
    try:

        def handed_over() -> bool:
            found = get(cluster, "wid", "moved", namespace) or {}
            return bool(found["metadata"].get("finalizers") == ["identity.aml.dev/finalizer-solo"])

        wait_until(handed_over, timeout=60, what="the shard's finalizer to replace the old one")
        cluster.kubectl("delete", "wid", "moved", "-n", namespace, "--wait=false")
        wait_until(
            lambda: get(cluster, "wid", "moved", namespace) is None,
            timeout=60,
            what="the WorkloadIdentity to be deleted",
        )
        msi = msi_client(azlocal, admin_credential(azlocal))
        names = {i.name for i in msi.user_assigned_identities.list_by_resource_group(RG_IDENTITIES)}
        assert f"{namespace}-moved" not in names
    finally:
        shard.stop()
