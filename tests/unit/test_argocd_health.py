"""Argo CD health scripts: generated, current, and right on every testdata file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aml_identity.api.argocd import KINDS, render_all
from aml_identity.api.common import TRANSIENT_REASONS, Reason
from support.argocd import health

ROOT = Path(__file__).resolve().parents[2] / "argocd" / "resource_customizations"


def test_committed_scripts_match_a_regeneration() -> None:
    rendered = render_all()
    committed = {str(p.relative_to(ROOT)): p.read_text() for p in ROOT.rglob("*") if p.is_file()}
    assert committed == rendered, "argocd/ is stale: run `make argocd`"


def test_the_chart_ships_the_same_scripts() -> None:
    chart = ROOT.parents[1] / "charts" / "aml-identity-operator" / "files" / "argocd"
    shipped = {str(p.relative_to(chart)): p.read_text() for p in chart.rglob("*") if p.is_file()}
    expected = {k: v for k, v in render_all().items() if k.endswith("/health.lua")}
    assert shipped == expected, "the chart's copy is stale: run `make argocd`"


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file(kind: str) -> None:
    base = ROOT / "identity.aml.dev" / kind
    cases = yaml.safe_load((base / "health_test.yaml").read_text())["tests"]
    assert len(cases) == len(list((base / "testdata").glob("*.yaml")))
    for case in cases:
        obj = yaml.safe_load((base / case["inputPath"]).read_text())
        assert health(base / "health.lua", obj) == case["healthStatus"], case["inputPath"]


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_maps_as_the_operator_means_it(reason: Reason) -> None:
    script = ROOT / "identity.aml.dev" / "WorkloadIdentity" / "health.lua"
    status = "True" if reason is Reason.RECONCILED else "False"
    obj = {
        "metadata": {"name": "x", "generation": 3},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": status,
                    "reason": reason.value,
                    "message": "m",
                    "observedGeneration": 3,
                }
            ]
        },
    }
    expected = (
        "Healthy"
        if reason is Reason.RECONCILED
        else "Progressing"
        if reason in TRANSIENT_REASONS
        else "Degraded"
    )
    assert health(script, obj)["status"] == expected
