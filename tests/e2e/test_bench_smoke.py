"""bench/scale.py in small, so the benchmark keeps working: every resource Ready, exactly
the writes needed, nothing refused by ARM, and nothing written at rest. The numbers
that matter come from the big runs (docs/performance.md), not from here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_scale_benchmark_smoke(repo: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(repo / "bench" / "scale.py"), "--n", "6", "--namespaces", "2",
         "--resync", "10", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    report = json.loads(result.stdout[result.stdout.index("\n{") :])
    assert report["ready"] == 18
    assert report["writes_made"] == report["writes_needed"] == 24
    assert report["answered_429"] == 0
    rest = report["rest"]
    assert rest["ready_at_end"] == 18
    assert rest["azure_writes"] == 0
    assert rest["kubernetes_writes"] == 0
    assert rest["azure_reads"] > 0, "the resync did not look at Azure"


def test_chaos_benchmark_smoke(repo: Path) -> None:
    """bench/chaos.py in small: every form of identity, kills in every phase, the lost
    status, and the full Azure inventory compared after each (the script fails on any
    leak, duplicate, missing object or stuck finalizer)."""
    result = subprocess.run(
        [sys.executable, str(repo / "bench" / "chaos.py"), "--n", "10", "--kills", "6",
         "--resync", "10", "--timeout", "300"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "| converge |" in result.stdout
    assert "| mass delete |" in result.stdout
    assert "FAILED" not in result.stdout
