"""`make demo`: the operator on the local world, end to end.

Starts a real control plane, azlocal with its default seed, and the operator; applies
examples/demo/; waits for everything to be Ready; prints what now exists in Azure; then,
for each identity, exchanges a real service-account token (or, for the release script
outside the cluster, the certificate the operator issued) for an Azure token and tries
allowed and forbidden operations. Cleans up unless --keep.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.pipeline import policies
from azure.core.rest import HttpRequest
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    WorkloadIdentityCredential,
)
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "localcluster"))

from azlocal.server import AzLocal  # noqa: E402
from localcluster import LocalCluster  # noqa: E402

SUB = "00000000-0000-0000-0000-000000000001"
RG_ML = f"/subscriptions/{SUB}/resourceGroups/rg-ml"
ML = "Microsoft.MachineLearningServices"
WS = f"{RG_ML}/providers/{ML}/workspaces/ws-prod"
ENDPOINT = f"{WS}/onlineEndpoints/churn-endpoint"
ML_API = "2024-10-01"
SCOPE = "https://management.azure.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
NAMESPACE = "ml-team"
RESYNC = 10  # seconds; short so the demo can show a quiet resync
WRITES = ("PUT", "PATCH", "DELETE", "POST")
BOLD, GREEN, RED, DIM, RESET = (
    ("\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("",) * 5
)


@dataclass(frozen=True)
class Check:
    label: str
    method: str
    path: str
    body: dict[str, Any] | None
    allowed: bool


# (WorkloadIdentity, service account or None for a certificate from its Secret, grant, checks)
SCENARIOS: list[tuple[str, str | None, str, list[Check]]] = [
    (
        "training-pipeline",
        "trainer",
        "AzureML Data Scientist on workspace ws-prod",
        [
            Check(
                "submit a training job",
                "PUT",
                f"{WS}/jobs/demo-train",
                {"properties": {"jobType": "Command"}},
                True,
            ),
            Check("delete the workspace", "DELETE", WS, None, False),
        ],
    ),
    (
        "deployment-pipeline",
        "deployer",
        "custom role ML Model Deployer on resource group rg-ml",
        [
            Check(
                "read the model registry",
                "GET",
                f"{RG_ML}/providers/{ML}/registries/ml-registry",
                None,
                True,
            ),
            Check(
                "update online endpoint churn-endpoint",
                "PUT",
                ENDPOINT,
                {"location": "westeurope", "properties": {"authMode": "Key"}},
                True,
            ),
            Check(
                "submit a training job", "PUT", f"{WS}/jobs/demo-sneaky", {"properties": {}}, False
            ),
            Check(
                "create a compute cluster",
                "PUT",
                f"{WS}/computes/demo-gpu",
                {"properties": {}},
                False,
            ),
        ],
    ),
    (
        "endpoint-monitor",
        "monitor",
        "custom role ML Endpoint Monitor on workspace ws-prod",
        [
            Check("read online endpoint churn-endpoint", "GET", ENDPOINT, None, True),
            Check("list its deployments", "GET", f"{ENDPOINT}/deployments", None, True),
            Check(
                "update online endpoint churn-endpoint",
                "PUT",
                ENDPOINT,
                {"location": "westeurope", "properties": {"authMode": "Key"}},
                False,
            ),
        ],
    ),
    (
        "release-script",
        None,
        "certificate service principal; custom role ML Model Deployer on rg-ml",
        [
            Check(
                "update online endpoint fraud-endpoint",
                "PUT",
                f"{WS}/onlineEndpoints/fraud-endpoint",
                {"location": "westeurope", "properties": {"authMode": "Key"}},
                True,
            ),
            Check("delete the workspace", "DELETE", WS, None, False),
        ],
    ),
]


def say(text: str = "") -> None:
    print(text, flush=True)


def arm(az: AzLocal, credential: Any, scope: str = SCOPE) -> ARMPipelineClient[HttpRequest, Any]:
    """An azure-core pipeline to azlocal (ARM, or Graph with the Graph scope)."""
    return ARMPipelineClient(
        base_url=az.url,
        policies=[
            policies.RequestIdPolicy(),
            policies.HeadersPolicy(),
            policies.RetryPolicy(retry_total=0),
            ARMChallengeAuthenticationPolicy(credential, scope),
        ],
        connection_verify=str(az.ca_file),
    )


def call(
    client: ARMPipelineClient[HttpRequest, Any], method: str, path: str, api: str, body: Any = None
) -> Any:
    url = f"{path}?api-version={api}" if api else path  # Graph takes no api-version
    request = HttpRequest(method, client.format_url(url), json=body)
    return client.send_request(request)


def operator_env(cluster: LocalCluster, az: AzLocal) -> dict[str, str]:
    """The operator's environment (the report's orphans section reads Azure with it too)."""
    env = az.env()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AML_IDENTITY_"))},
        "KUBECONFIG": str(cluster.kubeconfig),
        "AZURE_TENANT_ID": env["AZURE_TENANT_ID"],
        "AZURE_SUBSCRIPTION_ID": env["AZURE_SUBSCRIPTION_ID"],
        "AZURE_CLIENT_ID": env["AZURE_CLIENT_ID"],
        "AZURE_CLIENT_SECRET": env["AZURE_CLIENT_SECRET"],
        "AZURE_AUTHORITY_HOST": env["AZURE_AUTHORITY_HOST"],
        "AML_IDENTITY_ARM_ENDPOINT": env["AZLOCAL_ARM_ENDPOINT"],
        "AML_IDENTITY_GRAPH_ENDPOINT": env["AZLOCAL_ARM_ENDPOINT"],
        "AML_IDENTITY_CA_BUNDLE": env["AZLOCAL_CA_BUNDLE"],
        "AML_IDENTITY_DISABLE_INSTANCE_DISCOVERY": "true",
        "AML_IDENTITY_CLUSTER_ID": "demo",
        "AML_IDENTITY_RESYNC_SECONDS": str(RESYNC),
        "AML_IDENTITY_RESYNC_JITTER": "0",
        "AML_IDENTITY_METRICS_PORT": "0",
        "AML_IDENTITY_LIVENESS_ENDPOINT": "",
        # azlocal's vaults live at https://127.0.0.1:<port>/.
        "AML_IDENTITY_KEY_VAULT_HOSTS": json.dumps(["127.0.0.1:*"]),
    }


def start_operator(
    cluster: LocalCluster, az: AzLocal, workdir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / "operator.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "aml_identity.cli", "run", "--log-format", "plain"],
        env={
            **operator_env(cluster, az),
            # The admission webhook, on loopback; the operator registers it itself.
            "AML_IDENTITY_WEBHOOK_PORT": str(free_port()),
            "AML_IDENTITY_WEBHOOK_ADDRESS": "127.0.0.1",
            "AML_IDENTITY_WEBHOOK_HOST": "127.0.0.1",
            "AML_IDENTITY_WEBHOOK_CONFIGURATION": "demo.webhooks.identity.aml.dev",
        },
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    return process, log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_webhook(cluster: LocalCluster, timeout: float) -> bool:
    """Until the API server calls the operator's webhook: a dry-run MLRole with actions
    * is refused by the MLRole guard."""
    probe = json.dumps(
        {
            "apiVersion": "identity.aml.dev/v1alpha1",
            "kind": "MLRole",
            "metadata": {"name": "webhook-probe"},
            "spec": {
                "roleName": "probe",
                "permissions": {"actions": ["*"]},
                "assignableScopes": [f"/subscriptions/{SUB}"],
            },
        }
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=probe, check=False)
        if "is privileged" in result.stderr:
            return True
        time.sleep(0.5)
    return False


def refused(cluster: LocalCluster, example: str, expected: str) -> bool:
    """A request that must be refused at kubectl apply, with a message saying `expected`."""
    result = cluster.kubectl("apply", "-f", str(REPO / "examples" / example), check=False)
    message = result.stderr.strip().split("denied the request: ")[-1]
    if result.returncode == 0 or expected not in message:
        say(f"   {RED}UNEXPECTED: examples/{example} was not refused{RESET}")
        return False
    say(f"   {RED}refused{RESET}: {message}")
    return True


def wait_ready(cluster: LocalCluster, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        listed = [
            obj
            for obj in json.loads(
                cluster.kubectl("get", "aml-identity", "-A", "-o", "json").stdout
            )["items"]
            if obj["kind"] != "MLAccessPolicy"  # nothing in Azure: no Ready condition
        ]
        rows, waiting = [], 0
        for obj in listed:
            ready = next(
                (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"),
                None,
            )
            done = bool(
                ready
                and ready["status"] == "True"
                and ready.get("observedGeneration") == obj["metadata"]["generation"]
            )
            waiting += not done
            state = ready["reason"] if ready else "Pending"
            rows.append(f"{obj['kind']}/{obj['metadata']['name']}={state}")
        line = f"  {len(listed) - waiting}/{len(listed)} Ready  " + "  ".join(rows)
        if line != last:
            say(DIM + line + RESET)
            last = line
        if listed and not waiting:
            return True
        time.sleep(1)
    return False


def administrator(az: AzLocal) -> ClientSecretCredential:
    """The platform team's administrator (Owner of the subscription)."""
    admin = az.principal("platform-admin")
    return ClientSecretCredential(
        az.tenant_id,
        admin.app_id,
        az.issued.secrets["platform-admin"],
        authority=az.url,
        disable_instance_discovery=True,
        connection_verify=str(az.ca_file),
    )


