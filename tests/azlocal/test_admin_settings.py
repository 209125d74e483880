"""The admin API's settings: one set of camelCase names for GET, PATCH and the docs."""

from __future__ import annotations

import re
from pathlib import Path

from azlocal.server import AzLocal

DOCS = Path(__file__).parents[2] / "docs" / "azlocal.md"


def documented_settings() -> set[str]:
    row = next(
        line for line in DOCS.read_text().splitlines() if line.startswith("| `GET/PATCH settings`")
    )
    described = row.split("|")[2]
    return set(re.findall(r"`([A-Za-z]+)`", described))


def test_settings_answer_camel_case(azlocal: AzLocal) -> None:
    settings = azlocal.admin("GET", "settings")
    assert set(settings) == {
        "throttling",
        "latencyMs",
        "jitterMs",
        "replicationDelaySeconds",
        "pageSize",
        "roleAssignmentLimit",
        "ficWriteSeconds",
        "clockOffsetSeconds",
        "keyvaultPendingPolls",
        "graphReadLagSeconds",
        "serverErrorRate",
        "resetRate",
    }
    assert set(settings) == documented_settings()
    # What GET answers, PATCH takes back unchanged; PATCH answers the same names.
    assert azlocal.admin("PATCH", "settings", settings) == settings
    assert azlocal.admin("PATCH", "settings", {"pageSize": 7})["pageSize"] == 7
    # snake_case is still accepted, for callers written before.
    assert azlocal.admin("PATCH", "settings", {"page_size": 9})["pageSize"] == 9
    assert azlocal.admin("GET", "settings")["pageSize"] == 9
