"""`kubectl aml-identity report`: the access report of the identities in the cluster, as a
kubectl plugin (the package's `kubectl-aml_identity` entry point), from the live objects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from azlocal.server import AzLocal
from localcluster import LocalCluster, find_kubectl
from support.azure import admin_credential, authorization_client, msi_client
from support.operator import OperatorProcess, apply, wait_ready
from support.world import RG_IDENTITIES, WORKSPACE

MI = {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}
WS = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}}
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"


def kubectl_plugin(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl finds `kubectl-aml_identity` on PATH, next to this Python (kubectl passes a
    plugin no flags of its own: the cluster comes from KUBECONFIG)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "KUBECONFIG": str(cluster.kubeconfig)}
    return subprocess.run(
        [str(find_kubectl()), "aml-identity", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_report_lists_who_can_do_what_and_findings_first(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(
        cluster,
        "WorkloadIdentity",
        "trainer",
        {"managedIdentity": MI, "serviceAccounts": [{"name": "trainer", "create": True}]},
        namespace,
    )
    apply(
        cluster,
        "WorkloadIdentity",
        "legacy",
        {
            "servicePrincipal": {
                "displayName": f"{namespace}-legacy",
                "credential": {"clientSecret": {}},
            }
        },
        namespace,
    )
    apply(
        cluster,
        "MLRoleBinding",
        "train",
        {
            "role": {"builtIn": "AzureML Data Scientist"},
            "subjects": [{"workloadIdentity": "trainer"}],
            "scope": WS,
        },
        namespace,
    )
    for kind, name in (("wid", "trainer"), ("wid", "legacy"), ("mlrb", "train")):
        wait_ready(cluster, kind, name, namespace, timeout=90)
    # A Pod of the trainer's service account, running as far as the API server knows (the
    # local control plane has no node: the status is set as a kubelet would).
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "trainer-pod", "namespace": namespace},
        "spec": {"serviceAccountName": "trainer", "containers": [{"name": "c", "image": "train"}]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl(
        "patch",
        "pod",
        "trainer-pod",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running"}}),
    )

    answer = kubectl_plugin(cluster, "report", "-o", "json")
    assert answer.returncode == 0, answer.stderr
    report: dict[str, Any] = json.loads(answer.stdout)
    mine = {i["name"]: i for i in report["identities"] if i["namespace"] == namespace}
    trainer, legacy = mine["trainer"], mine["legacy"]
    assert trainer["form"] == "ManagedIdentity"
    assert trainer["ready"] == "Reconciled"
    assert trainer["clientId"]
    assert [(g["role"], g["scope"], g["binding"]) for g in trainer["grants"]] == [
        ("AzureML Data Scientist", WORKSPACE, f"{namespace}/train")
    ]
    assert trainer["pods"] == ["trainer-pod"]
    # What the report says is what Azure holds: the identity, its grants, nothing else.
    msi = msi_client(azlocal, admin_credential(azlocal))
    in_azure = msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-trainer")
    assert (trainer["clientId"], trainer["principalId"]) == (
        in_azure.client_id,
        in_azure.principal_id,
    )
    granted = authorization_client(azlocal, admin_credential(azlocal)).role_assignments
    held = [
        (a.scope, a.role_definition_id.rsplit("/", 1)[1])
        for a in granted.list_for_subscription(filter=f"principalId eq '{in_azure.principal_id}'")
    ]
    assert held == [(WORKSPACE, DATA_SCIENTIST)]
    assert trainer["undeclared"] == []
    assert [f["subject"] for f in trainer["federations"]] == [
        f"system:serviceaccount:{namespace}:trainer"
    ]
    assert legacy["credential"] == "ClientSecret"
    assert legacy["credentialExpires"]
    findings = [
        (f["kind"], f["identity"])
        for f in report["findings"]
        if f["identity"].startswith(f"{namespace}/")
    ]
    assert findings == [
        ("ClientSecret", f"{namespace}/legacy"),
        ("NoBinding", f"{namespace}/legacy"),
    ]

    table = kubectl_plugin(cluster, "report")
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("FINDINGS\n")
    assert f"{namespace}/trainer  ManagedIdentity  Reconciled" in table.stdout
    for output in ("yaml", "csv", "markdown"):
        assert kubectl_plugin(cluster, "report", "-o", output).returncode == 0, output