def grant_by_hand(cluster: LocalCluster, az: AzLocal, timeout: float) -> str | None:
    """Someone grants the training pipeline Reader on the workspace by hand, outside Git:
    the operator reports it as an undeclared grant. Returns the assignment's path."""
    wid = json.loads(
        cluster.kubectl("get", "wid", "training-pipeline", "-n", NAMESPACE, "-o", "json").stdout
    )
    path = f"{WS}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    body = {
        "properties": {
            "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
            "roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "principalId": wid["status"]["principalId"],
            "principalType": "ServicePrincipal",
        }
    }
    made = call(arm(az, administrator(az)), "PUT", path, "2022-04-01", body)
    if made.status_code not in (200, 201):
        say(f"{RED}the administrator could not grant Reader: {made.text()}{RESET}")
        return None
    say("   an administrator grants training-pipeline Reader on ws-prod by hand (not in Git)")
    jsonpath = '{.status.conditions[?(@.type=="UndeclaredGrants")].status}'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = cluster.kubectl(
            "get", "wid", "training-pipeline", "-n", NAMESPACE, "-o", f"jsonpath={jsonpath}"
        ).stdout
        if seen == "True":
            message = cluster.kubectl(
                "get", "wid", "training-pipeline", "-n", NAMESPACE, "-o",
                'jsonpath={.status.conditions[?(@.type=="UndeclaredGrants")].message}',
            ).stdout  # fmt: skip
            say("   the operator reports it: UndeclaredGrants=True on training-pipeline:")
            say(f"   {message}")
            return path
        time.sleep(1)
    say(f"{RED}the undeclared grant was not reported within {timeout:.0f}s{RESET}")
    return None


