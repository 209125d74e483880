"""The install path as users run it, on a real node: `helm install` with the image built
here, the operator Pod Ready under its probes and hardening, signing in to azlocal with
its own projected service-account token, and a workload Pod that signs in the same way
(no secret anywhere) and gets exactly the access its MLRoleBinding grants."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.graph_service_client import GraphServiceClient

from azlocal.server import AzLocal
from localcluster import LocalCluster
from node import cgroup_hierarchies
from support.graph import as_principal
from support.helm import CHART, helm
from support.operator import apply, apply_json, free_port, get, wait_ready
from support.policies import BASELINE_LABEL, baseline_policy
from support.poll import wait_until
from support.world import RG_IDENTITIES, WORKSPACE

NODE = "127.0.0.1"  # the first node, where the webhook is called (hostNetwork.webhookHost)
RELEASE = "aml"
SYSTEM = "aml-system"
DEPLOYMENT = f"{RELEASE}-aml-identity-operator"
OPERATOR_ACCOUNT = DEPLOYMENT
IMAGE = "ghcr.io/aml-identity-operator/aml-identity-operator"
APPS = "ml-apps"
EXCHANGE = "api://AzureADTokenExchange"
WS_SCOPE = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}}  # WORKSPACE
# The Pod Security Standard "restricted" finds only what host networking brings.
HOST_NETWORK_ONLY = {"host namespaces"}


def kubectl_json(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def trust_operator_service_account(az: AzLocal, cluster: LocalCluster) -> str:
    """Federate the operator's seeded application with its ServiceAccount in this
    cluster, as its owner would in Entra; returns the application's client id."""
    client_id = az.principal("aml-identity-operator").app_id

    async def work(graph: GraphServiceClient) -> None:
        app = await graph.applications_with_app_id(client_id).get()
        assert app is not None
        assert app.id is not None
        await graph.applications.by_application_id(app.id).federated_identity_credentials.post(
            FederatedIdentityCredential(
                name="aml-node-tests",
                issuer=cluster.issuer,
                subject=f"system:serviceaccount:{SYSTEM}:{OPERATOR_ACCOUNT}",
                audiences=[EXCHANGE],
            )
        )

    as_principal(az, "platform-admin", work)
    return str(client_id)


def namespace(cluster: LocalCluster, name: str, **labels: str) -> None:
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, *[f"{k}={v}" for k, v in labels.items()])


def ca_config_map(cluster: LocalCluster, az: AzLocal, ns: str) -> None:
    cluster.kubectl(
        "create", "configmap", "azlocal-ca", "-n", ns, f"--from-file=ca.crt={az.ca_file}"
    )


def chart_values(cluster: LocalCluster, az: AzLocal, client_id: str) -> list[str]:
    values = {
        "azure.tenantId": az.tenant_id,
        "azure.subscriptionId": az.default_subscription,
        "azure.auth.clientId": client_id,
        "azure.auth.injectWorkloadIdentity": "true",
        "azure.endpoints.arm": az.url,
        "azure.endpoints.authorityHost": az.url,
        "azure.endpoints.graph": az.url,
        "azure.endpoints.disableInstanceDiscovery": "true",
        "azure.endpoints.caBundle.configMapName": "azlocal-ca",
        "operator.clusterId": "node-tests",
        "operator.resyncSeconds": "30",
        "image.pullPolicy": "Never",
        # Test only: the node has no Pod network (see the chart's hostNetwork values).
        "hostNetwork.enabled": "true",
        "hostNetwork.apiServer": f"127.0.0.1:{cluster.api_port}",
        "hostNetwork.webhookHost": NODE,
        # The host's ports: free ones, not the defaults.
        "metrics.port": str(free_port()),
        "livenessProbe.port": str(free_port()),
        "webhook.port": str(free_port()),
    }
    args = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    # azlocal's vaults listen on https://127.0.0.1:<port>/.
    return [*args, "--set-json", 'azure.endpoints.keyVaultHosts=["127.0.0.1:*"]']


