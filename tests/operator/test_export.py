"""`aml-identity export`: a hand-made setup, exported, applied and adopted with zero
Azure writes, and then reported with no undeclared grant (issue 13's round trip)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml

from aml_identity.reconcile.names import role_assignment_name, role_definition_name
from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, authorization_client, msi_client
from support.operator import OperatorProcess, apply_json, events, get, ready
from support.policies import GITHUB
from support.poll import wait_until
from support.world import RG_ML, SUB, WORKSPACE

WRITES = ("PUT", "PATCH", "DELETE", "POST")
PLURALS = {"WorkloadIdentity": "wid", "MLRoleBinding": "mlrb", "MLRole": "mlroles"}
SUBSCRIPTION_ASSIGNMENTS = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"
FALLBACK = "note: cannot read role assignments"


def _uncomment(text: str) -> dict[str, Any]:
    """The suggested policy file, as a platform admin would uncomment it."""
    lines = [line.removeprefix("# ") for line in text.splitlines()]
    docs = [d for d in yaml.safe_load_all("\n".join(lines)) if d]
    (policy,) = docs
    return dict(policy)


def _principal_listings(azlocal: AzLocal, since: float, principal: str) -> list[tuple[str, int]]:
    """(path, status) of each listing of `principal`'s role assignments since `since`:
    what export reads for each identity (`$filter=principalId eq '...'`)."""
    found = []
    for r in azlocal.admin("GET", "requests"):
        if r["method"] != "GET" or r["time"] <= since:
            continue
        filters = parse_qs(r.get("query") or "").get("$filter", [])
        if any(principal.lower() in f.lower() for f in filters):
            found.append((r["path"], r["status"]))
    return found


def _undeclared_grants(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The UndeclaredGrants condition once it is False (every grant declared)."""
    for condition in ((obj or {}).get("status") or {}).get("conditions", []):
        if condition["type"] == "UndeclaredGrants" and condition["status"] == "False":
            return dict(condition)
    return None