def print_azure(az: AzLocal) -> None:
    credential = administrator(az)
    client = arm(az, credential)
    say(f"\n{BOLD}In Azure now{RESET}")
    identities_rg = f"/subscriptions/{SUB}/resourceGroups/rg-ml-identities"
    group = f"{identities_rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    identities = call(client, "GET", group, "2024-11-30").json()["value"]
    principals = {}
    for identity in identities:
        fics = call(
            client, "GET", f"{identity['id']}/federatedIdentityCredentials", "2024-11-30"
        ).json()["value"]
        principals[identity["properties"]["principalId"]] = identity["name"]
        say(f"  managed identity {identity['name']}  client {identity['properties']['clientId']}")
        for fic in fics:
            say(
                f"    trusts {fic['properties']['subject']}  (issuer {fic['properties']['issuer']})"
            )
    graph = arm(az, credential, GRAPH_SCOPE)
    for app in call(graph, "GET", "/v1.0/applications", "").json()["value"]:
        if not any(t.startswith("aml-identity.managed-by:") for t in app["tags"]):
            continue
        principal = call(
            graph, "GET", f"/v1.0/servicePrincipals(appId='{app['appId']}')", ""
        ).json()
        principals[principal["id"]] = app["displayName"]
        for key in app["keyCredentials"]:
            say(
                f"  application {app['displayName']}  client {app['appId']}  certificate "
                f"{key['keyId'][:8]}... valid until {key['endDateTime']}"
            )
    roles = call(
        client,
        "GET",
        f"{RG_ML}/providers/Microsoft.Authorization/roleDefinitions",
        "2022-04-01",
    ).json()["value"]
    names = {r["name"]: r["properties"]["roleName"] for r in roles}
    for role in roles:
        if role["properties"]["type"] == "CustomRole":
            say(
                f"  custom role '{role['properties']['roleName']}': "
                + ", ".join(role["properties"]["permissions"][0]["actions"])
            )
    assignments = call(
        client,
        "GET",
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments",
        "2022-04-01",
    ).json()["value"]
    for a in assignments:
        principal = a["properties"]["principalId"]
        if principal in principals:
            role = names.get(a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1], "?")
            say(
                f"  role assignment: {principals[principal]} has '{role}' "
                f"at {a['properties']['scope']}"
            )


