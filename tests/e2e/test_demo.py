"""`make demo` as a user runs it: the whole story, green."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_green(repo: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(repo / "tools" / "demo" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert (
        "Every allowed operation succeeded and every forbidden one was refused with 403." in output
    )
    assert output.count("as expected") == 11  # 4 identities: 9 federated checks, 2 certificate
    assert "certificate service principal" in output
    # The guardrail: an escalation refused at kubectl apply, with the policy's message.
    assert "refused: namespace ml-team may not bind Owner at /subscriptions/" in output
    # The demo ends with the access report of its four identities.
    assert "5. The access report" in output
    assert "ml-team/release-script  ServicePrincipal  Reconciled" in output
    assert "role         ML Endpoint Monitor [read 2, write 0, delete 0, other 0] at" in output
    # A grant made by hand is reported, in the identity's condition and in the report,
    # and the report's orphans section was looked for (with the operator's settings).
    assert "the operator reports it: UndeclaredGrants=True on training-pipeline" in output
    assert "UndeclaredGrant     ml-team/training-pipeline        holds Reader at" in output
    assert "ORPHANS (Azure objects of this cluster whose resource is gone)\n     none" in output
    # A misspelt custom-role action, refused with the real one.
    assert (
        "did you mean Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read?" in output
    )
    assert "UNEXPECTED" not in output
    assert "one resync at rest:" in output
    assert ", 0 writes" in output
    assert (
        "left in Azure: 0 managed identities, 0 applications, 0 custom roles, 0 role assignments"
        in output
    )
