"""The Helm chart: lint, schema, install / upgrade / uninstall on the real API server,
restricted Pod Security, and RBAC proven sufficient by running the operator as its
ServiceAccount."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from azlocal.server import AzLocal
from localcluster import LocalCluster, build
from support.operator import OperatorProcess, apply, wait_gone, wait_ready
from support.poll import wait_until
from support.world import RG_IDENTITIES, RG_ML

CHART = Path(__file__).resolve().parents[2] / "charts" / "aml-identity-operator"
TENANT = "7c3f7b52-1d4e-4d5a-9b0e-5f3a2c1d0e01"
SUB = "00000000-0000-0000-0000-000000000001"
VALUES = [
    "--set",
    f"azure.tenantId={TENANT}",
    "--set",
    f"azure.subscriptionId={SUB}",
    "--set",
    "azure.auth.clientId=11111111-1111-1111-1111-111111111111",
]


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [str(build("helm")), *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {result.stderr}")
    return result


def rendered(*extra: str) -> list[dict[str, Any]]:
    text = helm("template", "t", str(CHART), "-n", "aml-system", *VALUES, *extra).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def test_lint() -> None:
    result = helm("lint", str(CHART), *VALUES)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["--set", "azure.tenantId=not-a-guid"],
            "at '/azure/tenantId': 'not-a-guid' does not match",
        ),
        (
            ["--set", "azure.auth.mode=password"],
            "at '/azure/auth/mode': value must be one of 'workloadIdentity', 'certificate'",
        ),
        (["--set", "operator.resyncSeconds=5"], "at '/operator/resyncSeconds'"),
        (["--set", "replicaCount=3"], "at '/replicaCount'"),
    ],
)
def test_schema_rejects_bad_values(values: list[str], message: str) -> None:
    result = helm("template", "t", str(CHART), *VALUES, *values, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_required_values_say_what_is_missing() -> None:
    result = helm(
        "template",
        "t",
        str(CHART),
        "--set",
        f"azure.subscriptionId={SUB}",
        "--set",
        "azure.auth.clientId=x",
        check=False,
    )
    assert result.returncode != 0
    assert "azure" in result.stderr
    assert "tenantId" in result.stderr


def test_every_value_is_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()

    def leaves(node: Any, prefix: str = "") -> Iterator[str]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}{key}.")
        else:
            yield prefix.rstrip(".")

    documented = set(re.findall(r"`([a-zA-Z][\w.]*)`", readme))
    missing = [
        leaf
        for leaf in leaves(values)
        if leaf not in documented and not any(leaf.startswith(d + ".") for d in documented)
    ]
    assert missing == []


def test_cluster_role_is_least_and_named() -> None:
    [role] = [d for d in rendered() if d["kind"] == "ClusterRole"]
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "nonResourceURLs"):
            assert "*" not in rule.get(key, []), rule
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert "update" not in verbs
    assert "escalate" not in verbs
    assert "bind" not in verbs


def test_argocd_health_configmap() -> None:
    [config] = [
        d
        for d in rendered("--set", "argocd.healthChecks=true")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("argocd-health")
    ]
    assert set(config["data"]) == {
        "resource.customizations.health.identity.aml.dev_WorkloadIdentity",
        "resource.customizations.health.identity.aml.dev_MLRoleBinding",
        "resource.customizations.health.identity.aml.dev_MLRole",
    }


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A control plane of its own: the chart installs CRDs other tests applied by hand."""
    local = LocalCluster(tmp_path / "cluster")
    local.start()
    try:
        yield local
    finally:
        local.stop()