def prove_access(cluster: LocalCluster, az: AzLocal, workdir: Path) -> int:
    failures = 0
    say(f"\n{BOLD}Access, with real service-account tokens exchanged for Azure tokens{RESET}")
    for identity, account, grant, checks in SCENARIOS:
        status = json.loads(
            cluster.kubectl("get", "wid", identity, "-n", NAMESPACE, "-o", "json").stdout
        )["status"]
        credential: Any
        if account is None:
            # As a CI agent outside the cluster would: the certificate copied from the
            # Secret the operator wrote (client-certificate.pem holds cert and key).
            secret = json.loads(
                cluster.kubectl(
                    "get", "secret", f"{identity}-cert", "-n", NAMESPACE, "-o", "json"
                ).stdout
            )
            pem = workdir / f"{identity}.pem"
            pem.write_bytes(base64.b64decode(secret["data"]["client-certificate.pem"]))
            pem.chmod(0o600)
            credential = CertificateCredential(
                az.tenant_id,
                status["clientId"],
                str(pem),
                authority=az.url,
                disable_instance_discovery=True,
                connection_verify=str(az.ca_file),
            )
            who = f"certificate {status['credential']['thumbprint'][:12]}... from Secret"
        else:
            token = cluster.kubectl(
                "create", "token", account, "-n", NAMESPACE, "--audience=api://AzureADTokenExchange"
            ).stdout.strip()
            token_file = workdir / f"{account}.jwt"
            token_file.write_text(token)
            credential = WorkloadIdentityCredential(
                tenant_id=az.tenant_id,
                client_id=status["clientId"],
                token_file_path=str(token_file),
                authority=az.url,
                connection_verify=str(az.ca_file),
            )
            who = f"service account {NAMESPACE}/{account}"
        client = arm(az, credential)
        say(f"\n  {BOLD}{identity}{RESET} ({who}; {grant})")
        for check in checks:
            response = call(client, check.method, check.path, ML_API, check.body)
            allowed = response.status_code < 300
            code = "" if allowed else response.json().get("error", {}).get("code", "")
            ok = allowed == check.allowed
            failures += not ok
            verdict = f"{GREEN}as expected{RESET}" if ok else f"{RED}UNEXPECTED{RESET}"
            expect = "may" if check.allowed else "may not"
            say(f"    {expect:7} {check.label:40} -> {response.status_code} {code:22} {verdict}")
    return failures


