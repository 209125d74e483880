"""Helm, built from Go modules, knows which Kubernetes it renders for."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcluster import build


def test_helm_version_and_default_kube_version(tmp_path: Path) -> None:
    helm = build("helm")
    version = subprocess.run(
        [str(helm), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("v3.22.0")
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        "data: {kube: '{{ .Capabilities.KubeVersion.Version }}'}\n"
    )
    rendered = subprocess.run(
        [str(helm), "template", str(chart)], capture_output=True, text=True, check=True
    ).stdout
    # Without the build's ldflags Helm v3 would assume v1.20.0.
    assert "kube: 'v1.37.0'" in rendered
