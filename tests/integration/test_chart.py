"""The Helm chart: lint, schema, install / upgrade / uninstall on the real API server,
restricted Pod Security, and RBAC proven sufficient by running the operator as its
ServiceAccount."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from aml_identity.reconcile.names import role_definition_name
from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.helm import CHART, helm
from support.operator import (
    API,
    OperatorProcess,
    apply,
    apply_json,
    free_port,
    get,
    wait_crds_established,
    wait_gone,
    wait_ready,
)
from support.policies import BASELINE_LABEL, baseline_policy
from support.poll import wait_until
from support.world import RG_IDENTITIES, RG_ML

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


def rendered(*extra: str) -> list[dict[str, Any]]:
    text = helm("template", "t", str(CHART), "-n", "aml-system", *VALUES, *extra).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of `kind` (named `name`) among `docs`."""
    [found] = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    return found


# What kopf registers (operator/aml_identity/handlers/guardrails.py), each at /<handler id>.
WEBHOOK_KINDS = {
    "workloadidentities": "Namespaced",
    "mlrolebindings": "Namespaced",
    "mlroles": "Cluster",
}
WEBHOOK_SERVICE = "t-aml-identity-operator-webhook"
WEBHOOK_SECRET = "t-aml-identity-operator-webhook-tls"
NOT_AFTER = "identity.aml.dev/webhook-certificate-not-after"


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
        (["--set", "webhook.failurePolicy=Sometimes"], "at '/webhook/failurePolicy'"),
        (["--set", "webhook.timeoutSeconds=31"], "at '/webhook/timeoutSeconds'"),
        (
            ["--set", "webhook.certificate.validityDays=30"],
            "at '/webhook/certificate/validityDays'",
        ),
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
    wait_crds_established(own_cluster)
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
    delete_crds_and_wait(own_cluster, lambda: own_cluster.kubectl(
        "delete", "crd", "-l", "app.kubernetes.io/name=aml-identity-operator", "--wait=false"
    ))  # fmt: skip
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
    wait_crds_established(own_cluster)
    delete_crds_and_wait(
        own_cluster, lambda: helm("uninstall", "aml", "-n", "aml-system", kubeconfig=kube)
    )


CUSTOM_KINDS = "workloadidentities,mlrolebindings,mlroles,mlaccesspolicies"


def delete_crds_and_wait(cluster: LocalCluster, delete: Callable[[], object]) -> None:
    """Delete the CRDs (by `delete`) and wait until they are gone.

    The API server's CRD finalizer lists the instances from the watch cache, and a cache
    still initializing (CRDs a few seconds old) answers "storage is (re)initializing"; the
    finalizer then retries with exponential backoff, which on a loaded machine outlasted
    kubectl's and our deadlines. Reading each kind first, until it answers, makes that
    cache ready before the finalizer needs it."""
    wait_until(
        lambda: cluster.kubectl("get", CUSTOM_KINDS, "-A", check=False).returncode == 0,
        timeout=60,
        what="the custom resources to be served",
    )
    delete()
    wait_until(
        lambda: (
            cluster.kubectl(
                "get", "crd", "-l", "app.kubernetes.io/name=aml-identity-operator", "-o", "name"
            ).stdout.strip()
            == ""
        ),
        timeout=120,
        what="the CRDs to be removed",
    )