def test_export_round_trip_adopts_with_zero_writes(
    operator: OperatorProcess,
    cluster: LocalCluster,
    azlocal: AzLocal,
    bare_namespace: str,
    tmp_path: Path,
) -> None:
    ns = bare_namespace
    suffix = uuid.uuid4().hex[:6]
    name = f"Legacy_Trainer_{suffix}"
    wi = f"legacy-trainer-{suffix}"
    admin = admin_credential(azlocal)
    msi = msi_client(azlocal, admin)
    auth = authorization_client(azlocal, admin)
    # --- a hand-made world, as the platform's administrator -----------------------------
    cluster.kubectl("create", "serviceaccount", "trainer", "-n", ns)
    identity = msi.user_assigned_identities.create_or_update(
        "rg-ml",
        name,
        {
            "location": "westeurope",
            "tags": {"owner": "data-team", "aml-identity.adoptable-by": f"{ns}/{wi}"},
        },
    )
    principal = str(identity.principal_id)
    msi.federated_identity_credentials.create_or_update(
        "rg-ml",
        name,
        "k8s-trainer",
        {
            "issuer": cluster.issuer,
            "subject": f"system:serviceaccount:{ns}:trainer",
            "audiences": ["api://AzureADTokenExchange"],
        },
    )
    msi.federated_identity_credentials.create_or_update(
        "rg-ml",
        name,
        "github-main",
        {
            "issuer": GITHUB,
            "subject": f"repo:contoso/legacy-{suffix}:ref:refs/heads/main",
            "audiences": ["api://AzureADTokenExchange"],
        },
    )
    role_guid = str(uuid.uuid4())
    role_name = f"Legacy Endpoint Reader {suffix}"
    auth.role_definitions.create_or_update(
        RG_ML,
        role_guid,
        {
            "role_name": role_name,
            "description": "Reads online endpoints (made by hand).",
            "role_type": "CustomRole",
            "permissions": [
                {"actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"]}
            ],
            "assignable_scopes": [RG_ML],
        },
    )
    scientist = next(
        iter(auth.role_definitions.list(WORKSPACE, filter="roleName eq 'AzureML Data Scientist'"))
    )
    made = {
        WORKSPACE: (str(uuid.uuid4()), str(scientist.id), "Granted by hand for training"),
        RG_ML: (
            str(uuid.uuid4()),
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
            "hand-made grant",
        ),
    }
    for scope, (assignment, role, description) in made.items():
        auth.role_assignments.create(
            scope,
            assignment,
            {
                "role_definition_id": role,
                "principal_id": principal,
                "principal_type": "ServicePrincipal",
                "description": description,
            },
        )
    policy_name = ""
    try:
        before = _azure_state(msi, auth, name, principal, role_guid)
        # --- export -----------------------------------------------------------------
        out = tmp_path / "exported"
        exporting = time.time()
        exported = operator.cli("export", "--scope", RG_ML, "--namespace", ns, "-o", str(out))
        assert exported.returncode == 0, exported.stderr
        print(exported.stderr)  # shown with -s, and on failure
        # The operator reads role assignments in the whole subscription (azlocal's seed
        # gives it the read-only Auditor role there): export lists the principal's
        # assignments there once, and needs no fallback to the scope.
        assert FALLBACK not in exported.stderr, exported.stderr
        assert _principal_listings(azlocal, exporting, principal) == [
            (SUBSCRIPTION_ASSIGNMENTS, 200)
        ]
        files = sorted(p.name for p in out.iterdir())
        binding_scientist = "azureml-data-scientist-ws-prod"
        mlrole = f"legacy-endpoint-reader-{suffix}"
        binding_custom = f"{mlrole}-rg-ml"
        assert files == sorted(
            [
                f"mlrole-{mlrole}.yaml",
                f"mlrolebinding-{binding_custom}.yaml",
                f"mlrolebinding-{binding_scientist}.yaml",
                "policy.suggested.yaml",
                f"workloadidentity-{wi}.yaml",
            ]
        ), exported.stderr
        objects = {
            p.name: yaml.safe_load(p.read_text())
            for p in out.iterdir()
            if p.name != "policy.suggested.yaml"
        }
        wid = objects[f"workloadidentity-{wi}.yaml"]
        assert wid["metadata"]["annotations"] == {"identity.aml.dev/adopt": "true"}
        assert wid["spec"] == {
            "managedIdentity": {"resourceGroup": "rg-ml", "location": "westeurope", "name": name},
            "serviceAccounts": [{"name": "trainer"}],
            "federatedCredentials": [
                {
                    "name": "github-main",
                    "issuer": GITHUB,
                    "subject": f"repo:contoso/legacy-{suffix}:ref:refs/heads/main",
                    "audiences": ["api://AzureADTokenExchange"],
                }
            ],
        }
        role = objects[f"mlrole-{mlrole}.yaml"]["spec"]
        assert role == {
            "roleName": role_name,
            "description": "Reads online endpoints (made by hand).",
            "permissions": {
                "actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"]
            },
            "assignableScopes": [RG_ML],
        }
        assert objects[f"mlrolebinding-{binding_scientist}.yaml"]["spec"] == {
            "role": {"builtIn": "AzureML Data Scientist"},
            "subjects": [{"workloadIdentity": wi}],
            "scope": {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}},
            "description": "Granted by hand for training",
        }
        assert objects[f"mlrolebinding-{binding_custom}.yaml"]["spec"] == {
            "role": {"mlRole": mlrole},
            "subjects": [{"workloadIdentity": wi}],
            "scope": {"resourceGroup": {"name": "rg-ml"}},
            "description": "hand-made grant",
        }
        # The consent tag is there already; the policy is suggested, never applied.
        assert "Every identity already carries its owner's consent tag." in exported.stderr
        assert get(cluster, "mlap", f"adopt-{ns}") is None
        # The same objects as one YAML stream on stdout.
        streamed = operator.cli("export", "--scope", RG_ML, "--namespace", ns)
        assert streamed.returncode == 0, streamed.stderr
        print(streamed.stdout)
        assert sorted(
            (d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(streamed.stdout)
        ) == sorted((d["kind"], d["metadata"]["name"]) for d in objects.values())
        # --- a platform admin applies the suggested policy; the team applies the rest --
        policy = _uncomment((out / "policy.suggested.yaml").read_text())
        assert policy["spec"]["adoption"] == {"resourceGroups": [{"name": "rg-ml"}]}
        policy_name = policy["metadata"]["name"]
        apply_json(cluster, policy)
        azlocal.admin("DELETE", "requests")
        cluster.kubectl("apply", "-f", str(out))
        assert get(cluster, "mlap", policy_name) is not None
        applied = [(d["kind"], d["metadata"]["name"]) for d in objects.values()]

        def all_ready() -> bool:
            return all(
                ready(get(cluster, PLURALS[kind], obj, None if kind == "MLRole" else ns))
                for kind, obj in applied
            )

        wait_until(all_ready, timeout=90, what="every exported object to be Ready")
        planned = operator.cli("plan", "-f", str(out))
        print(planned.stdout)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        lines = planned.stdout.strip().splitlines()
        assert len(lines) == len(applied), planned.stdout
        assert all(line.endswith(": no changes") for line in lines), planned.stdout
        # One more resync of each after Ready, and still nothing written.
        settled = time.time()

        def resynced() -> bool:
            log = azlocal.admin("GET", "requests")
            later = [r["path"].lower() for r in log if r["method"] == "GET" and r["time"] > settled]
            return any(
                "/resourcegroups/rg-ml/providers/microsoft.managedidentity/" in p for p in later
            ) and any("roleassignments" in p for p in later)

        wait_until(resynced, timeout=30, what="a resync after Ready")
        # --- the adopted identity holds no grant that no binding declares ------------
        exported_wids = [
            d["metadata"]["name"] for d in objects.values() if d["kind"] == "WorkloadIdentity"
        ]
        assert exported_wids == [wi]
        for exported_wid in exported_wids:
            declared = wait_until(
                partial(lambda w: _undeclared_grants(get(cluster, "wid", w, ns)), exported_wid),
                timeout=30,
                what=f"UndeclaredGrants=False on WorkloadIdentity {exported_wid}",
            )
            assert declared["reason"] == "AllGrantsDeclared", declared
            assert f"/subscriptions/{SUB}" in declared["message"], declared
            found = get(cluster, "wid", exported_wid, ns)
            assert found is not None
            assert found["status"]["undeclaredGrants"] == []
            # Never reported on the way either: the binding that declares each grant
            # was applied with the identity, and a grant is reported only once it has
            # stayed undeclared for the grace period.
            warned = [r for _, r, _ in events(cluster, ns, exported_wid) if "Undeclared" in r]
            assert warned == []
        reported = operator.cli("report", "-o", "json")
        assert reported.returncode == 0, reported.stderr
        report = json.loads(reported.stdout)
        refs = {f"{ns}/{w}" for w in exported_wids}
        listed = {f"{e['namespace']}/{e['name']}": e for e in report["identities"]}
        assert set(listed) >= refs, reported.stdout
        assert [
            f
            for f in report["findings"]
            if f["identity"] in refs and f["kind"] == "UndeclaredGrant"
        ] == [], reported.stdout
        assert [listed[r]["undeclared"] for r in sorted(refs)] == [[] for _ in refs]
        # --- the same identity, exported by the workspace it holds a role at ----------
        # (the subscription's identities with an assignment at or below it; every one of
        # their assignments, so the same manifests, and a plan with nothing to change)
        by_workspace = tmp_path / "by-workspace"
        exporting = time.time()
        # The operator's own roles read identities only where it keeps them: listing the
        # subscription's is refused, with what to do; a reader (here the administrator)
        # can.
        args = ("export", "--scope", WORKSPACE, "--namespace", ns, "-o", str(by_workspace))
        refused = operator.cli(*args)
        assert refused.returncode == 1, refused.stderr
        assert "run export as a reader" in refused.stderr, refused.stderr
        administrator = azlocal.admin_env()
        reader = {k: administrator[k] for k in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")}

        def as_reader(*words: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "aml_identity.cli", *words],
                env={**operator.env, **reader},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        exported_ws = as_reader(*args)
        assert exported_ws.returncode == 0, exported_ws.stderr
        print(exported_ws.stderr)
        assert FALLBACK not in exported_ws.stderr, exported_ws.stderr
        assert _principal_listings(azlocal, exporting, principal) == [
            (SUBSCRIPTION_ASSIGNMENTS, 200)
        ]
        # This test's identity and role, the same; its grants in bindings of the same role
        # and scope (other tests' identities may hold roles there too, and share them).
        mine = [yaml.safe_load(p.read_text()) for p in out.iterdir() if p.name in objects]
        by_ws = [
            yaml.safe_load(p.read_text())
            for p in by_workspace.iterdir()
            if p.name != "policy.suggested.yaml"
        ]
        for doc in mine:
            if doc["kind"] != "MLRoleBinding":
                assert doc in by_ws, exported_ws.stderr
                continue
            assert any(
                other["kind"] == "MLRoleBinding"
                and (other["spec"]["role"], other["spec"]["scope"])
                == (doc["spec"]["role"], doc["spec"]["scope"])
                and {"workloadIdentity": wi} in other["spec"]["subjects"]
                for other in by_ws
            ), exported_ws.stderr
        files = [
            arg
            for name in sorted(objects)
            if not name.startswith("mlrolebinding-")
            for arg in ("-f", str(by_workspace / name))
        ]
        planned_ws = operator.cli("plan", *files)
        assert planned_ws.returncode == 0, planned_ws.stdout + planned_ws.stderr
        assert "change(s)" not in planned_ws.stdout
        watched = [
            name.lower(),
            role_guid,
            role_definition_name("tests", mlrole),
            *(assignment for assignment, _, _ in made.values()),
            *(role_assignment_name(scope, role, principal) for scope, (_, role, _) in made.items()),
        ]
        writes = [
            f"{r['method']} {r['path']}"
            for r in azlocal.admin("GET", "requests")
            if r["method"] in WRITES and any(w.lower() in r["path"].lower() for w in watched)
        ]
        assert writes == [], "adoption wrote to Azure"
        assert _azure_state(msi, auth, name, principal, role_guid) == before
        wid_status = get(cluster, "wid", wi, ns)
        assert wid_status is not None
        assert wid_status["status"]["principalId"] == principal
        assignments = get(cluster, "mlrb", binding_scientist, ns)
        assert assignments is not None
        assert [(a["name"], a["created"]) for a in assignments["status"]["assignments"]] == [
            (made[WORKSPACE][0], False)
        ]
        # An object of the same name with another spec is never overwritten by an export.
        cluster.kubectl(
            "patch", "mlrb", binding_scientist, "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"description": "changed in the cluster"}}),
        )  # fmt: skip
        clashing = as_reader("export", "--scope", WORKSPACE, "-n", ns)
        assert clashing.returncode == 1, clashing.stderr
        assert f"MLRoleBinding {ns}/{binding_scientist}" in clashing.stderr
        assert "already exist in the cluster" in clashing.stderr
        # Taken out of Git again, the adopted objects go back to their owner as they are:
        # the identity and its credentials, the custom role, the grants.
        cluster.kubectl("delete", "-f", str(out), "--wait=true")
        for doc in objects.values():
            kind, meta = PLURALS[doc["kind"]], doc["metadata"]
            wait_until(
                partial(lambda k, n: get(cluster, k, n, ns if k != "mlroles" else None) is None,
                        kind, meta["name"]),
                timeout=60,
                what=f"{kind} {meta['name']} to be deleted",
            )  # fmt: skip
        assert _azure_state(msi, auth, name, principal, role_guid) == before
    finally:
        if policy_name:
            cluster.kubectl("delete", "mlap", policy_name, "--ignore-not-found")
        for scope, (assignment, _, _) in made.items():
            auth.role_assignments.delete(scope, assignment)
        auth.role_definitions.delete(RG_ML, role_guid)  # released by its MLRole
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        cluster.kubectl(
            "delete", "mlroles", f"legacy-endpoint-reader-{suffix}", "--ignore-not-found",
            "--wait=false",
        )  # fmt: skip
        msi.user_assigned_identities.delete("rg-ml", name)


def _azure_state(msi: Any, auth: Any, name: str, principal: str, role_guid: str) -> Any:
    """What the administrator reads of the hand-made world (GETs)."""
    found = msi.user_assigned_identities.get("rg-ml", name)
    credentials = sorted(
        (c.name, c.issuer, c.subject, tuple(c.audiences))
        for c in msi.federated_identity_credentials.list("rg-ml", name)
    )
    role = auth.role_definitions.get(RG_ML, role_guid)
    permissions = [(tuple(p.actions or []), tuple(p.not_actions or [])) for p in role.permissions]
    assignments = sorted(
        (a.name, a.scope, a.role_definition_id, a.description, a.condition)
        for a in auth.role_assignments.list_for_subscription(filter=f"principalId eq '{principal}'")
    )
    return (
        dict(found.tags or {}),
        found.principal_id,
        credentials,
        (role.role_name, role.description, permissions, tuple(role.assignable_scopes)),
        assignments,
    )