def operator_pods(cluster: LocalCluster) -> list[dict[str, Any]]:
    pods = kubectl_json(
        cluster, "get", "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/name=aml-identity-operator"
    )["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_pod(cluster: LocalCluster, timeout: float = 180, other_than: str = "") -> dict[str, Any]:
    """The operator's one Pod once Ready (its readiness probe passed), and not `other_than`."""

    def probe() -> dict[str, Any] | None:
        pods = [p for p in operator_pods(cluster) if p["metadata"]["uid"] != other_than]
        return next((pod for pod in pods if is_ready(pod)), None)

    try:
        return wait_until(probe, timeout=timeout, interval=1, what="the operator Pod to be Ready")
    except AssertionError:
        print(cluster.kubectl("describe", "pods", "-n", SYSTEM, check=False).stdout[-6000:])
        print(cluster.kubectl("logs", "-n", SYSTEM, f"deploy/{DEPLOYMENT}", check=False).stdout)
        raise


def container_process(pod: dict[str, Any]) -> int:
    """The host pid of the Pod's operator process (found through its cgroup)."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("//")[-1]
    [pids] = [
        (h / "cgroup.procs").read_text().split()
        for hierarchy in cgroup_hierarchies()
        if hierarchy.name == "pids"
        for h in hierarchy.rglob(container_id)
    ]
    return int(pids[0])


def process_facts(pid: int) -> dict[str, str]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    root = next(
        line.split()
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        if line.split()[4] == "/"
    )
    return {
        "Uid": status["Uid"].split()[0],
        "Gid": status["Gid"].split()[0],
        "CapEff": status["CapEff"].strip(),
        "NoNewPrivs": status["NoNewPrivs"].strip(),
        "Seccomp": status["Seccomp"].strip(),
        "root": root[5].split(",")[0],  # the mount's own options: ro or rw
    }


def memory_mib(pod: dict[str, Any]) -> dict[str, float]:
    """The Pod's memory (its cgroup v1 memory controller): in use now (with page cache),
    at its peak, and resident (rss)."""
    memory = next(h for h in cgroup_hierarchies() if h.name == "memory")
    [group] = list(memory.rglob(f"pod{pod['metadata']['uid']}"))
    stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
    return {
        "now": int((group / "memory.usage_in_bytes").read_text()) / 2**20,
        "peak": int((group / "memory.max_usage_in_bytes").read_text()) / 2**20,
        "rss": int(stat["total_rss"]) / 2**20,
    }


WORKLOAD = textwrap.dedent(
    """
    import sys
    from azure.core.pipeline import policies
    from azure.core.rest import HttpRequest
    from azure.identity import WorkloadIdentityCredential
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

    arm, workspace = sys.argv[1:]
    # Configured only by what Azure's workload-identity webhook injects (and, for this
    # world's private CA, REQUESTS_CA_BUNDLE).
    credential = WorkloadIdentityCredential(disable_instance_discovery=True)
    client = ARMPipelineClient(
        base_url=arm,
        policies=[
            policies.RetryPolicy(retry_total=0),
            ARMChallengeAuthenticationPolicy(credential, "https://management.azure.com/.default"),
        ],
    )

    def send(method, path, body=None):
        url = f"{arm}{path}?api-version=2024-10-01"
        return client.send_request(HttpRequest(method, url, json=body)).status_code

    read = send("GET", workspace)
    endpoint = {"location": "westeurope", "properties": {"authMode": "Key"}}
    write = send("PUT", f"{workspace}/onlineEndpoints/from-a-pod", endpoint)
    print(f"read {read} write {write}")
    sys.exit(0 if (read, write) == (200, 403) else 1)
    """
)


def workload_pod(cluster: LocalCluster, az: AzLocal, account: str) -> dict[str, Any]:
    """A Pod as Azure's workload-identity webhook leaves it: the projected token, and
    AZURE_CLIENT_ID from the ServiceAccount's annotation (which the operator wrote)."""
    annotations = kubectl_json(cluster, "get", "sa", account, "-n", APPS)["metadata"]["annotations"]
    client_id = annotations["azure.workload.identity/client-id"]
    tokens = "/var/run/secrets/azure/tokens"
    token_file = f"{tokens}/azure-identity-token"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "workload", "namespace": APPS},
        "spec": {
            "serviceAccountName": account,
            "restartPolicy": "Never",
            "hostNetwork": True,  # the test node has no Pod network
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "workload",
                    "image": f"{IMAGE}:{chart_version()}",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", WORKLOAD, az.url, WORKSPACE],
                    "env": [
                        {"name": "AZURE_CLIENT_ID", "value": client_id},
                        {"name": "AZURE_TENANT_ID", "value": az.tenant_id},
                        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": token_file},
                        {"name": "AZURE_AUTHORITY_HOST", "value": az.url},
                        {"name": "REQUESTS_CA_BUNDLE", "value": "/etc/azlocal/ca.crt"},
                    ],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "azure-identity-token", "mountPath": tokens, "readOnly": True},
                        {"name": "ca", "mountPath": "/etc/azlocal", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "azure-identity-token",
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "path": "azure-identity-token",
                                    "audience": EXCHANGE,
                                    "expirationSeconds": 3600,
                                }
                            }
                        ]
                    },
                },
                {"name": "ca", "configMap": {"name": "azlocal-ca"}},
            ],
        },
    }  # fmt: skip