@pytest.mark.parametrize(
    "extra", [[], ["--set", "azure.auth.injectWorkloadIdentity=true"]], ids=["aks", "elsewhere"]
)
def test_pod_is_admitted_under_restricted_pod_security(
    cluster: LocalCluster, extra: list[str]
) -> None:
    cluster.kubectl("create", "namespace", "aml-restricted", check=False)
    cluster.kubectl(
        "label",
        "namespace",
        "aml-restricted",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    )
    [deployment] = [d for d in rendered(*extra) if d["kind"] == "Deployment"]
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
    """The operator, authenticated as the chart's ServiceAccount and configured as the
    chart configures it (the webhook served from the chart's certificate, the webhook
    configuration left to the chart), does its whole job and answers admission reviews
    with the policies it may read."""
    docs = rendered()
    rbac = [d for d in docs if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
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
    tls = only(docs, "Secret", WEBHOOK_SECRET)["data"]
    certs = tmp_path / "webhook"
    certs.mkdir()
    for key in ("ca.crt", "tls.crt", "tls.key"):
        (certs / key).write_bytes(base64.b64decode(tls[key]))
    config = only(docs, "ConfigMap", "t-aml-identity-operator")["data"]
    operator = OperatorProcess(cluster, azlocal, tmp_path, resync=5, kubeconfig=kubeconfig)
    port = free_port()
    operator.env |= {
        "AML_IDENTITY_WEBHOOK_PORT": str(port),
        "AML_IDENTITY_WEBHOOK_ADDRESS": "127.0.0.1",
        "AML_IDENTITY_WEBHOOK_CERT_DIR": str(certs),
        "AML_IDENTITY_WEBHOOK_CONFIGURATION": config.get("AML_IDENTITY_WEBHOOK_CONFIGURATION", ""),
    }
    # The chart sets no cluster id by default: the operator reads kube-system's UID, with
    # the chart's RBAC.
    assert "AML_IDENTITY_CLUSTER_ID" not in config
    del operator.env["AML_IDENTITY_CLUSTER_ID"]
    operator.start()
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
        made = wait_ready(cluster, "mlroles", role)["status"]["roleDefinitionName"]
        kube_system = get(cluster, "namespace", "kube-system")
        assert kube_system is not None
        assert made == role_definition_name(kube_system["metadata"]["uid"], role)
        wait_ready(cluster, "wid", "rbac", namespace)
        wait_ready(cluster, "mlrb", "rbac", namespace)
        # As the API server calls it: TLS checked against the chart's CA for the Service's
        # name. The MLRole guard refuses; the baseline policy (read through the chart's
        # RBAC) allows the identity, and no policy selects a bare namespace.
        ca = base64.b64decode(tls["ca.crt"]).decode()
        privileged = {
            "roleName": "p",
            "permissions": {"actions": ["*"]},
            "assignableScopes": [RG_ML],
        }
        mi = {"managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}}
        answer = admission_review(port, ca, "mlroles", "MLRole", None, privileged)
        assert not answer["allowed"]
        assert "is privileged" in answer["status"]["message"]
        assert admission_review(port, ca, "workloadidentities", "WorkloadIdentity", namespace, mi)[
            "allowed"
        ]
        bare = admission_review(port, ca, "workloadidentities", "WorkloadIdentity", "nowhere", mi)
        assert not bare["allowed"]
        assert "no MLAccessPolicy selects namespace nowhere" in bare["status"]["message"]
        cluster.kubectl("delete", "mlrb", "rbac", "-n", namespace, "--wait=false")
        wait_gone(cluster, "mlrb", "rbac", namespace)
        cluster.kubectl("delete", "wid", "rbac", "-n", namespace, "--wait=false")
        wait_gone(cluster, "wid", "rbac", namespace)
        cluster.kubectl("delete", "mlroles", role, "--wait=false")
        wait_gone(cluster, "mlroles", role)
    finally:
        operator.stop()
    assert "Forbidden" not in operator.logs(), operator.logs()[-3000:]


def admission_review(
    port: int,
    ca: str,
    plural: str,
    kind: str,
    namespace: str | None,
    spec: dict[str, Any],
) -> dict[str, Any]:
    """POST a CREATE review to the operator's webhook at 127.0.0.1:`port` the way the API
    server does: HTTPS verified against `ca` for the chart's Service name."""
    host = f"{WEBHOOK_SERVICE}.aml-system.svc"
    metadata: dict[str, Any] = {"name": "review", "uid": "5f0c1d2e-0000-4000-8000-000000000001"}
    if namespace:
        metadata["namespace"] = namespace
    obj = {"apiVersion": API, "kind": kind, "metadata": metadata, "spec": spec}
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "5f0c1d2e-0000-4000-8000-000000000002",
            "kind": {"group": "identity.aml.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "identity.aml.dev", "version": "v1alpha1", "resource": plural},
            "name": "review",
            "operation": "CREATE",
            "userInfo": {"username": "tests"},
            "object": obj,
            "oldObject": None,
            "dryRun": True,
            **({"namespace": namespace} if namespace else {}),
        },
    }
    body = json.dumps(review).encode()
    head = (
        f"POST /validate-{plural} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    context = ssl.create_default_context(cadata=ca)
    wait_until(lambda: _listening(port), what="the webhook to listen")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(head + body)
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    status, _, rest = response.partition(b"\r\n")
    assert b" 200 " in status, response[:500]
    answer: dict[str, Any] = json.loads(rest.partition(b"\r\n\r\n")[2])["response"]
    return answer


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_host_network_values_do_nothing_unless_enabled() -> None:
    """The test-only hostNetwork values change nothing while hostNetwork.enabled is off."""
    test_only = ["--set", "hostNetwork.apiServer=127.0.0.1:6443"]
    test_only += ["--set", "hostNetwork.webhookHost=127.0.0.1"]
    default, ignored = rendered(), rendered(*test_only)
    for docs in (default, ignored):
        pod = only(docs, "Deployment")["spec"]["template"]["spec"]
        assert "hostNetwork" not in pod
        for webhook in only(docs, "ValidatingWebhookConfiguration")["webhooks"]:
            assert "url" not in webhook["clientConfig"]
    spec = [only(docs, "Deployment")["spec"]["template"]["spec"] for docs in (default, ignored)]
    assert spec[0] == spec[1]
    enabled = only(rendered(*test_only, "--set", "hostNetwork.enabled=true"), "Deployment")
    assert enabled["spec"]["template"]["spec"]["hostNetwork"] is True


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
    # Each replica appears in the peering object by its Pod's name.
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"]
    )


def test_high_availability_takes_over(
    own_cluster: LocalCluster, azlocal: AzLocal, tmp_path: Path
) -> None:
    """Two replicas with peering: one works, the other takes over when it dies; both
    answer the admission webhook the same (the standby is paused, not blind)."""
    import signal

    azlocal.admin("POST", "trusted-cas", text=own_cluster.ca_file.read_text())
    own_cluster.kubectl("apply", "--server-side", "-f", str(CHART.parents[1] / "crds"))
    docs = rendered("--set", "ha.enabled=true")
    tls = only(docs, "Secret", WEBHOOK_SECRET)["data"]
    certs = tmp_path / "webhook"
    certs.mkdir()
    for key in ("ca.crt", "tls.crt", "tls.key"):
        (certs / key).write_bytes(base64.b64decode(tls[key]))
    for doc in docs:
        if (
            doc["kind"] in ("ClusterKopfPeering",)
            or doc["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
        ):
            own_cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))
            if doc["kind"] == "CustomResourceDefinition":
                own_cluster.kubectl(
                    "wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev"
                )
    wait_crds_established(own_cluster)
    own_cluster.kubectl("create", "namespace", "ha")
    own_cluster.kubectl("label", "namespace", "ha", f"{BASELINE_LABEL}=true")
    apply_json(own_cluster, baseline_policy(azlocal))

    def replica(name: str, priority: int) -> OperatorProcess:
        (tmp_path / name).mkdir()
        process = OperatorProcess(own_cluster, azlocal, tmp_path / name, resync=5)
        process.env.update(
            {
                "AML_IDENTITY_PEERING": "aml-identity-operator",
                "AML_IDENTITY_PRIORITY": str(priority),
                "AML_IDENTITY_PEERING_LIFETIME": "6",
                # Each replica serves the webhook with the chart's certificate, as the
                # chart's Service would reach any of them.
                "AML_IDENTITY_WEBHOOK_PORT": str(free_port()),
                "AML_IDENTITY_WEBHOOK_ADDRESS": "127.0.0.1",
                "AML_IDENTITY_WEBHOOK_CERT_DIR": str(certs),
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
        ca = base64.b64decode(tls["ca.crt"]).decode()
        for process in replicas:
            port = int(process.env["AML_IDENTITY_WEBHOOK_PORT"])
            allowed = admission_review(port, ca, "workloadidentities", "WorkloadIdentity", "ha", mi)
            assert allowed["allowed"] is True, allowed
            refused = admission_review(
                port, ca, "workloadidentities", "WorkloadIdentity", "no-policy-here", mi
            )
            assert refused["allowed"] is False
            assert "no MLAccessPolicy selects namespace no-policy-here" in str(refused)
        apply(own_cluster, "WorkloadIdentity", "ha-one", mi, "ha")
        wait_ready(own_cluster, "wid", "ha-one", "ha", timeout=90)
        assert "ha-one" in active.logs()
        assert "ha-one" not in standby.logs(), "both replicas worked at once"
        assert "Resuming operations" not in standby.logs()
        active.stop(signal.SIGKILL)
        apply(own_cluster, "WorkloadIdentity", "ha-two", mi, "ha")
        wait_ready(own_cluster, "wid", "ha-two", "ha", timeout=90)
        assert "ha-two" in standby.logs()
        # The resync is the operator's own loop, not a kopf timer: a replica that kopf
        # pauses in favour of a newcomer must stop resyncing too.

        def resyncs(text: str) -> int:
            lines = text.splitlines()
            return sum("aml_identity.resync" in line and "ha/ha-two" in line for line in lines)

        wait_until(
            lambda: resyncs(standby.logs()) >= 1,
            timeout=60,
            what="the new active replica to resync ha-two (every 5 s)",
        )
        newcomer = replica("newcomer", 300)
        replicas.append(newcomer)
        wait_until(
            lambda: "Pausing operations" in standby.logs(),
            timeout=60,
            what="the former standby to pause for the newcomer",
        )

        wait_until(
            lambda: resyncs(newcomer.logs()) >= 2,
            timeout=60,
            what="the newcomer to resync ha-two twice (every 5 s)",
        )
        paused_part = standby.logs().split("Pausing operations", 1)[1]
        # One resync may have been under way as the pause came; a 5 s cadence would show more.
        assert resyncs(paused_part) <= 1, "a paused replica kept resyncing"
        own_cluster.kubectl("delete", "wid", "--all", "-n", "ha")
    finally:
        for process in replicas:
            process.stop()


# --- the admission webhook --------------------------------------------------------------


def pem(b64: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def assert_serving_pair(ca_bundle: str, secret: dict[str, Any], host: str) -> None:
    """`ca_bundle` is the CA that signed the Secret's serving certificate, which names
    `host` (the webhook Service's <name>.<namespace>.svc) and matches the Secret's key."""
    ca = pem(ca_bundle)
    serving = pem(secret["data"]["tls.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert serving.issuer == ca.subject
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert host in names.get_values_for_type(x509.DNSName)
    usages = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(
        serialization.Encoding.PEM, public
    ) == serving.public_key().public_bytes(serialization.Encoding.PEM, public)
    assert "ca.key" not in secret["data"], "the CA's key is never kept"


def test_webhook_paths_are_the_operators_handlers() -> None:
    """The chart routes each kind to the handler kopf registers for it, with the same
    operations: a renamed handler would otherwise answer 404 to every request."""
    from aml_identity.handlers.registry import build_registry
    from aml_identity.settings import Settings

    settings = Settings.model_validate(
        {
            "AML_IDENTITY_TENANT_ID": TENANT,
            "AML_IDENTITY_SUBSCRIPTION_ID": SUB,
            "webhook_port": 9443,
        }
    )
    handlers = {h.id: h for h in build_registry(settings)._webhooks.get_all_handlers()}
    # Without a webhook port there are none (kopf would refuse to start otherwise).
    unserved = settings.model_copy(update={"webhook_port": 0})
    assert not build_registry(unserved)._webhooks.get_all_handlers()
    vwc = only(rendered(), "ValidatingWebhookConfiguration")
    assert {w["clientConfig"]["service"]["path"] for w in vwc["webhooks"]} == {
        f"/{h}" for h in handlers
    }
    for webhook in vwc["webhooks"]:
        handler = handlers[webhook["clientConfig"]["service"]["path"].removeprefix("/")]
        [rule] = webhook["rules"]
        assert handler.selector is not None
        assert [handler.selector.group] == rule["apiGroups"]
        assert [handler.selector.version] == rule["apiVersions"]
        assert [handler.selector.any_name] == rule["resources"]
        assert sorted(handler.operations or []) == sorted(rule["operations"])


def test_webhook_configuration() -> None:
    docs = rendered()
    vwc = only(docs, "ValidatingWebhookConfiguration")
    secret = only(docs, "Secret", WEBHOOK_SECRET)
    service = only(docs, "Service", WEBHOOK_SERVICE)
    assert {w["name"] for w in vwc["webhooks"]} == {f"{p}.identity.aml.dev" for p in WEBHOOK_KINDS}
    bundles = set()
    for webhook in vwc["webhooks"]:
        plural = webhook["name"].split(".")[0]
        assert webhook["rules"] == [
            {
                "apiGroups": ["identity.aml.dev"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [plural],
                "scope": WEBHOOK_KINDS[plural],
            }
        ]
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["sideEffects"] == "None"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["matchPolicy"] == "Equivalent"
        assert webhook["timeoutSeconds"] == 10
        assert "namespaceSelector" not in webhook, "operator.namespaces is empty: all"
        assert webhook["matchConditions"] == [
            {"name": "not-being-deleted", "expression": "!has(object.metadata.deletionTimestamp)"}
        ]
        assert webhook["clientConfig"]["service"] == {
            "name": WEBHOOK_SERVICE,
            "namespace": "aml-system",
            "port": 443,
            "path": f"/validate-{plural}",
        }
        bundles.add(webhook["clientConfig"]["caBundle"])
    [bundle] = bundles
    assert bundle == secret["data"]["ca.crt"]
    assert secret["type"] == "kubernetes.io/tls"
    assert_serving_pair(bundle, secret, f"{WEBHOOK_SERVICE}.aml-system.svc")
    assert int(secret["metadata"]["annotations"][NOT_AFTER]) > time.time() + 3600 * 24 * 3000
    # The Service reaches the container port on every operator Pod.
    deployment = only(docs, "Deployment")
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook"}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    assert {"name": "webhook", "containerPort": 9443} in container["ports"]
    assert {
        "name": "webhook-tls",
        "mountPath": "/etc/aml-identity/webhook",
        "readOnly": True,
    } in container["volumeMounts"]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "webhook-tls"]
    assert volume["secret"]["secretName"] == WEBHOOK_SECRET
    config = only(docs, "ConfigMap", "t-aml-identity-operator")["data"]
    assert config["AML_IDENTITY_WEBHOOK_PORT"] == "9443"
    assert config["AML_IDENTITY_WEBHOOK_CERT_DIR"] == "/etc/aml-identity/webhook"
    assert "AML_IDENTITY_WEBHOOK_CONFIGURATION" not in config, "the chart owns the VWC"
    # The Pods roll when the certificate changes, and only then.
    expected = hashlib.sha256(
        (secret["data"]["ca.crt"] + secret["data"]["tls.crt"]).encode()
    ).hexdigest()
    assert pod["metadata"]["annotations"]["checksum/webhook-tls"] == expected


def test_webhook_values() -> None:
    docs = rendered(
        "--set",
        "webhook.failurePolicy=Ignore",
        "--set",
        "webhook.timeoutSeconds=5",
        "--set",
        "webhook.port=10443",
        "-n",
        "ml-ops",
    )
    vwc = only(docs, "ValidatingWebhookConfiguration")
    assert {w["failurePolicy"] for w in vwc["webhooks"]} == {"Ignore"}
    assert {w["timeoutSeconds"] for w in vwc["webhooks"]} == {5}
    assert {w["clientConfig"]["service"]["namespace"] for w in vwc["webhooks"]} == {"ml-ops"}
    assert_serving_pair(
        vwc["webhooks"][0]["clientConfig"]["caBundle"],
        only(docs, "Secret", WEBHOOK_SECRET),
        f"{WEBHOOK_SERVICE}.ml-ops.svc",
    )
    [container] = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "webhook", "containerPort": 10443} in container["ports"]
    config = only(docs, "ConfigMap", "t-aml-identity-operator")["data"]
    assert config["AML_IDENTITY_WEBHOOK_PORT"] == "10443"


def test_webhook_follows_plain_watched_namespaces() -> None:
    def selectors(*namespaces: str) -> dict[str, Any]:
        values = ["--set", f"operator.namespaces={{{','.join(namespaces)}}}"]
        vwc = only(rendered(*values), "ValidatingWebhookConfiguration")
        return {w["name"].split(".")[0]: w.get("namespaceSelector") for w in vwc["webhooks"]}

    plain = selectors("team-a", "team-b")
    expected = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": ["team-a", "team-b"],
            }
        ]
    }
    assert plain == {
        "workloadidentities": expected,
        "mlrolebindings": expected,
        "mlroles": None,  # cluster-scoped
    }
    # kopf patterns cannot be a selector: then every namespace is checked.
    assert set(selectors("team-*", "!team-x").values()) == {None}


def test_webhook_disabled_renders_nothing_of_it() -> None:
    docs = rendered("--set", "webhook.enabled=false")
    kinds = {d["kind"] for d in docs}
    assert "ValidatingWebhookConfiguration" not in kinds
    assert "Secret" not in kinds
    assert WEBHOOK_SERVICE not in {d["metadata"]["name"] for d in docs}
    pod = only(docs, "Deployment")["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert "webhook" not in {p["name"] for p in container["ports"]}
    assert "webhook-tls" not in {v["name"] for v in container["volumeMounts"]}
    assert "webhook-tls" not in {v["name"] for v in pod["spec"]["volumes"]}
    assert "checksum/webhook-tls" not in pod["metadata"]["annotations"]
    assert "env" not in container
    config = only(docs, "ConfigMap", "t-aml-identity-operator")["data"]
    assert not [k for k in config if k.startswith("AML_IDENTITY_WEBHOOK")]


def test_webhook_with_high_availability_reaches_every_replica() -> None:
    """Every replica answers admission (it reads the policies from the API server), so
    the webhook Service selects them all."""
    docs = rendered("--set", "ha.enabled=true")
    service = only(docs, "Service", WEBHOOK_SERVICE)
    deployment = only(docs, "Deployment")
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert only(docs, "ValidatingWebhookConfiguration")


# Shards: one Deployment per item of `shards` (docs/operations.md#sharding).
SHARD_A = {"name": "a", "namespaceSelector": "!aml-identity/shard", "clusterResources": True}
SHARD_B = {
    "name": "b",
    "namespaceSelector": "aml-identity/shard=b",
    "azure": {"auth": {"clientId": "22222222-2222-2222-2222-222222222222"}},
}
SHARD_LABEL = "identity.aml.dev/shard"


def with_shards(*shards: dict[str, Any]) -> list[str]:
    return ["--set-json", f"shards={json.dumps(list(shards))}"]


def shard_env(deployment: dict[str, Any]) -> dict[str, str]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    # Values only (POD_ID, from the Pod's name, is checked with the peering).
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_shards_render_a_deployment_each() -> None:
    unsharded = rendered("--set", "ha.enabled=true")
    assert SHARD_LABEL not in json.dumps(unsharded)
    assert [d["metadata"]["name"] for d in unsharded if d["kind"] == "Deployment"] == [
        "t-aml-identity-operator"
    ]
    docs = rendered(
        "--set",
        "ha.enabled=true",
        "--set",
        "podDisruptionBudget.enabled=true",
        *with_shards(SHARD_A, {**SHARD_B, "replicas": 3}),
    )
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"t-aml-identity-operator-a", "t-aml-identity-operator-b"}
    a, b = deployments["t-aml-identity-operator-a"], deployments["t-aml-identity-operator-b"]
    assert shard_env(a) == {
        "AML_IDENTITY_SHARD": "a",
        "AML_IDENTITY_SHARD_NAMESPACE_SELECTOR": "!aml-identity/shard",
        "AML_IDENTITY_SHARD_CLUSTER_RESOURCES": "true",
        "AML_IDENTITY_PEERING": "aml-identity-operator-a",
    }
    assert shard_env(b) == {
        "AML_IDENTITY_SHARD": "b",
        "AML_IDENTITY_SHARD_NAMESPACE_SELECTOR": "aml-identity/shard=b",
        "AML_IDENTITY_SHARD_CLUSTER_RESOURCES": "false",
        "AML_IDENTITY_PEERING": "aml-identity-operator-b",
    }
    # Each shard elects its own active replica: a peering object each, and none shared
    # through the ConfigMap (which every shard reads).
    peerings = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterKopfPeering"}
    assert peerings == {"aml-identity-operator-a", "aml-identity-operator-b"}
    config = only(docs, "ConfigMap", "t-aml-identity-operator")["data"]
    assert "AML_IDENTITY_PEERING" not in config
    assert config["AML_IDENTITY_PEERING_LIFETIME"] == "60"
    assert (a["spec"]["replicas"], b["spec"]["replicas"]) == (2, 3)  # ha.replicas, its own
    for deployment in (a, b):
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        [source] = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert source["configMapRef"]["name"] == "t-aml-identity-operator"
    # Each Deployment selects its own Pods only; the webhook and metrics Services and
    # each PodDisruptionBudget reach the Pods they should.
    labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    pdbs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert set(pdbs) == set(deployments)
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector[SHARD_LABEL] == name.rsplit("-", 1)[1]
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == selector
        for other, pod_labels in labels.items():
            assert (selector.items() <= pod_labels.items()) == (other == name)
    for service in (WEBHOOK_SERVICE, "t-aml-identity-operator-metrics"):
        selector = only(docs, "Service", service)["spec"]["selector"]
        assert all(selector.items() <= pod.items() for pod in labels.values()), service
    assert only(docs, "ValidatingWebhookConfiguration")


def test_shards_with_an_identity_of_their_own() -> None:
    """A shard that overrides the Azure identity runs as its own ServiceAccount,
    annotated with its client id; the others share the chart's; the ClusterRole is bound
    to each."""
    docs = rendered(*with_shards(SHARD_A, SHARD_B))
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert {
        n: d["spec"]["template"]["spec"]["serviceAccountName"] for n, d in deployments.items()
    } == {
        "t-aml-identity-operator-a": "t-aml-identity-operator",
        "t-aml-identity-operator-b": "t-aml-identity-operator-b",
    }
    assert set(accounts) == {"t-aml-identity-operator", "t-aml-identity-operator-b"}
    client_ids = {
        n: a["metadata"]["annotations"]["azure.workload.identity/client-id"]
        for n, a in accounts.items()
    }
    assert client_ids == {
        "t-aml-identity-operator": "11111111-1111-1111-1111-111111111111",
        "t-aml-identity-operator-b": "22222222-2222-2222-2222-222222222222",
    }
    for account in accounts.values():
        assert account["metadata"]["annotations"]["azure.workload.identity/tenant-id"] == TENANT
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
        assert "AML_IDENTITY_PEERING" not in shard_env(deployment), "ha is off"
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    binding = only(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == only(docs, "ClusterRole")["metadata"]["name"]
    assert sorted(s["name"] for s in binding["subjects"]) == sorted(accounts)
    assert {s["namespace"] for s in binding["subjects"]} == {"aml-system"}
    # Every shard its own identity: the chart's ServiceAccount (and client id) is unused.
    own_a = {**SHARD_A, "azure": {"auth": {"clientId": "33333333-3333-3333-3333-333333333333"}}}
    docs = rendered("--set", "azure.auth.clientId=", *with_shards(own_a, SHARD_B))
    own = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    assert own == {"t-aml-identity-operator-a", "t-aml-identity-operator-b"}
    assert {s["name"] for s in only(docs, "ClusterRoleBinding")["subjects"]} == own


def test_shards_with_certificates_and_sizes_of_their_own() -> None:
    shard_b = {
        **SHARD_B,
        "azure": {"auth": {"clientId": "c-b", "certificate": {"secretName": "cert-b"}}},
        "replicas": 0,
        "resources": {"requests": {"cpu": "1"}},
    }
    docs = rendered(
        "--set",
        "azure.auth.mode=certificate",
        "--set",
        "azure.auth.certificate.secretName=cert-main",
        *with_shards(SHARD_A, shard_b),
    )
    a = only(docs, "Deployment", "t-aml-identity-operator-a")
    b = only(docs, "Deployment", "t-aml-identity-operator-b")
    for deployment, client_id, secret in (
        (a, "11111111-1111-1111-1111-111111111111", "cert-main"),
        (b, "c-b", "cert-b"),
    ):
        assert shard_env(deployment)["AZURE_CLIENT_ID"] == client_id
        pod = deployment["spec"]["template"]
        assert "azure.workload.identity/use" not in pod["metadata"]["labels"]
        [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "azure-certificate"]
        assert volume["secret"]["secretName"] == secret
    assert b["spec"]["replicas"] == 0
    assert b["spec"]["template"]["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "1"}}
    assert a["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "384Mi"
    }


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        (
            [{**SHARD_A, "name": "Shard_A"}],
            "at '/shards/0/name': 'Shard_A' does not match pattern",
        ),
        ([{**SHARD_A, "name": "a" * 33}], "at '/shards/0/name'"),
        (
            [SHARD_A, {"name": "b", "clusterResources": False}],
            "at '/shards/1': missing property 'namespaceSelector'",
        ),
        ([{**SHARD_A, "namespaceSelector": ""}], "at '/shards/0/namespaceSelector'"),
        (
            [SHARD_A, {**SHARD_B, "namespaceselector": "x"}],
            "at '/shards/1': additional properties 'namespaceselector' not allowed",
        ),
        (
            [{**SHARD_A, "azure": {"tenantId": TENANT}}],
            "at '/shards/0/azure': additional properties 'tenantId' not allowed",
        ),
    ],
)
def test_schema_rejects_bad_shards(shards: list[dict[str, Any]], message: str) -> None:
    result = helm("template", "t", str(CHART), *VALUES, *with_shards(*shards), check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        (
            [{**SHARD_A, "clusterResources": False}, SHARD_B],
            "shards: exactly one shard must have clusterResources: true (it reconciles the "
            "cluster-scoped MLRoles); found 0",
        ),
        (
            [SHARD_A, {**SHARD_B, "clusterResources": True}],
            "shards: exactly one shard must have clusterResources: true (it reconciles the "
            "cluster-scoped MLRoles); found 2 (a, b)",
        ),
        (
            [SHARD_A, {**SHARD_B, "name": "a"}],
            "shards[1] (a): another shard has this name",
        ),
        (
            [SHARD_A, {**SHARD_B, "namespaceSelector": SHARD_A["namespaceSelector"]}],
            'shards[1] (b): shard a has the same namespaceSelector "!aml-identity/shard"',
        ),
        ([{**SHARD_A, "replicas": 2}], "shards[0] (a): replicas 2 needs ha.enabled"),
        (
            [SHARD_A, {**SHARD_B, "azure": {"auth": {"mode": "certificate"}}}],
            "azure.auth.certificate.secretName is required (or "
            "shards[].azure.auth.certificate.secretName of shard b)",
        ),
    ],
)
def test_templates_refuse_what_the_schema_cannot_say_about_shards(
    shards: list[dict[str, Any]], message: str
) -> None:
    result = helm("template", "t", str(CHART), *VALUES, *with_shards(*shards), check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_key_vault_hosts_are_passed_as_json() -> None:
    config = only(rendered(), "ConfigMap", "t-aml-identity-operator")["data"]
    assert json.loads(config["AML_IDENTITY_KEY_VAULT_HOSTS"]) == ["*.vault.azure.net"]
    sovereign = rendered(
        "--set", "azure.endpoints.keyVaultHosts={*.vault.azure.cn,kv.internal:8443}"
    )
    config = only(sovereign, "ConfigMap", "t-aml-identity-operator")["data"]
    assert json.loads(config["AML_IDENTITY_KEY_VAULT_HOSTS"]) == [
        "*.vault.azure.cn",
        "kv.internal:8443",
    ]


def test_cluster_role_reads_policies_and_namespaces_without_admission_rights() -> None:
    role = only(rendered(), "ClusterRole")
    assert not [
        r for r in role["rules"] if "admissionregistration.k8s.io" in r.get("apiGroups", [])
    ]
    assert {
        "apiGroups": ["identity.aml.dev"],
        "resources": ["mlaccesspolicies"],
        "verbs": ["get", "list", "watch"],
    } in role["rules"]
    assert {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["get", "list", "watch"],
    } in role["rules"]
    # Policies are read only; Secrets are never listed or watched.
    for rule in role["rules"]:
        if "mlaccesspolicies" in rule.get("resources", []):
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
        if "secrets" in rule.get("resources", []):
            assert not {"list", "watch"} & set(rule["verbs"])


def test_aggregation_to_default_roles_is_opt_in() -> None:
    default = rendered()
    assert [d["metadata"]["name"] for d in default if d["kind"] == "ClusterRole"] == [
        "t-aml-identity-operator"
    ]
    assert "aggregate-to-" not in json.dumps(default)
    roles = {
        d["metadata"]["name"]: d
        for d in rendered("--set", "rbac.aggregateToDefaultRoles=true")
        if d["kind"] == "ClusterRole"
    }
    edit, view = roles["t-aml-identity-operator-edit"], roles["t-aml-identity-operator-view"]
    assert {k: v for k, v in edit["metadata"]["labels"].items() if "aggregate" in k} == {
        "rbac.authorization.k8s.io/aggregate-to-edit": "true",
        "rbac.authorization.k8s.io/aggregate-to-admin": "true",
    }
    assert {k: v for k, v in view["metadata"]["labels"].items() if "aggregate" in k} == {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"
    }
    for role in (edit, view):
        text = json.dumps(role)
        assert "mlaccesspolicies" not in text
        assert "mlroles" not in text
        for rule in role["rules"]:
            assert rule["apiGroups"] == ["identity.aml.dev"]
            assert set(rule["resources"]) == {"workloadidentities", "mlrolebindings"}
    assert {v for rule in view["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    assert {"create", "update", "patch", "delete"} <= {v for r in edit["rules"] for v in r["verbs"]}


def test_aggregated_roles_on_the_api_server(
    cluster: LocalCluster, crds_installed: None, namespace: str
) -> None:
    """Kubernetes' own edit/admin/view roles pick the rules up (the aggregation
    controller): namespace editors write identities and bindings, never policies or
    MLRoles; viewers only read."""
    roles = [
        d
        for d in rendered("--set", "rbac.aggregateToDefaultRoles=true")
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] != "t-aml-identity-operator"
    ]
    for role in roles:
        role["metadata"]["name"] = role["metadata"]["name"].replace("t-aml", "aggregation-test")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    try:
        for user, role_name in (("alice", "edit"), ("bob", "admin"), ("carol", "view")):
            cluster.kubectl(
                "create",
                "rolebinding",
                f"{user}-{role_name}",
                f"--clusterrole={role_name}",
                f"--user={user}",
                "-n",
                namespace,
            )

        def can(user: str, verb: str, resource: str, in_namespace: bool = True) -> bool:
            where = ["-n", namespace] if in_namespace else []
            result = cluster.kubectl(
                "auth", "can-i", verb, resource, "--as", user, *where, check=False
            )
            return result.stdout.strip() == "yes"

        wait_until(
            lambda: (
                can("alice", "create", "workloadidentities.identity.aml.dev")
                and can("carol", "list", "mlrolebindings.identity.aml.dev")
            ),
            what="the aggregated rules in edit and view",
        )
        for user in ("alice", "bob"):
            for verb in ("create", "update", "patch", "delete"):
                for plural in ("workloadidentities", "mlrolebindings"):
                    assert can(user, verb, f"{plural}.identity.aml.dev"), (user, verb, plural)
        for user in ("alice", "bob", "carol"):
            for plural in ("mlaccesspolicies", "mlroles"):
                for verb in ("create", "patch", "delete"):
                    assert not can(user, verb, f"{plural}.identity.aml.dev", False)
            status = cluster.kubectl(
                "auth",
                "can-i",
                "update",
                "workloadidentities.identity.aml.dev",
                "--subresource=status",
                "--as",
                user,
                "-n",
                namespace,
                check=False,
            )
            assert status.stdout.strip() == "no", "status is the operator's"
        assert can("carol", "get", "workloadidentities.identity.aml.dev")
        assert not can("carol", "create", "workloadidentities.identity.aml.dev")
    finally:
        for role in roles:
            cluster.kubectl("delete", "clusterrole", role["metadata"]["name"], "--ignore-not-found")


def test_webhook_on_the_api_server(own_cluster: LocalCluster) -> None:
    """Installed for real: the API server accepts the configuration (CEL included) and
    calls it; with the operator away, Fail refuses and Ignore admits; a deletion and its
    finalizer removal are never blocked; upgrades keep the certificate and the caBundle
    until expiry is near, then renew both and roll the Pods."""
    kube = own_cluster.kubeconfig

    def install(verb: str, *extra: str) -> None:
        helm(verb, "aml", str(CHART), "-n", "aml-system", *VALUES, *extra, kubeconfig=kube)

    def get(kind: str, name: str, namespace: str | None = "aml-system") -> dict[str, Any]:
        where = ["-n", namespace] if namespace else []
        return dict(json.loads(own_cluster.kubectl("get", kind, name, *where, "-o", "json").stdout))

    def state() -> tuple[set[str], dict[str, Any], dict[str, Any]]:
        vwc = get("validatingwebhookconfiguration", "aml-aml-identity-operator", None)
        bundles = {w["clientConfig"]["caBundle"] for w in vwc["webhooks"]}
        return (
            bundles,
            get("secret", "aml-aml-identity-operator-webhook-tls"),
            get("deployment", "aml-aml-identity-operator"),
        )

    install("install", "--create-namespace")
    wait_crds_established(own_cluster)
    bundles, secret, deployment = state()
    [bundle] = bundles
    assert bundle == secret["data"]["ca.crt"]
    host = "aml-aml-identity-operator-webhook.aml-system.svc"
    assert_serving_pair(bundle, secret, host)

    # An upgrade reads the Secret back: same certificate, same caBundle, no Pod roll.
    install("upgrade")
    again, secret_again, deployment_again = state()
    assert again == {bundle}
    assert secret_again["data"] == secret["data"]
    assert deployment_again["metadata"]["generation"] == deployment["metadata"]["generation"]

    # No operator Pod runs here (no kubelet): the webhook cannot be reached.
    own_cluster.kubectl("create", "namespace", "team")
    identity = {
        "apiVersion": "identity.aml.dev/v1alpha1",
        "kind": "WorkloadIdentity",
        "metadata": {"name": "one", "namespace": "team", "finalizers": ["example.com/hold"]},
        "spec": {"managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}},
    }
    refused = own_cluster.kubectl("create", "-f", "-", input=json.dumps(identity), check=False)
    assert refused.returncode != 0
    assert 'failed calling webhook "workloadidentities.identity.aml.dev"' in refused.stderr
    install("upgrade", "--set", "webhook.failurePolicy=Ignore", "--set", "webhook.timeoutSeconds=3")
    own_cluster.kubectl("create", "-f", "-", input=json.dumps(identity))
    install("upgrade")
    assert state()[0] == {bundle}, "changing the webhook's values keeps the certificate"
    refused = own_cluster.kubectl("label", "wid", "one", "-n", "team", "touched=yes", check=False)
    assert refused.returncode != 0
    assert "failed calling webhook" in refused.stderr
    # Deleting, and removing the last finalizer, never reach the webhook.
    own_cluster.kubectl("delete", "wid", "one", "-n", "team", "--wait=false")
    own_cluster.kubectl(
        "patch",
        "wid",
        "one",
        "-n",
        "team",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/metadata/finalizers"}]',
    )
    wait_until(
        lambda: own_cluster.kubectl("get", "wid", "one", "-n", "team", check=False).returncode != 0,
        what="the WorkloadIdentity to be gone",
    )

    # Within 30 days of expiry, an upgrade renews the certificate and rolls the Pods.
    soon = int(time.time()) + 86400
    own_cluster.kubectl(
        "annotate",
        "secret",
        "aml-aml-identity-operator-webhook-tls",
        "-n",
        "aml-system",
        "--overwrite",
        f"{NOT_AFTER}={soon}",
    )
    generation = state()[2]["metadata"]["generation"]
    install("upgrade")
    renewed, secret_renewed, deployment_renewed = state()
    [new_bundle] = renewed
    assert new_bundle != bundle
    assert new_bundle == secret_renewed["data"]["ca.crt"]
    assert_serving_pair(new_bundle, secret_renewed, host)
    assert int(secret_renewed["metadata"]["annotations"][NOT_AFTER]) > soon + 86400 * 3000
    assert deployment_renewed["metadata"]["generation"] == generation + 1
    template = deployment_renewed["spec"]["template"]["metadata"]["annotations"]
    assert (
        template["checksum/webhook-tls"]
        == hashlib.sha256(
            (secret_renewed["data"]["ca.crt"] + secret_renewed["data"]["tls.crt"]).encode()
        ).hexdigest()
    )

    helm("uninstall", "aml", "-n", "aml-system", kubeconfig=kube)
    assert (
        own_cluster.kubectl(
            "get", "validatingwebhookconfiguration", "aml-aml-identity-operator", check=False
        ).returncode
        != 0
    )


def test_watched_namespaces_get_secret_access_there_only() -> None:
    """operator.namespaces of plain names: service accounts and Secrets are granted by a
    Role in each, never cluster-wide; patterns cannot be, so they keep the ClusterRole."""

    def secret_rules(docs: list[dict[str, Any]]) -> dict[tuple[str, str | None], list[str]]:
        return {
            (d["kind"], d["metadata"].get("namespace")): [
                r for rule in d["rules"] for r in rule.get("resources", [])
            ]
            for d in docs
            if d["kind"] in ("ClusterRole", "Role")
            and d["metadata"]["name"] == "t-aml-identity-operator"
        }

    scoped = rendered("--set", "operator.namespaces={team-a,team-b}")
    rules = secret_rules(scoped)
    assert "secrets" not in rules[("ClusterRole", None)]
    assert "serviceaccounts" not in rules[("ClusterRole", None)]
    for namespace in ("team-a", "team-b"):
        assert set(rules[("Role", namespace)]) == {"secrets", "serviceaccounts"}
        [binding] = [
            d
            for d in scoped
            if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == namespace
        ]
        assert binding["roleRef"]["name"] == "t-aml-identity-operator"
    assert "secrets" in secret_rules(rendered())[("ClusterRole", None)]
    patterns = secret_rules(rendered("--set", "operator.namespaces={team-*}"))
    assert list(patterns) == [("ClusterRole", None)]
    assert "secrets" in patterns[("ClusterRole", None)]
