"""An MLRole's operations are checked the way Azure checks them: a misspelt action is
refused at `kubectl apply` with the closest real operations (and by the reconcile when
the webhook is gone), a provider outside the catalog is left to Azure, whose refusal the
status shows, and a Ready MLRole says how much it allows."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, authorization_client
from support.operator import API, OperatorProcess, events, get, wait_ready, wait_reason
from support.world import RG_ML

ML = "Microsoft.MachineLearningServices"
TYPO = f"{ML}/workspaces/onlineEndpoint/read"
SUGGESTION = f"did you mean {ML}/workspaces/onlineEndpoints/read?"


def manifest(name: str, actions: list[str]) -> str:
    spec = {"roleName": name, "permissions": {"actions": actions}, "assignableScopes": [RG_ML]}
    return json.dumps(
        {"apiVersion": API, "kind": "MLRole", "metadata": {"name": name}, "spec": spec}
    )


def definitions_named(azlocal: AzLocal, name: str) -> list[Any]:
    client = authorization_client(azlocal, admin_credential(azlocal))
    return [d for d in client.role_definitions.list(RG_ML) if d.role_name == name]


def test_a_misspelt_action_is_refused_at_apply_with_a_suggestion(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    name = f"typo-{namespace}"
    result = cluster.kubectl(
        "apply", "-f", "-", input=manifest(name, [f"{ML}/workspaces/read", TYPO]), check=False
    )
    assert result.returncode != 0
    assert "denied the request" in result.stderr
    assert f"spec.permissions.actions[1]: '{TYPO}' is not an operation of {ML}" in result.stderr
    assert SUGGESTION in result.stderr
    assert get(cluster, "mlroles", name) is None
    assert definitions_named(azlocal, name) == []


def test_a_provider_outside_the_catalog_is_left_to_azure(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    name = f"nowhere-{namespace}"
    applied = cluster.kubectl(
        "apply", "-f", "-", input=manifest(name, ["Microsoft.Nonexistent/things/read"])
    )
    try:
        assert "Microsoft.Nonexistent is not a resource provider this version" in applied.stderr
        refused = wait_reason(cluster, "mlroles", name, "InvalidSpec")
        # Azure's own refusal, as azlocal gives it.
        assert "InvalidActionOrNotAction" in refused["message"]
        assert "is not returned in the list of providers" in refused["message"]
        assert definitions_named(azlocal, name) == []
    finally:
        cluster.kubectl("delete", "mlroles", name, "--wait=false")


def test_a_ready_mlrole_says_how_much_it_allows(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    name = f"monitor-{namespace}"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=manifest(
            name,
            [f"{ML}/workspaces/onlineEndpoints/read", f"{ML}/workspaces/onlineEndpoints/*/read"],
        ),
    )
    try:
        role = wait_ready(cluster, "mlroles", name)
        operations = role["status"]["operations"]
        assert operations["write"] == operations["delete"] == operations["action"] == 0
        assert operations["read"] >= 2
        assert "notResolved" not in operations
    finally:
        cluster.kubectl("delete", "mlroles", name, "--wait=false")


def test_the_reconcile_refuses_a_misspelt_action_when_the_webhook_is_down(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    namespace: str,
    webhook_down: None,
) -> None:
    name = f"typo-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=manifest(name, [TYPO]))
    try:
        refused = wait_reason(cluster, "mlroles", name, "InvalidSpec")
        assert SUGGESTION in refused["message"]
        assert definitions_named(azlocal, name) == []
        assert any(
            kind == "Warning" and reason == "InvalidSpec" and SUGGESTION in message
            for kind, reason, message in events(cluster, "default", name)
        )
    finally:
        cluster.kubectl("delete", "mlroles", name, "--wait=false")


def explain_role(operator: OperatorProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return operator.cli("explain-role", *args)


def test_explain_role_resolves_a_built_in_role_from_azure(
    operator: OperatorProcess, azlocal: AzLocal
) -> None:
    azlocal.admin("DELETE", "requests")
    # The operator's least privilege reads role definitions in its resource groups.
    answer = explain_role(operator, "AzureML Data Scientist", "--scope", RG_ML, "-o", "json")
    assert answer.returncode == 0, answer.stderr
    report = json.loads(answer.stdout)
    assert report["role"].startswith('built-in role "AzureML Data Scientist"')
    workspaces = report["actions"][f"{ML}/workspaces"]
    # workspaces/*/read covers the workspace itself; the notActions take writes and keys.
    assert "read" in workspaces["allows"]
    assert {"write", "delete", "listKeys/action"} <= set(workspaces["denies"])
    assert "write" in report["actions"][f"{ML}/workspaces/computes"]["denies"]
    assert "write" in report["actions"][f"{ML}/workspaces/onlineEndpoints"]["allows"]
    assert report["summary"]["write"] > 0
    # (The session's operator may be cleaning up other tests' role assignments meanwhile;
    # explain-role reads role definitions.)
    writes = [
        r
        for r in azlocal.admin("GET", "requests")
        if r["method"] != "GET"
        and "/providers/Microsoft.Authorization/roleDefinitions" in r["path"]
    ]
    assert writes == [], "explain-role wrote"
    by_guid = explain_role(
        operator, "f6c7c914-8db3-469d-8ca1-694a8f32e121", "--scope", RG_ML, "-o", "json"
    )
    assert json.loads(by_guid.stdout)["actions"] == report["actions"]


def test_explain_role_reads_an_mlrole_from_the_cluster_and_from_files(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    name = f"explained-{namespace}"
    body = manifest(name, [f"{ML}/workspaces/onlineEndpoints/read", "*/read"])
    cluster.kubectl("apply", "-f", "-", input=body)
    try:
        text = explain_role(operator, name)
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith(f'MLRole {name} ("{name}") allows ')
        assert f"  {ML}/workspaces/onlineEndpoints\n    allows  read" in text.stdout
        assert "Not resolved (they reach providers outside the catalog): */read" in text.stdout
        (tmp_path / "role.yaml").write_text(body)
        from_file = explain_role(operator, "-f", str(tmp_path))
        assert from_file.stdout == text.stdout
    finally:
        cluster.kubectl("delete", "mlroles", name, "--wait=false")
    missing = explain_role(operator, f"no-such-role-{namespace}", "--scope", RG_ML)
    assert missing.returncode == 1
    assert f"no MLRole and no role definition named 'no-such-role-{namespace}' at {RG_ML}" in (
        missing.stderr
    )
