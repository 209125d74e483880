"""bench/scale.py in small, so the benchmark keeps working: every resource Ready, exactly
the writes needed, nothing refused by ARM, and nothing written at rest. The numbers
that matter come from the big runs (docs/performance.md), not from here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def bench(repo: Path, script: str, *args: str, timeout: float) -> str:
    """Run one benchmark script to the end; its standard output, or the run's tail."""
    result = subprocess.run(
        [sys.executable, str(repo / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result.stdout


def test_scale_benchmark_smoke(repo: Path) -> None:
    stdout = bench(
        repo, "scale.py", "--n", "6", "--namespaces", "2", "--resync", "10", "--json",
        timeout=600,
    )  # fmt: skip
    report = json.loads(stdout[stdout.index("\n{") :])
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
    stdout = bench(
        repo, "chaos.py", "--n", "10", "--kills", "6", "--resync", "10", "--timeout", "300",
        timeout=1200,
    )  # fmt: skip
    assert "| converge |" in stdout
    assert "| mass delete |" in stdout
    assert "FAILED" not in stdout
