"""How long certificate issuance and a rotation take end to end, on the local world.

    .venv/bin/python bench/rotation.py [--rotations 3] [--resync 5]

Starts the real control plane, azlocal and the operator (as the tests do), applies a
servicePrincipal WorkloadIdentity whose certificate lives in a Secret, with a short
lifetime (duration 90s, renewBefore 60s, overlap 10s), and watches:

- issuance: from `kubectl apply` (right after the operator process starts, so this
  includes its start-up) to a certificate in the Secret;
- lag: from a certificate's renewalTime to the Secret serving its successor. Rotation runs
  at the first reconcile after renewalTime, so one resync interval bounds it from above;
  reported as lag / resync (below 1 is within the bound);
- retire: from the switch to the previous key's removal; the floor is `overlap` (the key
  must stay that long), reported as retire / overlap (1.0 is ideal);
- Graph writes per rotation, from azlocal's request log; the floor is 2 (add the new key,
  remove the old one), reported as writes / 2.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "localcluster"))
sys.path.insert(0, str(REPO / "tests"))

from azlocal.server import AzLocal  # noqa: E402
from localcluster import LocalCluster  # noqa: E402
from support.operator import OperatorProcess, apply, get, wait_crds_established  # noqa: E402

OVERLAP = 10.0


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _served(cluster: LocalCluster, namespace: str) -> str | None:
    secret = get(cluster, "secret", "bench-credentials", namespace)
    if secret is None:
        return None
    return str(secret["metadata"]["annotations"].get("identity.aml.dev/key-id"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=3)
    parser.add_argument("--resync", type=float, default=5.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rotation-"))
    cluster = LocalCluster(work / "cluster")
    cluster.start()
    az = AzLocal(work / "azlocal", trust_ca=[cluster.ca_file]).start()
    operator: OperatorProcess | None = None
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        wait_crds_established(cluster)
        cluster.kubectl("create", "namespace", "bench")
        (work / "operator").mkdir()
        operator = OperatorProcess(cluster, az, work / "operator", resync=args.resync).start()
        spec = {
            "servicePrincipal": {
                "displayName": "bench-rotation",
                "credential": {
                    "certificate": {"duration": "90s", "renewBefore": "60s", "overlap": "10s"}
                },
            }
        }
        started = time.monotonic()
        apply(cluster, "WorkloadIdentity", "bench", spec, "bench")
        while _served(cluster, "bench") is None:
            time.sleep(0.05)  # a benchmark sampling, not a test waiting
        issuance = time.monotonic() - started
        lags: list[float] = []
        retires: list[float] = []
        writes: list[int] = []
        for _ in range(args.rotations):
            az.admin("DELETE", "requests")
            status = (get(cluster, "wid", "bench", "bench") or {})["status"]["credential"]
            due, key = _time(status["renewalTime"]), status["keyId"]
            while _served(cluster, "bench") == key:
                time.sleep(0.05)
            switched = time.time()
            lags.append(switched - due)
            new_key = _served(cluster, "bench")
            while True:
                credential = (get(cluster, "wid", "bench", "bench") or {})["status"]["credential"]
                if credential.get("keyId") == new_key and not credential.get("previous"):
                    break
                time.sleep(0.05)
            retires.append(time.time() - switched)
            log: list[dict[str, Any]] = az.admin("GET", "requests")
            writes.append(sum(r["method"] in ("PATCH", "POST", "PUT", "DELETE")
                              and r["path"].startswith("/v1.0/") for r in log))  # fmt: skip
        report = {
            "issuance_seconds": round(issuance, 2),
            "lag_after_renewal_time_seconds": [round(x, 2) for x in lags],
            "lag_over_resync_bound": round(statistics.median(lags) / args.resync, 2),
            "retire_after_switch_seconds": [round(x, 2) for x in retires],
            "retire_over_overlap_floor": round(statistics.median(retires) / OVERLAP, 2),
            "graph_writes_per_rotation": writes,
            "writes_over_floor": round(statistics.median(writes) / 2, 2),
        }
        print(json.dumps(report, indent=1))
        secret = get(cluster, "secret", "bench-credentials", "bench") or {}
        assert b"PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"])
        return 0
    finally:
        if operator is not None:
            operator.stop()
        az.stop()
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main())