def chart_version() -> str:
    chart = (CHART / "Chart.yaml").read_text()
    return re.search(r'^appVersion: "?([^"\n]+)"?$', chart, re.M).group(1)  # type: ignore[union-attr]


def restricted_violations(warnings: str) -> set[str]:
    """The checks PodSecurity warnings name, e.g. {"host namespaces"} from `would violate
    PodSecurity "restricted:latest": host namespaces (hostNetwork=true)` (quoted as Helm
    logs it, or not)."""
    found: set[str] = set()
    for match in re.finditer(r'PodSecurity \\?"restricted:latest\\?": (.*)', warnings):
        found |= set(re.findall(r"(?:^|\), )([A-Za-z][\w ]*?) \(", match.group(1)))
    return found


@pytest.fixture(scope="module")
def values(node_cluster: LocalCluster, node_azlocal: AzLocal) -> list[str]:
    """What an administrator sets up before `helm install`, and the chart values."""
    cluster, az = node_cluster, node_azlocal
    for node in cluster.nodes:
        print(f"node {node.name} Ready in {node.started_in:.1f}s")
    az.admin("POST", "trusted-cas", text=cluster.ca_file.read_text())
    client_id = trust_operator_service_account(az, cluster)
    # Host networking is what only this test node needs: the namespace admits it, and
    # warns (and audits) against "restricted", which the Pod meets in everything else.
    namespace(
        cluster, SYSTEM,
        **{
            "pod-security.kubernetes.io/enforce": "privileged",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        },
    )  # fmt: skip
    ca_config_map(cluster, az, SYSTEM)
    return chart_values(cluster, az, client_id)