def test_install_upgrade_uninstall(own_cluster: LocalCluster) -> None:
    kube = own_cluster.kubeconfig
    helm(
        "install",
        "aml",
        str(CHART),
        "-n",
        "aml-system",
        "--create-namespace",
        *VALUES,
        kubeconfig=kube,
    )
    own_cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/name=aml-identity-operator",
    )
    crd = json.loads(
        own_cluster.kubectl(
            "get", "crd", "workloadidentities.identity.aml.dev", "-o", "json"
        ).stdout
    )
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    deployment = json.loads(
        own_cluster.kubectl(
            "get", "deploy", "-n", "aml-system", "aml-aml-identity-operator", "-o", "json"
        ).stdout
    )
    before = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    helm(
        "upgrade",
        "aml",
        str(CHART),
        "-n",
        "aml-system",
        *VALUES,
        "--set",
        "operator.resyncSeconds=300",
        kubeconfig=kube,
    )
    deployment = json.loads(
        own_cluster.kubectl(
            "get", "deploy", "-n", "aml-system", "aml-aml-identity-operator", "-o", "json"
        ).stdout
    )
    assert deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != before
    assert deployment["metadata"]["generation"] == 2, "a changed value rolls the Deployment"
    config = json.loads(
        own_cluster.kubectl(
            "get", "cm", "-n", "aml-system", "aml-aml-identity-operator", "-o", "json"
        ).stdout
    )
    assert config["data"]["AML_IDENTITY_RESYNC_SECONDS"] == "300"
    helm("uninstall", "aml", "-n", "aml-system", kubeconfig=kube)
    assert (
        own_cluster.kubectl(
            "get", "crd", "workloadidentities.identity.aml.dev", check=False
        ).returncode
        == 0
    )
    assert (
        own_cluster.kubectl(
            "get", "deploy", "-n", "aml-system", "aml-aml-identity-operator", check=False
        ).returncode
        != 0
    )
    # Without keep, uninstall removes the CRDs (after Helm adopts the kept ones again).
    own_cluster.kubectl("delete", "crd", "-l", "app.kubernetes.io/name=aml-identity-operator")
    helm(
        "install",
        "aml",
        str(CHART),
        "-n",
        "aml-system",
        *VALUES,
        "--set",
        "crds.keep=false",
        kubeconfig=kube,
    )
    helm("uninstall", "aml", "-n", "aml-system", kubeconfig=kube)

    wait_until(
        lambda: (
            own_cluster.kubectl(
                "get", "crd", "workloadidentities.identity.aml.dev", check=False
            ).returncode
            != 0
        ),
        what="the CRDs to be removed",
    )


def test_pod_is_admitted_under_restricted_pod_security(cluster: LocalCluster) -> None:
    cluster.kubectl("create", "namespace", "aml-restricted", check=False)
    cluster.kubectl(
        "label",
        "namespace",
        "aml-restricted",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    )
    [deployment] = [d for d in rendered() if d["kind"] == "Deployment"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "aml-operator-pod", "namespace": "aml-restricted"},
        "spec": {**deployment["spec"]["template"]["spec"], "serviceAccountName": "default"},
    }
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
    )
    assert result.returncode == 0, result.stderr
    # And a Pod without the hardening is refused there (the check can fail).
    loose = json.loads(json.dumps(pod))
    loose["spec"]["containers"][0]["securityContext"] = {}
    refused = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(loose), check=False
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr


def test_chart_rbac_runs_the_main_scenario(
    cluster: LocalCluster, azlocal: AzLocal, crds_installed: None, namespace: str, tmp_path: Path
) -> None:
    """The operator, authenticated as the chart's ServiceAccount, does its whole job."""
    rbac = [
        d
        for d in rendered()
        if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]
    cluster.kubectl("create", "namespace", "aml-system", check=False)
    for obj in rbac:
        obj["metadata"]["name"] = obj["metadata"]["name"].replace("t-aml", "rbac-test")
        if obj["kind"] == "ClusterRoleBinding":
            obj["roleRef"]["name"] = obj["roleRef"]["name"].replace("t-aml", "rbac-test")
            for subject in obj["subjects"]:
                subject["name"] = subject["name"].replace("t-aml", "rbac-test")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    token = cluster.kubectl(
        "create", "token", "rbac-test-identity-operator", "-n", "aml-system", "--duration=1h"
    ).stdout.strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    # Credential Secrets are read by name only: the operator can never list or watch
    # every Secret in the cluster.
    for verb in ("list", "watch"):
        assert (
            "no"
            in cluster.kubectl(
                "auth",
                "can-i",
                verb,
                "secrets",
                "--as",
                "system:serviceaccount:aml-system:rbac-test-identity-operator",
                check=False,
            ).stdout
        )
    operator = OperatorProcess(cluster, azlocal, tmp_path, resync=5, kubeconfig=kubeconfig).start()
    try:
        role = f"rbac-{namespace}"
        apply(
            cluster,
            "MLRole",
            role,
            {
                "roleName": f"RBAC Test {namespace}",
                "permissions": {"actions": ["*/read"]},
                "assignableScopes": [RG_ML],
            },
        )
        apply(
            cluster,
            "WorkloadIdentity",
            "rbac",
            {
                "managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"},
                "serviceAccounts": [{"name": "rbac", "create": True}],
            },
            namespace,
        )
        apply(
            cluster,
            "MLRoleBinding",
            "rbac",
            {
                "role": {"mlRole": role},
                "subjects": [{"workloadIdentity": "rbac"}],
                "scope": {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}},
            },
            namespace,
        )
        wait_ready(cluster, "mlroles", role)
        wait_ready(cluster, "wid", "rbac", namespace)
        wait_ready(cluster, "mlrb", "rbac", namespace)
        cluster.kubectl("delete", "mlrb", "rbac", "-n", namespace, "--wait=false")
        wait_gone(cluster, "mlrb", "rbac", namespace)
        cluster.kubectl("delete", "wid", "rbac", "-n", namespace, "--wait=false")
        wait_gone(cluster, "wid", "rbac", namespace)
        cluster.kubectl("delete", "mlroles", role, "--wait=false")
        wait_gone(cluster, "mlroles", role)
    finally:
        operator.stop()
    assert "Forbidden" not in operator.logs(), operator.logs()[-3000:]


