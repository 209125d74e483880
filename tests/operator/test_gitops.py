"""The GitOps example renders, passes server-side dry run, and the operator reconciles it."""

from __future__ import annotations

from pathlib import Path

import yaml

from localcluster import LocalCluster
from support.operator import OperatorProcess, wait_gone, wait_ready

GITOPS = Path(__file__).resolve().parents[2] / "examples" / "gitops"


def test_dev_overlay(operator: OperatorProcess, cluster: LocalCluster) -> None:
    rendered = cluster.kubectl("kustomize", str(GITOPS / "overlays" / "dev")).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    waves = {
        (d["kind"], d["metadata"]["name"]): d["metadata"]["annotations"][
            "argocd.argoproj.io/sync-wave"
        ]
        for d in docs
    }
    assert waves[("MLRole", "ml-endpoint-reader")] < waves[("MLRoleBinding", "endpoint-monitor")]
    assert all(
        "namespace" not in d["metadata"] for d in docs if d["kind"] in ("MLRole", "Namespace")
    )
    assert {
        d["spec"]["scope"]["workspace"]["name"] for d in docs if d["kind"] == "MLRoleBinding"
    } == {"ws-dev"}
    # Waves -2 and -1 first, as Argo CD would: namespaced objects need their namespace,
    # and the admission webhook needs the MLAccessPolicy that allows them.
    assert (
        waves[("MLAccessPolicy", "ml-team-gitops")]
        < waves[("WorkloadIdentity", "training-pipeline")]
    )
    for first in ("Namespace", "MLAccessPolicy"):
        doc = next(d for d in docs if d["kind"] == first)
        cluster.kubectl(
            "apply",
            "--server-side",
            "--field-manager=argocd-like",
            "-f",
            "-",
            input=yaml.safe_dump(doc),
        )
    dry = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=argocd-like",
        "--dry-run=server",
        "-f",
        "-",
        input=rendered,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=argocd-like", "-f", "-", input=rendered
    )
    for kind, name in (
        ("wid", "training-pipeline"),
        ("wid", "endpoint-monitor"),
        ("mlrb", "training-pipeline"),
        ("mlrb", "endpoint-monitor"),
    ):
        wait_ready(cluster, kind, name, "ml-team-dev", timeout=90)
    wait_ready(cluster, "mlroles", "ml-endpoint-reader")
    # Pruning, as Argo CD would: everything goes, the operator cleans Azure.
    cluster.kubectl("delete", "mlrb", "--all", "-n", "ml-team-dev")
    cluster.kubectl("delete", "wid", "--all", "-n", "ml-team-dev", "--wait=false")
    wait_gone(cluster, "wid", "training-pipeline", "ml-team-dev")
    cluster.kubectl("delete", "mlroles", "ml-endpoint-reader", "--wait=false")
    wait_gone(cluster, "mlroles", "ml-endpoint-reader")
    cluster.kubectl("delete", "mlaccesspolicy", "ml-team-gitops")
