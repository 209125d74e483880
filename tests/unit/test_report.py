"""The access report (reconcile/report.py) from objects as the API server returns them,
with an injected clock."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from aml_identity.reconcile import report

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ISSUER = "https://issuer.example"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-ml"
ML = "Microsoft.MachineLearningServices"


def meta(name: str, namespace: str | None = "ml-team") -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if namespace:
        found["namespace"] = namespace
    return found


def ready(reason: str = "Reconciled") -> list[dict[str, Any]]:
    status = "True" if reason == "Reconciled" else "False"
    return [
        {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": "m",
            "lastTransitionTime": NOW.isoformat(),
        }
    ]


def identity(name: str, spec: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {"metadata": meta(name), "spec": spec, "status": {"conditions": ready(), **status}}


def binding(name: str, role: dict[str, str], subject: str) -> dict[str, Any]:
    spec = {
        "role": role,
        "subjects": [{"workloadIdentity": subject}],
        "scope": {"resourceGroup": {"name": "rg-ml"}},
    }
    return {"metadata": meta(name), "spec": spec, "status": {"conditions": ready()}}


def pod(name: str, account: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": meta(name),
        "spec": {"serviceAccountName": account},
        "status": {"phase": phase},
    }


MONITOR_ROLE = {
    "metadata": meta("monitor", None),
    "spec": {
        "roleName": "ML Monitor",
        "permissions": {"actions": [f"{ML}/workspaces/onlineEndpoints/read"]},
        "assignableScopes": [RG],
    },
    "status": {"operations": {"read": 1, "write": 0, "delete": 0, "action": 0, "dataActions": 0}},
}


def world() -> report.Report:
    soon = (NOW + timedelta(days=10)).isoformat()
    later = (NOW + timedelta(days=300)).isoformat()
    identities = [
        identity(
            "trainer",
            {
                "managedIdentity": {"resourceGroup": "rg-id", "location": "westeurope"},
                "serviceAccounts": [{"name": "trainer"}],
            },
            clientId="c-trainer",
        ),
        identity(
            "legacy",
            {"servicePrincipal": {"displayName": "legacy", "credential": {"clientSecret": {}}}},
            credential={"kind": "ClientSecret", "notAfter": later},
        ),
        identity(
            "release",
            {"servicePrincipal": {"displayName": "release", "credential": {"certificate": {}}}},
            credential={"kind": "Certificate", "notAfter": soon},
        ),
        identity(
            "idle",
            {"managedIdentity": {"resourceGroup": "rg-id", "location": "westeurope"}},
        ),
    ]
    bindings = [
        binding("train", {"builtIn": "AzureML Data Scientist"}, "trainer"),
        binding("monitor", {"mlRole": "monitor"}, "trainer"),
        binding("own", {"builtIn": "Owner"}, "release"),
        binding("legacy", {"builtIn": "Reader"}, "legacy"),
    ]
    pods = [pod("trainer-1", "trainer"), pod("trainer-2", "trainer", "Pending")]
    return report.build(
        identities, bindings, [MONITOR_ROLE], pods, issuer=ISSUER, subscription=SUB, now=NOW
    )


def test_findings_come_first_most_serious_first() -> None:
    findings = [(f.kind, f.identity) for f in world().findings]
    assert findings == [
        ("ClientSecret", "ml-team/legacy"),
        ("PrivilegedRole", "ml-team/release"),
        ("CredentialExpiring", "ml-team/release"),
        ("NoBinding", "ml-team/idle"),
        ("NoUser", "ml-team/idle"),
    ]
    privileged = world().findings[1].message
    assert privileged.startswith(f"holds Owner at {RG} (Owner can grant access")


def test_an_identity_with_its_roles_federations_and_users() -> None:
    trainer = next(i for i in world().identities if i.name == "trainer")
    assert trainer.form == "ManagedIdentity"
    assert trainer.credential is None
    assert trainer.federations == [
        report.Federation(ISSUER, "system:serviceaccount:ml-team:trainer")
    ]
    assert [(g.role, g.scope, g.binding) for g in trainer.grants] == [
        ("AzureML Data Scientist", RG, "ml-team/train"),
        ("monitor", RG, "ml-team/monitor"),
    ]
    assert trainer.grants[1].operations == MONITOR_ROLE["status"]["operations"]
    assert trainer.pods == ["trainer-1"], "only running Pods count"


def test_an_expired_credential_is_the_most_serious() -> None:
    expired = identity(
        "old",
        {"servicePrincipal": {"displayName": "old"}},
        credential={"kind": "Certificate", "notAfter": (NOW - timedelta(days=1)).isoformat()},
    )
    built = report.build([expired], [], [], [], issuer=ISSUER, subscription=SUB, now=NOW)
    assert built.findings[0].kind == "CredentialExpired"


def test_every_output_format() -> None:
    built = world()
    data = json.loads(report.render(built, "json"))
    assert data["findings"][0]["kind"] == "ClientSecret"
    assert yaml.safe_load(report.render(built, "yaml")) == data
    rows = list(csv.DictReader(io.StringIO(report.render(built, "csv"))))
    assert len(rows) == 5  # trainer twice (two grants), legacy, release, idle once each
    assert {r["identity"] for r in rows} == {
        f"ml-team/{n}" for n in ("trainer", "legacy", "release", "idle")
    }
    markdown = report.render(built, "markdown")
    assert "- **ClientSecret** `ml-team/legacy`" in markdown
    assert "| identity | form |" in markdown
    table = report.render(built, "table")
    assert table.startswith("FINDINGS\n  ClientSecret")
    assert "  role         monitor [read 1, write 0, delete 0, other 0] at" in table