def report_costs(
    az: AzLocal, converge: list[dict[str, Any]], resources: int, operator: subprocess.Popen[bytes]
) -> None:
    """Azure requests to converge, and across one resync at rest (azlocal's request log)."""
    writes = sum(r["method"] in WRITES for r in converge)
    say(
        f"\n{BOLD}Cost{RESET}: converging {resources} resources took {len(converge)} Azure "
        f"requests ({writes} writes, {len(converge) / resources:.1f} per resource)"
    )
    az.admin("DELETE", "requests")
    time.sleep(RESYNC + 3)  # a demo pacing itself to show one idle resync, not a test wait
    at_rest = [r for r in az.admin("GET", "requests") if r["operation"] != "oauth2/token"]
    rest_writes = sum(r["method"] in WRITES for r in at_rest)
    graph = sum(r["path"].startswith("/v1.0/") for r in at_rest)
    say(
        f"      one resync at rest: {len(at_rest)} reads "
        f"({len(at_rest) / resources:.1f} per resource; {graph} of them Microsoft Graph), "
        f"{rest_writes} writes"
    )
    status = Path(f"/proc/{operator.pid}/status").read_text()
    peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
    say(f"      operator peak memory (VmHWM): {int(peak) / 1024:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for Ready")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aml-demo-"))
    say(
        f"{BOLD}1. A real Kubernetes control plane{RESET} "
        "(etcd, kube-apiserver, kube-controller-manager)"
    )
    cluster = LocalCluster(workdir / "cluster")
    cluster.start()
    operator: subprocess.Popen[bytes] | None = None
    az: AzLocal | None = None
    try:
        say(f"   ready at {cluster.server} in {cluster.started_in:.1f}s")
        say(f"{BOLD}2. azlocal{RESET}, a local Azure with one ML team's subscription")
        az = AzLocal(workdir / "azlocal", trust_ca=[cluster.ca_file]).start()
        say(
            f"   serving {az.url}; the operator holds only Managed Identity Contributor on "
            "rg-ml-identities and RBAC Administrator on rg-ml"
        )
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "crd",
            "-l",
            "app.kubernetes.io/name=aml-identity-operator",
        )
        say(f"{BOLD}3. The operator{RESET} (aml-identity run)")
        operator, log = start_operator(cluster, az, workdir)
        if not wait_for_webhook(cluster, 60):
            say(f"{RED}the operator's admission webhook did not answer; log: {log}{RESET}")
            return 1
        say(f"{BOLD}4. kubectl apply -f examples/demo/{RESET} (the ml-team MLAccessPolicy first)")
        for line in cluster.kubectl(
            "apply", "-f", str(REPO / "examples" / "demo")
        ).stdout.splitlines():
            say(f"   {line}")
        escalation = "escalations/owner-at-subscription.yaml"
        say(f"   and an escalation, kubectl apply -f examples/{escalation}:")
        if not refused(cluster, escalation, "may not bind Owner"):
            return 1
        typo = "mistakes/misspelt-action.yaml"
        say(f"   and a typo, kubectl apply -f examples/{typo}:")
        if not refused(cluster, typo, "did you mean"):
            return 1
        if not wait_ready(cluster, args.timeout):
            say(f"{RED}not everything became Ready; the operator's log is {log}{RESET}")
            return 1
        say(cluster.kubectl("get", "wid,mlrb,mlroles", "-A").stdout)
        converge = [r for r in az.admin("GET", "requests") if r["operation"] != "oauth2/token"]
        resources = len(
            [
                obj
                for obj in json.loads(
                    cluster.kubectl("get", "aml-identity", "-A", "-o", "json").stdout
                )["items"]
                if obj["kind"] != "MLAccessPolicy"
            ]
        )
        az.admin("DELETE", "requests")
        print_azure(az)
        failures = prove_access(cluster, az, workdir)
        if failures:
            say(f"\n{RED}{failures} check(s) did not behave as expected{RESET}")
            return 1
        say(
            f"\n{GREEN}Every allowed operation succeeded and every forbidden one was "
            f"refused with 403.{RESET}"
        )
        report_costs(az, converge, resources, operator)
        say(f"\n{BOLD}5. The access report{RESET} (kubectl aml-identity report): who can do what")
        by_hand = grant_by_hand(cluster, az, 4 * RESYNC)
        if by_hand is None:
            return 1
        access = subprocess.run(
            [sys.executable, "-m", "aml_identity.cli", "report"],
            env=operator_env(cluster, az),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for line in (access.stdout or access.stderr).splitlines():
            say(f"   {line}")
        if access.returncode != 0:
            return 1
        if args.keep:
            say(
                f"\nStill running. export KUBECONFIG={cluster.kubeconfig}; azlocal at {az.url} "
                f"(CA {az.ca_file}); operator log {log}. Press Ctrl-C to stop and clean up."
            )
            # Blocked first: sigwait takes only blocked signals, and an unblocked
            # SIGTERM would end the demo at once, leaving the operator and world running.
            stop_signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            signal.sigwait(stop_signals)
        say(
            f"\n{BOLD}6. Clean up{RESET}: deleting the resources removes what the operator "
            "created in Azure (the administrator removes the grant made by hand)"
        )
        call(arm(az, administrator(az)), "DELETE", by_hand, "2022-04-01")
        cluster.kubectl(
            "delete", "-f", str(REPO / "examples" / "demo" / "30-bindings.yaml"), "--wait=true"
        )
        cluster.kubectl(
            "delete", "-f", str(REPO / "examples" / "demo" / "20-identities.yaml"), "--wait=true"
        )
        cluster.kubectl(
            "delete", "-f", str(REPO / "examples" / "demo" / "10-roles.yaml"), "--wait=true"
        )
        cluster.kubectl("delete", "-f", str(REPO / "examples" / "demo" / "05-policy.yaml"))
        left = [
            p
            for p in az.ctx.store.principals.values()
            if p.managed_identity_of and "userAssignedIdentities" in p.managed_identity_of
        ]
        roles = [
            d
            for d in az.ctx.store.role_definitions.values()
            if "aml-identity-operator" in d.description
        ]
        ids = {p.object_id for p in left}
        grants = [
            a for a in az.ctx.store.role_assignments.values() if a.created_by != "azlocal-seed"
        ]
        apps = [
            a
            for a in az.ctx.store.applications.values()
            if any(t.startswith("aml-identity.managed-by:") for t in a.tags)
        ]
        say(
            f"   left in Azure: {len(left)} managed identities, {len(apps)} applications, "
            f"{len(roles)} custom roles, {len(grants)} role assignments"
        )
        return 0 if not (left or apps or roles or grants or ids) else 1
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(30)
        if az is not None:
            az.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
