"""Helm (built from Go modules) against a local control plane."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcluster import build

CHART = Path(__file__).resolve().parents[2] / "charts" / "aml-identity-operator"


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    command = [str(build("helm")), *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {result.stderr}")
    return result