def test_operator_pod_and_a_workload_pod_on_a_real_node(
    node_cluster: LocalCluster, node_azlocal: AzLocal, values: list[str]
) -> None:
    cluster, az = node_cluster, node_azlocal
    # The webhook is called at the first node's address: run there.
    first_node = ["--set-json", f'nodeSelector={{"kubernetes.io/hostname":"{NODE}"}}']
    installed = helm(
        "install", RELEASE, str(CHART), "-n", SYSTEM, *values, *first_node,
        kubeconfig=cluster.kubeconfig,
    )  # fmt: skip
    assert restricted_violations(installed.stderr) == HOST_NETWORK_ONLY, installed.stderr
    pod = ready_pod(cluster)
    apply_json(cluster, baseline_policy(az))  # the chart installed the CRDs

    # The hardening, seen from the host: the process the kubelet started.
    facts = process_facts(container_process(pod))
    assert facts == {
        "Uid": "65532",
        "Gid": "65532",
        "CapEff": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",  # filtered: RuntimeDefault
        "root": "ro",
    }

    # Declared in a namespace of workloads, reconciled by the operator in its Pod.
    labels = {BASELINE_LABEL: "true", "pod-security.kubernetes.io/enforce": "privileged"}
    namespace(cluster, APPS, **labels)
    ca_config_map(cluster, az, APPS)
    apply(
        cluster,
        "WorkloadIdentity",
        "trainer",
        {
            "managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"},
            "serviceAccounts": [{"name": "trainer", "create": True}],
        },
        APPS,
    )
    apply(
        cluster,
        "MLRoleBinding",
        "trainer-reads-workspace",
        {
            "role": {"builtIn": "Reader"},
            "subjects": [{"workloadIdentity": "trainer"}],
            "scope": WS_SCOPE,
        },
        APPS,
    )
    wait_ready(cluster, "WorkloadIdentity", "trainer", APPS, timeout=120)
    wait_ready(cluster, "MLRoleBinding", "trainer-reads-workspace", APPS, timeout=120)

    # The operator signed in with its projected token only: no secret was ever used.
    operator = az.principal("aml-identity-operator").object_id
    sign_ins = {
        r["clientAuth"]
        for r in az.admin("GET", "requests")
        if r["operation"] == "oauth2/token" and r["status"] == 200 and r["principal"] == operator
    }
    assert sign_ins == {"federated"}

    # The admission webhook runs in the Pod and is called by the API server.
    refused = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False,
        input=json.dumps({
            "apiVersion": "identity.aml.dev/v1alpha1", "kind": "MLRoleBinding",
            "metadata": {"name": "owner", "namespace": APPS},
            "spec": {"role": {"builtIn": "Owner"}, "subjects": [{"workloadIdentity": "trainer"}],
                     "scope": WS_SCOPE},
        }),
    )  # fmt: skip
    assert refused.returncode != 0
    assert "admission webhook" in refused.stderr, refused.stderr

    # A workload Pod signs in with its own projected token and gets what its binding says.
    apply_json(cluster, workload_pod(cluster, az, "trainer"))

    def finished() -> str | None:
        phase = (get(cluster, "pod", "workload", APPS) or {}).get("status", {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(finished, timeout=120, interval=1, what="the workload Pod to finish")
    logs = cluster.kubectl("logs", "workload", "-n", APPS, check=False).stdout
    assert (phase, logs.strip()) == ("Succeeded", "read 200 write 403")

    # The probes kept passing: never restarted. The Pod's memory, for the record.
    pod = ready_pod(cluster)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    memory = memory_mib(pod)
    print("operator Pod memory (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))

    # A changed value rolls the Pod; the new one signs in and becomes Ready in turn.
    helm(
        "upgrade", RELEASE, str(CHART), "-n", SYSTEM, *values, *first_node,
        "--set", "operator.resyncSeconds=45", kubeconfig=cluster.kubeconfig,
    )  # fmt: skip
    rolled = ready_pod(cluster, other_than=pod["metadata"]["uid"])
    only_rolled = [rolled["metadata"]["uid"]]
    wait_until(
        lambda: [p["metadata"]["uid"] for p in operator_pods(cluster)] == only_rolled,
        timeout=120,
        interval=1,
        what="the old operator Pod to be gone",
    )
    config = kubectl_json(cluster, "get", "configmap", DEPLOYMENT, "-n", SYSTEM)
    assert config["data"]["AML_IDENTITY_RESYNC_SECONDS"] == "45"

    # Uninstalling removes the operator, and keeps the CRDs (and so the resources).
    helm("uninstall", RELEASE, "-n", SYSTEM, kubeconfig=cluster.kubeconfig)
    wait_until(lambda: not operator_pods(cluster), timeout=120, interval=1, what="no operator Pod")
    assert get(cluster, "crd", "workloadidentities.identity.aml.dev") is not None
    assert get(cluster, "WorkloadIdentity", "trainer", APPS) is not None


def live_peers(cluster: LocalCluster) -> dict[str, int]:
    """The live replicas in kopf's peering object, by Pod name (the chart sets POD_ID),
    with their priorities: the highest works, the others wait."""
    peering = kubectl_json(cluster, "get", "clusterkopfpeering", "aml-identity-operator")
    now = datetime.now(UTC)
    live = {}
    for peer, info in (peering.get("status") or {}).items():
        seen = datetime.fromisoformat(info["lastseen"])
        if seen + timedelta(seconds=int(info["lifetime"])) > now:
            live[peer] = int(info["priority"])
    return live


def identity_reconciles(pod: dict[str, Any], values: list[str]) -> float:
    """How many WorkloadIdentity reconciles a replica has run (its metrics, on its node's
    address): a waiting replica runs none."""
    port = next(v.split("=", 1)[1] for v in values if v.startswith("metrics.port="))
    url = f"http://{pod['status']['podIP']}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('aml_identity_reconciles_total{kind="WorkloadIdentity"')
    )


HA = "ml-ha"


def test_high_availability_hands_over_when_the_active_pod_dies(
    node_cluster: LocalCluster, node_azlocal: AzLocal, values: list[str]
) -> None:
    """Two replicas (one per node: they share the host's ports), one active through kopf
    peering; killing the active Pod, on a cordoned node so that no replacement competes,
    hands the work to the standby."""
    cluster = node_cluster
    helm(
        "install", RELEASE, str(CHART), "-n", SYSTEM, *values,
        "--set", "ha.enabled=true", "--set", "ha.replicas=2",
        "--set", "ha.peerLifetimeSeconds=10",
        # The webhook is called at one node's address only; its Pod may be the one
        # killed here, and applying must not depend on it.
        "--set", "webhook.failurePolicy=Ignore",
        kubeconfig=cluster.kubeconfig,
    )  # fmt: skip
    wait_until(
        lambda: len([p for p in operator_pods(cluster) if is_ready(p)]) == 2,
        timeout=180, interval=1, what="two Ready operator Pods",
    )  # fmt: skip
    pods = {p["metadata"]["name"]: p for p in operator_pods(cluster)}
    assert len({p["spec"]["nodeName"] for p in pods.values()}) == 2, "one replica per node"

    def both_in_peering() -> dict[str, int] | None:
        live = live_peers(cluster)
        return live if set(live) == set(pods) else None

    priorities = wait_until(both_in_peering, timeout=90, interval=1, what="both replicas peering")
    active = max(priorities, key=lambda name: priorities[name])
    [standby] = [name for name in pods if name != active]
    apply_json(cluster, baseline_policy(node_azlocal))
    namespace(cluster, HA, **{BASELINE_LABEL: "true"})
    mi = {"managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}}
    # Once both are in the peering object, one replica works and the other waits
    # (kopf's handlers and the resync loop alike).
    before = {name: identity_reconciles(pod, values) for name, pod in pods.items()}
    apply(cluster, "WorkloadIdentity", "ha-one", mi, HA)
    wait_ready(cluster, "WorkloadIdentity", "ha-one", HA, timeout=120)
    assert identity_reconciles(pods[active], values) > before[active]
    assert identity_reconciles(pods[standby], values) == before[standby]

    # The active Pod dies without a word (SIGKILL), and its node takes no replacement.
    cluster.kubectl("cordon", pods[active]["spec"]["nodeName"])
    os.kill(container_process(pods[active]), signal.SIGKILL)
    cluster.kubectl("delete", "pod", active, "-n", SYSTEM, "--grace-period=0", "--force")
    wait_until(
        lambda: set(live_peers(cluster)) == {standby},
        timeout=90, interval=1, what="the active replica's presence to lapse",
    )  # fmt: skip
    apply(cluster, "WorkloadIdentity", "ha-two", mi, HA)
    wait_ready(cluster, "WorkloadIdentity", "ha-two", HA, timeout=120)
    # Reconciled while the standby was the only operator running (the replacement waits
    # for a node): the standby took over.
    assert [p["metadata"]["name"] for p in operator_pods(cluster) if is_ready(p)] == [standby]
    assert identity_reconciles(pods[standby], values) > before[standby]

    # The node back in service: the replacement joins, as the standby or the active.
    cluster.kubectl("uncordon", pods[active]["spec"]["nodeName"])
    wait_until(
        lambda: len([p for p in operator_pods(cluster) if is_ready(p)]) == 2,
        timeout=180, interval=1, what="the replacement Pod to be Ready",
    )  # fmt: skip
    cluster.kubectl("delete", "wid", "--all", "-n", HA)
    helm("uninstall", RELEASE, "-n", SYSTEM, kubeconfig=cluster.kubeconfig)
