"""A real node for the local control plane: containerd + runc + kubelet on loopback.

Each node is a kubelet registered as `127.0.0.<n>` (its name and its only address), with
a containerd of its own. Pods run with `hostNetwork` only: the node has no CNI plugin,
so Pod networking is the host's loopback, and nothing outside 127.0.0.0/8 is ever a
target. The kubelet refuses a loopback `--node-ip`, but takes an IP as
`--hostname-override` and reports it as the node's address.

What a node leaves on the host is undone by `stop()` (and by `cleanup()` after a crash,
from the state file): container processes (found through the node's own cgroup subtree,
/aml-node-<pid>-<n> in every cgroup hierarchy), runc shims, mounts under its folder, the
kubelet's log links, and the kernel settings the kubelet changes at start (recorded
first, restored after). A node started later kills the containers of nodes whose starter
died without cleaning up.

The node needs root, cgroups (v1 on this machine: the kubelet is told it may run there),
overlayfs and `umoci` (Debian's package). containerd, ctr, the shim and runc are built by
build.sh; so is the Pod sandbox's pause binary, which becomes an image here.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from processes import Component, component_report, free_ports, wait_for

if TYPE_CHECKING:
    from localcluster import LocalCluster

# What containerd's CRI runs as every Pod's sandbox; built here, never pulled.
PAUSE_IMAGE = "localhost/aml-pause:3.10"
# Kernel settings the kubelet sets at start (protectKernelDefaults=false): restored on stop.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# containerd's shims put their sockets here, whatever its state folder.
SHIM_SOCKETS = Path("/run/containerd/s")
# The kubelet links every container's log here, whatever its podLogsDir.
CONTAINER_LOG_LINKS = Path("/var/log/containers")
# sockaddr_un holds 108 bytes: longer socket paths fail at bind with an unclear error.
MAX_SOCKET_PATH = 100
STATE_FILE = "node.json"


class NodeStartError(RuntimeError):
    """The node did not come up, or would not stop; the message says why."""


def node_name(index: int) -> str:
    """The n-th node's name and address: 127.0.0.1, 127.0.0.2, ..."""
    return f"127.0.0.{index + 1}"


