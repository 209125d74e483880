"""Fixtures for tests against the real control plane."""

from __future__ import annotations

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
        "mlaccesspolicies.identity.aml.dev",
    ]
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names]
    )
    return names
