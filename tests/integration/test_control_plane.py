"""The control plane is the real thing: version, controllers, clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from localcluster import LocalCluster, build
from support.poll import wait_until

EXPECTED_MINOR = "37"


def kube_version(repo: Path) -> str:
    text = (repo / "tools/localcluster/kube/go.mod").read_text()
    line = next(line for line in text.splitlines() if "k8s.io/kubernetes v" in line)
    return line.split()[-1]


def test_server_version_is_the_pinned_kubernetes(cluster: LocalCluster, repo: Path) -> None:
    out = json.loads(cluster.kubectl("version", "--output=json").stdout)
    assert out["serverVersion"]["gitVersion"] == kube_version(repo)
    assert out["serverVersion"]["minor"] == EXPECTED_MINOR
    # kubectl within the supported skew (one minor either way).
    assert abs(int(out["clientVersion"]["minor"]) - int(EXPECTED_MINOR)) <= 1


def test_controller_manager_runs_controllers(cluster: LocalCluster, namespace: str) -> None:
    # The service-account controller creates `default`; the namespace controller
    # finishes deletions. Neither happens with a bare apiserver.
    wait_until(
        lambda: (
            cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0
        ),
        what=f"the default service account in {namespace}",
    )
    cluster.kubectl("create", "configmap", "c", "-n", namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    wait_until(
        lambda: cluster.kubectl("get", "ns", namespace, check=False).returncode != 0,
        timeout=60,
        what=f"namespace {namespace} to be deleted by the namespace controller",
    )


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path / "c", kube=build("kube"), etcd=build("etcd"))
    local.start()
    pids = [c.process.pid for c in local.components if c.process is not None]
    assert len(pids) == 3
    local.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"pid {pid} still runs"


def _is_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_start_failure_shows_the_component_logs(tmp_path: Path) -> None:
    fake_etcd = tmp_path / "etcd"
    fake_etcd.write_text(
        "#!/bin/sh\necho 'etcd: cannot open data dir: permission denied' >&2\nexit 3\n"
    )
    fake_etcd.chmod(0o755)
    local = LocalCluster(tmp_path / "c", kube=build("kube"), etcd=fake_etcd)
    try:
        local.start(timeout=30)
    except Exception as err:
        message = str(err)
    else:
        local.stop()
        raise AssertionError("start succeeded with a broken etcd")
    assert "etcd exited" in message or "etcd (exited with 3)" in message
    assert "cannot open data dir: permission denied" in message


def test_detached_up_and_down(tmp_path: Path, repo: Path) -> None:
    """The `make cluster-up` / `cluster-down` path: processes outlive the CLI, then stop.
    The directory has a space in it, as CLUSTER_DIR may."""
    script = repo / "tools/localcluster/localcluster.py"
    workdir = tmp_path / "detached cluster"
    for target in ("cluster-up", "cluster-down"):
        planned = subprocess.run(
            ["make", "-n", "-s", target, f"CLUSTER_DIR={workdir}"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert f'--dir "{workdir}"' in planned, planned
    up = subprocess.run(
        [sys.executable, str(script), "up", "--dir", str(workdir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert up.returncode == 0, up.stderr
    assert "control plane ready at https://127.0.0.1:" in up.stdout
    exported = subprocess.run(
        ["bash", "-c", f'{up.stdout.splitlines()[-1]} && printf %s "$KUBECONFIG"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert exported == str(workdir / "kubeconfig"), "the printed export must survive a shell"
    pids = json.loads((workdir / "pids.json").read_text())
    assert set(pids) == {"etcd", "apiserver", "controller-manager"}
    kubeconfig = workdir / "kubeconfig"
    local = LocalCluster(workdir)
    local.kubeconfig = kubeconfig
    assert local.kubectl("get", "--raw=/readyz").stdout.strip() == "ok"
    down = subprocess.run(
        [sys.executable, str(script), "down", "--dir", str(workdir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert down.returncode == 0, down.stderr
    wait_until(
        lambda: not any(_alive(pid) for pid in pids.values()),
        timeout=20,
        what=f"pids {sorted(pids.values())} to exit",
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)
