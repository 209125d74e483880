"""The Argo CD health checks on objects the real operator wrote."""

from __future__ import annotations

from pathlib import Path

from localcluster import LocalCluster
from support.argocd import health
from support.operator import OperatorProcess, apply, get, wait_ready, wait_reason
from support.world import RG_IDENTITIES

SCRIPTS = (
    Path(__file__).resolve().parents[2] / "argocd" / "resource_customizations" / "identity.aml.dev"
)


def test_health_of_live_objects(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "argo",
        {"managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}},
        namespace,
    )
    ready = wait_ready(cluster, "wid", "argo", namespace)
    assert health(SCRIPTS / "WorkloadIdentity" / "health.lua", ready)["status"] == "Healthy"
    apply(
        cluster,
        "MLRoleBinding",
        "argo-waits",
        {
            "role": {"builtIn": "Reader"},
            "subjects": [{"workloadIdentity": "missing"}],
            "scope": {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}},
        },
        namespace,
    )
    wait_reason(cluster, "mlrb", "argo-waits", "WaitingForDependency", namespace)
    waiting = get(cluster, "mlrb", "argo-waits", namespace)
    assert waiting is not None
    result = health(SCRIPTS / "MLRoleBinding" / "health.lua", waiting)
    assert result == {
        "status": "Progressing",
        "message": f"WaitingForDependency: WorkloadIdentity missing does not exist in {namespace}",
    }
    apply(
        cluster,
        "MLRoleBinding",
        "argo-bad",
        {
            "role": {"builtIn": "No Such Role"},
            "subjects": [{"workloadIdentity": "argo"}],
            "scope": {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}},
        },
        namespace,
    )
    wait_reason(cluster, "mlrb", "argo-bad", "InvalidSpec", namespace)
    bad = get(cluster, "mlrb", "argo-bad", namespace)
    assert bad is not None
    assert health(SCRIPTS / "MLRoleBinding" / "health.lua", bad)["status"] == "Degraded"
