"""The audit trail: every Azure write of a converge (ARM, Microsoft Graph, Key Vault)
carries a client request id derived from its resource, is recorded once in the
`aml_identity.audit` log and as an `AzureWrite` event on the resource, and at rest there
are none."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.operator import OperatorProcess, apply, events, wait_gone, wait_ready
from support.poll import wait_until
from support.world import RG_IDENTITIES

AUDIT = re.compile(r"audit (\{.*\})\s*$")
TOKEN = "/oauth2/"


def audit_records(operator: OperatorProcess, uid: str) -> list[dict[str, Any]]:
    found = (AUDIT.search(line) for line in operator.logs().splitlines())
    records = [json.loads(m.group(1)) for m in found if m]
    return [r for r in records if r["uid"] == uid]


def event_request_ids(cluster: LocalCluster, namespace: str, name: str) -> set[str]:
    """The client request ids the AzureWrite events on a resource name."""
    found = (
        re.search(r"client request id ([0-9a-f-]+)", message)
        for _, reason, message in events(cluster, namespace, name)
        if reason == "AzureWrite"
    )
    return {m.group(1) for m in found if m}


def azure_writes(azlocal: AzLocal, since: float) -> list[dict[str, Any]]:
    return [
        r
        for r in azlocal.admin("GET", "requests")
        if r["method"] not in ("GET", "HEAD") and TOKEN not in r["path"] and r["time"] >= since
    ]


def test_every_write_of_a_converge_is_audited_and_none_at_rest(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    started = time.time()
    vault = {"vaultUrl": azlocal.vault_url("kv-ml"), "certificateName": f"{namespace}-audited"}
    specs: dict[str, dict[str, Any]] = {
        "mi": {"managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}},
        "sp": {
            "servicePrincipal": {
                "displayName": f"{namespace}-audited",
                "credential": {"certificate": {"keyVault": vault}},
            }
        },
    }
    for name, spec in specs.items():
        apply(cluster, "WorkloadIdentity", name, spec, namespace)
    ready = {name: wait_ready(cluster, "wid", name, namespace, timeout=90) for name in specs}
    uids = {name: obj["metadata"]["uid"] for name, obj in ready.items()}

    for name, uid in uids.items():
        prefix = uid.replace("-", "")[:8]
        records = audit_records(operator, uid)
        assert records, f"no audit record for {name}"
        ids = {r["clientRequestId"] for r in records}
        assert len(ids) == len(records), "one record per write"
        for record in records:
            assert record["kind"] == "WorkloadIdentity"
            assert (record["namespace"], record["name"]) == (namespace, name)
            assert record["generation"] == ready[name]["metadata"]["generation"]
            assert record["clientRequestId"].startswith(prefix)
            assert record["method"] in ("PUT", "PATCH", "POST", "DELETE")
            assert 200 <= record["status"] < 300
            assert "?" not in record["target"]
        # Azure saw exactly these writes, under these ids.
        seen = {
            w["clientRequestId"]: w
            for w in azure_writes(azlocal, started)
            if (w["clientRequestId"] or "").startswith(prefix)
        }
        assert set(seen) == ids, name
        for record in records:
            assert seen[record["clientRequestId"]]["path"] == record["target"]
        # And each has its event on the resource.

        def posted(name: str = name, ids: set[str] = ids) -> bool | None:
            return ids <= event_request_ids(cluster, namespace, name) or None

        wait_until(posted, timeout=30, what=f"AzureWrite events for {name}")

    # The service principal's writes reach all three services.
    targets = [r["target"] for r in audit_records(operator, uids["sp"])]
    assert any(t.startswith("/v1.0/") for t in targets), targets  # Microsoft Graph
    assert any("/certificates/" in t for t in targets), targets  # Key Vault
    mi_targets = [r["target"] for r in audit_records(operator, uids["mi"])]
    assert any("/providers/Microsoft.ManagedIdentity/" in t for t in mi_targets), mi_targets

    # At rest: resyncs (every 5 s here) read Azure and write nothing.
    count = {uid: len(audit_records(operator, uid)) for uid in uids.values()}
    rest = time.time()
    identity = f"/{namespace}-mi"
    wait_until(
        lambda: (
            len(
                [
                    r
                    for r in azlocal.admin("GET", "requests")
                    if r["time"] > rest and identity in r["path"]
                ]
            )
            >= 2
            or None
        ),
        timeout=60,
        what="two resyncs of the managed identity",
    )
    assert {uid: len(audit_records(operator, uid)) for uid in uids.values()} == count
    for name in specs:
        cluster.kubectl("delete", "wid", name, "-n", namespace)
        wait_gone(cluster, "wid", name, namespace)
    # Deletes are audited too.
    deletes = [r for r in audit_records(operator, uids["mi"]) if r["method"] == "DELETE"]
    assert deletes, "the identity's delete was not audited"