def test_high_availability_renders_peering() -> None:
    docs = rendered("--set", "ha.enabled=true")
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    [peering] = [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    [role] = [d for d in docs if d["kind"] == "ClusterRole"]
    assert {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    } in role["rules"]
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"]["AML_IDENTITY_PEERING"] == "aml-identity-operator"


def test_high_availability_takes_over(
    own_cluster: LocalCluster, azlocal: AzLocal, tmp_path: Path
) -> None:
    """Two replicas with peering: one works, the other takes over when it dies."""
    import signal

    azlocal.admin("POST", "trusted-cas", text=own_cluster.ca_file.read_text())
    own_cluster.kubectl("apply", "--server-side", "-f", str(CHART.parents[1] / "crds"))
    for doc in rendered("--set", "ha.enabled=true"):
        if (
            doc["kind"] in ("ClusterKopfPeering",)
            or doc["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
        ):
            own_cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))
            if doc["kind"] == "CustomResourceDefinition":
                own_cluster.kubectl(
                    "wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev"
                )
    own_cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/name=aml-identity-operator",
    )
    own_cluster.kubectl("create", "namespace", "ha")

    def replica(name: str, priority: int) -> OperatorProcess:
        (tmp_path / name).mkdir()
        process = OperatorProcess(own_cluster, azlocal, tmp_path / name, resync=5)
        process.env.update(
            {
                "AML_IDENTITY_PEERING": "aml-identity-operator",
                "AML_IDENTITY_PRIORITY": str(priority),
                "AML_IDENTITY_PEERING_LIFETIME": "6",
            }
        )
        return process.start()

    def peers() -> int:
        peering = json.loads(
            own_cluster.kubectl(
                "get", "clusterkopfpeering", "aml-identity-operator", "-o", "json"
            ).stdout
        )
        return len(peering.get("status") or {})

    # kopf starts every replica paused and decides from the peering object. Starting
    # the active replica first, and the standby only once the active has resumed,
    # means the standby's first look already shows a higher priority: it never
    # resumes, so "exactly one works" is a fair claim rather than a race.
    replicas = [replica("active", 200)]
    try:
        wait_until(
            lambda: "Resuming operations" in replicas[0].logs(),
            timeout=60,
            what="the active replica to resume",
        )
        replicas.append(replica("standby", 100))
        active, standby = replicas
        wait_until(lambda: peers() == 2, timeout=60, what="both replicas in the peering object")
        mi = {"managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}}
        apply(own_cluster, "WorkloadIdentity", "ha-one", mi, "ha")
        wait_ready(own_cluster, "wid", "ha-one", "ha", timeout=90)
        assert "ha-one" in active.logs()
        assert "ha-one" not in standby.logs(), "both replicas worked at once"
        assert "Resuming operations" not in standby.logs()
        active.stop(signal.SIGKILL)
        apply(own_cluster, "WorkloadIdentity", "ha-two", mi, "ha")
        wait_ready(own_cluster, "wid", "ha-two", "ha", timeout=90)
        assert "ha-two" in standby.logs()
        own_cluster.kubectl("delete", "wid", "--all", "-n", "ha")
    finally:
        for process in replicas:
            process.stop()
