"""`aml-identity plan -f DIR`: reads only, and says what would change."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.operator import OperatorProcess, apply, wait_ready
from support.world import RG_IDENTITIES

WRITES = ("PUT", "PATCH", "DELETE")


def plan(operator: OperatorProcess, directory: Path) -> subprocess.CompletedProcess[str]:
    return operator.cli("plan", "-f", str(directory))


def test_plan_before_and_after_apply(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    namespace: str,
    tmp_path: Path,
) -> None:
    spec = {
        "managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"},
        "serviceAccounts": [{"name": "planned"}],
    }
    (tmp_path / "wid.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "identity.aml.dev/v1alpha1",
                "kind": "WorkloadIdentity",
                "metadata": {"name": "planned", "namespace": namespace},
                "spec": spec,
            }
        )
    )
    (tmp_path / "other.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n"
    )
    azlocal.admin("DELETE", "requests")
    before = plan(operator, tmp_path)
    assert before.returncode == 2, before.stderr
    assert f"WorkloadIdentity {namespace}/planned: 2 change(s)" in before.stdout
    assert (
        f"  + create managed identity {namespace}-planned in {RG_IDENTITIES} (westeurope)"
        in before.stdout
    )
    assert "  + put federated credential k8s-planned" in before.stdout
    # (The session's operator may still be cleaning up other tests' namespaces.)
    writes = [
        r
        for r in azlocal.admin("GET", "requests")
        if r["method"] in WRITES and f"/{namespace}-planned" in r["path"]
    ]
    assert writes == [], "plan wrote to Azure"
    reads = [r for r in azlocal.admin("GET", "requests") if f"/{namespace}-planned" in r["path"]]
    assert reads, "plan did not look at Azure"

    apply(cluster, "WorkloadIdentity", "planned", spec, namespace)
    wait_ready(cluster, "wid", "planned", namespace)
    after = plan(operator, tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert after.stdout.strip() == f"WorkloadIdentity {namespace}/planned: no changes"
