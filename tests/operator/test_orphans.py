"""Orphans: what a resource left in Azure with deletionPolicy: Orphan is found by the
periodic scan (metric), listed by `aml-identity orphans` and in the access report, and
removed only by `aml-identity orphans --delete`, which leaves every live object alone."""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, authorization_client, msi_client
from support.graph import application
from support.operator import OperatorProcess, apply, wait_gone, wait_ready
from support.poll import wait_until
from support.world import RG_IDENTITIES, RG_ML

MI = {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}


def listed(operator: OperatorProcess, namespace: str) -> list[dict[str, Any]]:
    result = operator.cli("orphans", "-n", namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def orphan_metric(operator: OperatorProcess, kind: str) -> float:
    for line in operator.metrics().splitlines():
        if line.startswith(f'aml_identity_orphans{{kind="{kind}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def test_orphans_are_found_listed_and_removed_only_when_asked(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    orphan = {"managedIdentity": MI, "deletionPolicy": "Orphan"}
    apply(cluster, "WorkloadIdentity", "left", orphan, namespace)
    apply(cluster, "WorkloadIdentity", "kept", {"managedIdentity": MI}, namespace)
    sp = {"servicePrincipal": {"displayName": f"{namespace}-left"}, "deletionPolicy": "Orphan"}
    apply(cluster, "WorkloadIdentity", "left-sp", sp, namespace)
    for name, subjects in (("left", ["left", "kept"]), ("kept", ["kept"])):
        binding = {
            "role": {"builtIn": "Reader"},
            "subjects": [{"workloadIdentity": s} for s in subjects],
            "scope": {"resourceGroup": {"name": "rg-ml"}},
            "deletionPolicy": "Orphan" if name == "left" else "Delete",
        }
        apply(cluster, "MLRoleBinding", name, binding, namespace)
    left = wait_ready(cluster, "wid", "left", namespace)["status"]
    left_sp = wait_ready(cluster, "wid", "left-sp", namespace)["status"]
    kept = wait_ready(cluster, "wid", "kept", namespace)["status"]
    left_grants = wait_ready(cluster, "mlrb", "left", namespace)["status"]["assignments"]
    [kept_grant] = wait_ready(cluster, "mlrb", "kept", namespace)["status"]["assignments"]
    assert listed(operator, namespace) == []  # everything has its resource

    for kind, name in (("mlrb", "left"), ("wid", "left"), ("wid", "left-sp")):
        cluster.kubectl("delete", kind, name, "-n", namespace)
        wait_gone(cluster, kind, name, namespace)

    # The orphaned binding's grant to "left" is an orphan; the one to "kept" is not: the
    # live binding "kept" records it (they shared it), whoever made it.
    found = listed(operator, namespace)
    by_kind = sorted((o["kind"], o["id"]) for o in found)
    left_ids = sorted(
        ("RoleAssignment", f"{RG_ML}/providers/Microsoft.Authorization/roleAssignments/{a['name']}")
        for a in left_grants
        if a["principalId"] == left["principalId"]
    )
    assert by_kind == sorted(
        [
            *left_ids,
            ("Application", left_sp["applicationObjectId"]),
            ("ManagedIdentity", left["resourceId"]),
        ]
    )
    owners = {o["kind"]: o["owner"] for o in found}
    assert owners["ManagedIdentity"] == f"WorkloadIdentity {namespace}/left"
    assert owners["RoleAssignment"] == f"MLRoleBinding {namespace}/left"

    # The periodic scan (every 10 s in tests) counts them; the report shows them.
    wait_until(
        lambda: (
            orphan_metric(operator, "ManagedIdentity") >= 1
            and orphan_metric(operator, "Application") >= 1
        ),
        timeout=40,
        what="the orphan metric to count them",
    )
    report = json.loads(operator.cli("report", "-o", "json").stdout)
    assert report["orphansNotScanned"] is None
    assert left["resourceId"] in {o["id"] for o in report["orphans"]}

    # Removed only when asked, and only they.
    deleted = operator.cli("orphans", "-n", namespace, "--delete")
    assert deleted.returncode == 0, deleted.stderr
    assert listed(operator, namespace) == []
    msi = msi_client(azlocal, admin_credential(azlocal))
    identity_name = left["resourceId"].rsplit("/", 1)[1]
    try:
        msi.user_assigned_identities.get(RG_IDENTITIES, identity_name)
        raise AssertionError("the orphaned identity is still there")
    except ResourceNotFoundError:
        pass
    assert application(azlocal, left_sp["clientId"]) is None
    assert msi.user_assigned_identities.get(RG_IDENTITIES, kept["resourceId"].rsplit("/", 1)[1])
    admin = authorization_client(azlocal, admin_credential(azlocal))
    kept_in_azure = admin.role_assignments.get(RG_ML, kept_grant["name"])
    assert kept_in_azure.principal_id == kept["principalId"]
    wait_ready(cluster, "wid", "kept", namespace)
    wait_ready(cluster, "mlrb", "kept", namespace)
