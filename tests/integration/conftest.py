"""Fixtures for tests against the real control plane."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster import LocalCluster


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster, repo: Path) -> list[str]:
    """The project's CRDs, applied server-side and Established."""
    cluster.kubectl("apply", "--server-side", "--field-manager=aml-tests", "-f", str(repo / "crds"))
    names = [
        "workloadidentities.identity.aml.dev",
        "mlrolebindings.identity.aml.dev",
        "mlroles.identity.aml.dev",
    ]
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names]
    )
    return names


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
