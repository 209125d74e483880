"""The node world: a control plane of its own with a real node (containerd + runc +
kubelet), an azlocal of its own, and the operator's image built offline and loaded into
the node. Everything here runs as Pods; nothing shares the session's operator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlocal.server import AzLocal
from localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def image() -> Path:
    """The operator's OCI image archive (tools/image/build.sh; cached by source)."""
    result = subprocess.run(
        [str(REPO / "tools" / "image" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, f"building the image failed:\n{result.stderr[-5000:]}"
    archive = Path(result.stdout.strip().splitlines()[-1])
    print(f"image archive {archive.name}: {archive.stat().st_size / 2**20:.0f} MiB")
    return archive


@pytest.fixture(scope="package")
def node_cluster(tmp_path_factory: pytest.TempPathFactory, image: Path) -> Iterator[LocalCluster]:
    """Control plane, kube-scheduler and two nodes (127.0.0.1 and 127.0.0.2: two
    replicas in the host's network need two addresses), with the image loaded."""
    local = LocalCluster(tmp_path_factory.mktemp("nodeworld"), nodes=2)
    local.start(attached=True)
    try:
        local.import_image(image)
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="package")
def node_azlocal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzLocal]:
    """An azlocal of the node world's own (its counters and grants are this world's)."""
    server = AzLocal(tmp_path_factory.mktemp("nodeazlocal")).start()
    try:
        yield server
    finally:
        server.stop()