def check_host() -> None:
    """What the node needs from this machine, each missing piece said plainly."""
    problems = []
    if os.geteuid() != 0:
        problems.append("a node needs root (containerd mounts and cgroups)")
    if shutil.which("umoci") is None:
        problems.append("umoci is not on PATH (apt-get install umoci; `make node-deps`)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("the kernel has no overlayfs (containerd's snapshotter)")
    if problems:
        raise NodeStartError("cannot start a node here:\n  " + "\n  ".join(problems))


def cgroup_hierarchies() -> list[Path]:
    """The mount points of every cgroup hierarchy: the v1 controllers and the v2 (unified)
    one. On this hybrid host runc creates the containers' groups in both."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            found.append(Path(left.split()[4]))
    return found


def pause_image(pause_binary: Path) -> Path:
    """An OCI archive of the pause binary (cached next to it): the Pods' sandbox image."""
    archive = pause_binary.parent / "pause.oci.tar"
    if archive.exists():
        return archive
    work = pause_binary.parent / f"pause-image.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    layout, bundle = work / "oci", work / "bundle"
    tag = PAUSE_IMAGE.rsplit(":", 1)[1]

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:{tag}")
    umoci("unpack", "--rootless", "--image", f"{layout}:{tag}", str(bundle))
    shutil.copy2(pause_binary, bundle / "rootfs" / "pause")
    umoci("repack", "--image", f"{layout}:{tag}", str(bundle))
    umoci(
        "config", "--image", f"{layout}:{tag}", "--config.entrypoint", "/pause",
        "--config.user", "65535:65535",
    )  # fmt: skip
    name_image(layout / "index.json", PAUSE_IMAGE)
    tmp = archive.with_suffix(f".tmp.{os.getpid()}")
    with tarfile.open(tmp, "w") as tar:
        for entry in sorted(layout.iterdir()):
            tar.add(entry, arcname=entry.name)
    tmp.rename(archive)
    shutil.rmtree(work, ignore_errors=True)
    return archive


def import_image(ctr: Path, socket: Path, archive: Path) -> None:
    """`ctr images import` into the CRI's namespace (k8s.io) of the containerd at `socket`."""
    result = subprocess.run(
        [str(ctr), f"--address={socket}", "--namespace=k8s.io", "images", "import", str(archive)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        raise NodeStartError(f"importing {archive.name} into {socket}: {result.stderr.strip()}")


def name_image(index_json: Path, reference: str) -> None:
    """Give an OCI layout's image its full name, as `ctr images export` does: `ctr images
    import` names it by that annotation (OCI's ref.name holds only the tag)."""
    index = json.loads(index_json.read_text())
    for manifest in index["manifests"]:
        manifest.setdefault("annotations", {})["io.containerd.image.name"] = reference
    index_json.write_text(json.dumps(index))


@dataclass
class NodeState:
    """What cleanup needs after the process that started the node is gone."""

    name: str
    workdir: str
    cgroup: str
    containerd_socket: str
    sysctls: dict[str, str]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def read(cls, path: Path) -> NodeState:
        return cls(**json.loads(path.read_text()))


class LocalNode:
    """One node: containerd and a kubelet in `workdir`, registered with `cluster`."""

    def __init__(
        self,
        cluster: LocalCluster,
        index: int,
        workdir: Path,
        *,
        kube: Path,
        containerd: Path,
        runc: Path,
        pause: Path,
    ) -> None:
        self.cluster = cluster
        self.name = node_name(index)
        self.workdir = workdir
        self.kube = kube
        self.bin = containerd.parent  # containerd, containerd-shim-runc-v2, ctr
        self.runc = runc
        self.pause = pause
        self.socket = workdir / "containerd.sock"
        self.index = index
        self.cgroup = ""  # set at start: it depends on who keeps the node alive
        self.components: list[Component] = []
        self.started_in: float | None = None

    # --- start ---------------------------------------------------------------------------

    def start(self, *, attached: bool, deadline: float) -> None:
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise NodeStartError(f"{self.workdir} is too long a path for unix sockets")
        began = time.monotonic()
        # Attached, the node's processes die with this one (PR_SET_PDEATHSIG): its pid in
        # the name tells reap_stale_nodes when they are gone. Detached (`up`), they
        # outlive it, and only `down` may clean them up: "up<pid>" is never reaped.
        owner = str(os.getpid()) if attached else f"up{os.getpid()}"
        self.cgroup = f"aml-node-{owner}-{self.index}"
        for sub in ("containerd", "cni", "cni-bin", "kubelet", "pod-logs", "pki"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self._make_cgroups()
        state = NodeState(
            self.name, str(self.workdir), self.cgroup, str(self.socket), self._read_sysctls()
        )
        state.write(self.workdir / STATE_FILE)
        kubelet_port, healthz_port = free_ports(2)
        self._write_containerd_config()
        self._write_kubelet_config(kubelet_port, healthz_port)
        logs = self.cluster.logs
        path = f"{self.bin}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        containerd = Component(
            f"containerd {self.name}",
            [str(self.bin / "containerd"), f"--config={self.workdir / 'containerd.toml'}"],
            logs / f"containerd-{self.name}.log",
            env={**os.environ, "PATH": path},
        )
        kubelet = Component(
            f"kubelet {self.name}",
            [
                str(self.kube),
                "kubelet",
                f"--config={self.workdir / 'kubelet.json'}",
                f"--kubeconfig={self.workdir / 'kubelet.kubeconfig'}",
                f"--hostname-override={self.name}",
                f"--root-dir={self.workdir / 'kubelet'}",
                f"--cert-dir={self.workdir / 'pki'}",
                "--v=1",
            ],
            logs / f"kubelet-{self.name}.log",
            env={**os.environ, "PATH": path},
        )
        self.components = [containerd]
        containerd.start(attached=attached)
        self._wait(lambda: self.socket.exists(), "containerd's socket", deadline)
        self.import_image(pause_image(self.pause))
        self.components.append(kubelet)
        kubelet.start(attached=attached)
        self._wait(self.ready, f"node {self.name} to be Ready", deadline)
        self.started_in = time.monotonic() - began

    def ready(self) -> bool:
        status, body = self.cluster.request("GET", f"/api/v1/nodes/{self.name}")
        if status != 200:
            return False
        conditions = json.loads(body).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def import_image(self, archive: Path) -> None:
        """Load an OCI archive into the node's containerd, where the kubelet finds it."""
        import_image(self.bin / "ctr", self.socket, archive)

    def _wait(self, ready: Callable[[], bool], what: str, deadline: float) -> None:
        wait_for(self.components, ready, what, deadline, NodeStartError)

    def _make_cgroups(self) -> None:
        # The kubelet wants its cgroup root to exist in every hierarchy.
        for hierarchy in cgroup_hierarchies():
            (hierarchy / self.cgroup).mkdir(exist_ok=True)

    @staticmethod
    def _read_sysctls() -> dict[str, str]:
        values = {}
        for key in KUBELET_SYSCTLS:
            path = Path("/proc/sys") / key
            if path.exists():
                values[key] = path.read_text().strip()
        return values

    def _write_containerd_config(self) -> None:
        d = self.workdir
        # One network so the CRI reports NetworkReady; hostNetwork Pods never call CNI.
        (d / "cni" / "10-loopback.conflist").write_text(
            json.dumps(
                {"cniVersion": "1.0.0", "name": "aml-loopback", "plugins": [{"type": "loopback"}]}
            )
        )
        (d / "containerd.toml").write_text(
            f"""version = 3
root = "{d / "containerd" / "root"}"
state = "{d / "containerd" / "state"}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "{d / "containerd" / "opt"}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  tolerate_missing_hugetlb_controller = true
  # The kubelet asks for negative OOM scores (-998 for every sandbox), which need
  # CAP_SYS_RESOURCE; a sandboxed host (this one) may not grant it: never go below ours.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "{self.runc}"
      Root = "{d / "containerd" / "runc"}"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    conf_dir = "{d / "cni"}"
    bin_dirs = ["{d / "cni-bin"}"]

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "{self.name}"
  stream_server_port = "0"
"""
        )

    def _write_kubelet_config(self, port: int, healthz_port: int) -> None:
        from localcluster import write_kubeconfig

        # Issued with the cluster's other certificates (localcluster.write_pki).
        d, pki = self.workdir, self.cluster.pki
        write_kubeconfig(
            d / "kubelet.kubeconfig",
            self.cluster.server,
            pki,
            user=f"kubelet-client-{self.name}",
        )
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # Kubernetes >= 1.35 refuses cgroup v1 unless told otherwise; this machine is v1.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup}",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "failSwapOn": False,
            "address": self.name,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": self.name,
            "healthzPort": healthz_port,
            "tlsCertFile": str(pki / f"kubelet-{self.name}.crt"),
            "tlsPrivateKeyFile": str(pki / f"kubelet-{self.name}.key"),
            "rotateCertificates": False,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cluster.ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "resolvConf": "/etc/resolv.conf",
            "podLogsDir": str(d / "pod-logs"),
            "volumePluginDir": str(d / "kubelet" / "volume-plugins"),
            # No registry to pull back a collected image, and a test machine's disk may be
            # nearly full: never collect images, never evict.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "0%",
                "nodefs.available": "0%",
                "imagefs.available": "0%",
                "nodefs.inodesFree": "0%",
            },
            "registerNode": True,
        }
        (d / "kubelet.json").write_text(json.dumps(config, indent=2))

    # --- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the kubelet, then containerd, then undo what the node left (cleanup:
        containers and shims first); the clean-up runs even when a stop fails."""
        state_file = self.workdir / STATE_FILE
        try:
            for component in reversed(self.components):  # the kubelet first
                component.stop()
        finally:
            self.components = []
            if state_file.exists():
                cleanup(NodeState.read(state_file))

    def report(self) -> str:
        return component_report(self.components)


def _pids_in_cgroup(cgroup: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / cgroup
        if root.exists():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return pids


@dataclass
class Shim:
    address: str  # the containerd socket it serves
    socket: Path  # its own socket, which it leaves behind when killed

    @classmethod
    def of(cls, argv: list[str]) -> Shim:
        def flag(name: str) -> str:
            return argv[argv.index(name) + 1] if name in argv[:-1] else ""

        # containerd's pkg/shim.SocketAddress: a hash of <address>/<namespace>/<id>.
        key = f"{flag('-address')}/{flag('-namespace')}/{flag('-id')}"
        return cls(flag("-address"), SHIM_SOCKETS / hashlib.sha256(key.encode()).hexdigest())


def _shims() -> dict[int, Shim]:
    """Every runc shim on the host."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv[0].endswith("containerd-shim-runc-v2") and "-address" in argv[:-1]:
            found[int(entry.name)] = Shim.of(argv)
    return found


def _kill_shims(select: Callable[[Shim], bool]) -> None:
    for pid, shim in _shims().items():
        if select(shim):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            shim.socket.unlink(missing_ok=True)


def _kill_cgroup(cgroup: str, timeout: float = 15.0) -> None:
    """SIGKILL every process of `cgroup` (in any hierarchy) until none is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = _pids_in_cgroup(cgroup)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise NodeStartError(f"{cgroup}: processes outlived SIGKILL: {sorted(pids)}")


def _kill_containers(state: NodeState) -> None:
    _kill_shims(lambda shim: shim.address == state.containerd_socket)
    _kill_cgroup(state.cgroup)


_MNT_DETACH = 2


def _unmount_under(folder: str) -> None:
    """Unmount every mount below `folder`, deepest first (overlays, tmpfs volumes, shm)."""
    libc = ctypes.CDLL(None, use_errno=True)
    prefix = folder.rstrip("/") + "/"
    for _ in range(5):
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefix)
        ]
        if not mounts:
            return
        for mount in sorted(mounts, key=lambda m: m.count("/"), reverse=True):
            libc.umount2(mount.encode(), _MNT_DETACH)


def cleanup(state: NodeState) -> None:
    """Undo what a node left on the host: processes, mounts, cgroups, log links, kernel
    settings. The kernel settings are restored whatever else fails."""
    try:
        _kill_containers(state)
        _unmount_under(state.workdir)
        for hierarchy in cgroup_hierarchies():
            _remove_cgroup(hierarchy / state.cgroup)
        if CONTAINER_LOG_LINKS.is_dir():
            for link in CONTAINER_LOG_LINKS.iterdir():
                if link.is_symlink() and str(link.readlink()).startswith(state.workdir + "/"):
                    link.unlink()
    finally:
        for key, value in state.sysctls.items():
            path = Path("/proc/sys") / key
            with contextlib.suppress(OSError):
                if path.read_text().strip() != value:
                    path.write_text(value)
    (Path(state.workdir) / STATE_FILE).unlink(missing_ok=True)


def _remove_cgroup(root: Path) -> None:
    if root.exists():
        for group in sorted(
            (p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            group.rmdir()
        root.rmdir()


def reap_stale_nodes() -> list[str]:
    """Kill what attached nodes of dead processes left running (a test run killed before
    its clean-up): their cgroups are named aml-node-<pid of the starter>-<n>. Detached
    nodes (aml-node-up<pid>-<n>) are `down`'s. Mounts and kernel settings are for
    `localcluster.py down --dir <their folder>`."""
    stale = sorted(
        {
            group.name
            for hierarchy in cgroup_hierarchies()
            for group in hierarchy.glob("aml-node-*-*")
            if (starter := group.name.split("-")[2]).isdigit()
            and not Path(f"/proc/{starter}").exists()
        }
    )
    for cgroup in stale:
        with contextlib.suppress(NodeStartError, OSError):
            _kill_cgroup(cgroup, timeout=10.0)
            for hierarchy in cgroup_hierarchies():
                _remove_cgroup(hierarchy / cgroup)
    # Shims whose containerd is gone (its socket with it) serve nobody.
    _kill_shims(lambda shim: not Path(shim.address).exists())
    return stale
