"""The operator as users run it: `aml-identity run` in its own process, configured only
by environment (kubeconfig, Azure endpoints, CA bundle)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from azlocal.server import AzLocal
from localcluster import LocalCluster

# Namespaces with this label belong to a test's own operator (a shard), not the session's.
SOLO_LABEL = "aml-tests/solo"
SESSION_SHARD = f"!{SOLO_LABEL}"


def wait_crds_established(cluster: LocalCluster, timeout: str | None = None) -> None:
    """Until the operator's CRDs are Established (`timeout`: kubectl's, e.g. "60s")."""
    limit = [f"--timeout={timeout}"] if timeout else []
    cluster.kubectl(
        "wait", "--for=condition=Established", *limit, "crd", "-l",
        "app.kubernetes.io/name=aml-identity-operator",
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    def __init__(
        self,
        cluster: LocalCluster,
        azlocal: AzLocal,
        workdir: Path,
        *,
        resync: float = 600,
        kubeconfig: Path | None = None,
        webhook: bool = False,
        shard: str = "",
        shard_selector: str = SESSION_SHARD,
    ) -> None:
        """With `webhook`, the process also serves the admission webhook and keeps a
        ValidatingWebhookConfiguration (one per process) pointing at itself. With
        `shard`, it owns only the namespaces `shard_selector` selects and no MLRoles
        (the session's operator owns every namespace but the solo ones)."""
        self.workdir = workdir
        self.log_path = workdir / "operator.log"
        self.metrics_port = free_port()
        self.liveness_url = f"http://127.0.0.1:{free_port()}/healthz"
        env = azlocal.env()
        self.env = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AML_IDENTITY_"))
            },
            "KUBECONFIG": str(kubeconfig or cluster.kubeconfig),
            "AZURE_TENANT_ID": env["AZURE_TENANT_ID"],
            "AZURE_CLIENT_ID": env["AZURE_CLIENT_ID"],
            "AZURE_CLIENT_SECRET": env["AZURE_CLIENT_SECRET"],
            "AZURE_SUBSCRIPTION_ID": env["AZURE_SUBSCRIPTION_ID"],
            "AZURE_AUTHORITY_HOST": env["AZURE_AUTHORITY_HOST"],
            "AML_IDENTITY_ARM_ENDPOINT": env["AZLOCAL_ARM_ENDPOINT"],
            "AML_IDENTITY_GRAPH_ENDPOINT": env["AZLOCAL_ARM_ENDPOINT"],
            "AML_IDENTITY_CA_BUNDLE": env["AZLOCAL_CA_BUNDLE"],
            "AML_IDENTITY_DISABLE_INSTANCE_DISCOVERY": "true",
            "AML_IDENTITY_RESYNC_SECONDS": str(resync),
            "AML_IDENTITY_RESYNC_JITTER": "0",
            # Orphans are looked for often enough for a test to see the metric move.
            "AML_IDENTITY_ORPHAN_SCAN_SECONDS": "10",
            "AML_IDENTITY_CLUSTER_ID": "tests",
            "AML_IDENTITY_METRICS_PORT": str(self.metrics_port),
            "AML_IDENTITY_LIVENESS_ENDPOINT": self.liveness_url,
            # azlocal's vaults are https://127.0.0.1:<port>/: that is this cloud's vault host.
            "AML_IDENTITY_KEY_VAULT_HOSTS": json.dumps(["127.0.0.1:*"]),
            "AML_IDENTITY_SHARD": shard,
            "AML_IDENTITY_SHARD_NAMESPACE_SELECTOR": shard_selector,
            "AML_IDENTITY_SHARD_CLUSTER_RESOURCES": "false" if shard else "true",
        }
        self.cluster = cluster
        # kopf names each webhook <handler id>.<this>: Kubernetes wants three dotted parts.
        self.webhook_name = f"{workdir.name.lower()}.webhooks.identity.aml.dev"
        if webhook:
            self.env |= {
                "AML_IDENTITY_WEBHOOK_PORT": str(free_port()),
                "AML_IDENTITY_WEBHOOK_ADDRESS": "127.0.0.1",
                "AML_IDENTITY_WEBHOOK_HOST": "127.0.0.1",
                "AML_IDENTITY_WEBHOOK_CONFIGURATION": self.webhook_name,
            }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> OperatorProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aml_identity.cli", "run", "--log-format", "full"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_for_webhook(self, timeout: float = 60) -> None:
        """Until the API server calls this process's webhook: a dry-run MLRole that the
        guard refuses is refused by the webhook (its message is the guard's)."""
        from support.poll import wait_until

        probe = {
            "apiVersion": API,
            "kind": "MLRole",
            "metadata": {"name": "webhook-probe"},
            "spec": {
                "roleName": "webhook probe",
                "permissions": {"actions": ["*"]},
                "assignableScopes": ["/subscriptions/00000000-0000-0000-0000-000000000001"],
            },
        }

        def answered() -> bool:
            result = self.cluster.kubectl(
                "apply", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False
            )
            return "is privileged" in result.stderr

        wait_until(answered, timeout=timeout, what="the admission webhook to answer")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no status write, as when a node dies."""
        self.stop(signal.SIGKILL)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`aml-identity ARGS` with the operator's configuration (exit code unchecked)."""
        return subprocess.run(
            [sys.executable, "-m", "aml_identity.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return str(r.read().decode())


def get(
    cluster: LocalCluster, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    result = cluster.kubectl(*args, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Ready condition when it is True for the current generation."""
    if obj is None:
        return None
    for condition in (obj.get("status") or {}).get("conditions", []):
        if (
            condition["type"] == "Ready"
            and condition["status"] == "True"
            and condition.get("observedGeneration") == obj["metadata"]["generation"]
        ):
            return dict(condition)
    return None


def condition(obj: dict[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {}
    for c in (obj.get("status") or {}).get("conditions", []):
        if c["type"] == "Ready":
            return dict(c)
    return {}


API = "identity.aml.dev/v1alpha1"


def apply_json(cluster: LocalCluster, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def apply(
    cluster: LocalCluster,
    kind: str,
    name: str,
    spec: dict[str, Any],
    namespace: str | None = None,
    **metadata: Any,
) -> None:
    meta: dict[str, Any] = {"name": name, **metadata}
    if namespace:
        meta["namespace"] = namespace
    body = {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def _wait_for(
    cluster: LocalCluster,
    kind: str,
    name: str,
    namespace: str | None,
    timeout: float,
    probe: Any,
    what: str,
) -> Any:
    """Poll `probe`; on time-out, say what the Ready condition last was."""
    from support.poll import wait_until

    try:
        return wait_until(probe, timeout=timeout, what=f"{kind}/{name} {what}")
    except AssertionError as error:
        raise AssertionError(
            f"{error}; last condition: {condition(get(cluster, kind, name, namespace))}"
        ) from None


def wait_ready(
    cluster: LocalCluster, kind: str, name: str, namespace: str | None = None, timeout: float = 60
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, kind, name, namespace)
        return obj if ready(obj) else None

    found: dict[str, Any] = _wait_for(cluster, kind, name, namespace, timeout, probe, "to be Ready")
    return found


def wait_reason(
    cluster: LocalCluster,
    kind: str,
    name: str,
    reason: str,
    namespace: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = condition(get(cluster, kind, name, namespace))
        return found if found.get("reason") == reason else None

    found: dict[str, Any] = _wait_for(
        cluster, kind, name, namespace, timeout, probe, f"to report {reason}"
    )
    return found


def wait_message(
    cluster: LocalCluster,
    kind: str,
    name: str,
    text: str,
    namespace: str | None = None,
    timeout: float = 45,
) -> dict[str, Any]:
    """Until the Ready condition's message contains `text`; returns the condition."""

    def probe() -> dict[str, Any] | None:
        found = condition(get(cluster, kind, name, namespace))
        return found if text in found.get("message", "") else None

    found: dict[str, Any] = _wait_for(
        cluster, kind, name, namespace, timeout, probe, f"to say {text!r}"
    )
    return found


def wait_gone(
    cluster: LocalCluster, kind: str, name: str, namespace: str | None = None, timeout: float = 60
) -> None:
    from support.poll import wait_until

    wait_until(
        lambda: get(cluster, kind, name, namespace) is None,
        timeout=timeout,
        what=f"{kind}/{name} to be deleted",
    )


def events(cluster: LocalCluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the events about `name` in `namespace`."""
    listed = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [
        (e["type"], e["reason"], e["message"])
        for e in listed["items"]
        if e["involvedObject"]["name"] == name
    ]
