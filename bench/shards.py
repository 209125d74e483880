"""Shards scale out: two shards with two Azure principals converge twice the work in the
time one shard converges half of it.

    .venv/bin/python bench/shards.py [--n 600] [--namespaces 10] [--latency-ms 50]

Two runs on fresh worlds (real kube-apiserver, azlocal in its own process with ARM's
token buckets per principal, `--throttling`, 50 ms latency):

1. one shard, its principal (the seeded operator's), N/2 WorkloadIdentities and N
   MLRoleBindings in half of the namespaces;
2. two shards, each owning half of the namespaces by label (`aml-shard=a|b`) with a
   principal of its own (the second created with the operator's roles), N identities and
   2N bindings in all.

ARM's limits are per principal, so the second run has twice the write budget for twice
the work: its time to all Ready over the first's is the measure (1.0 is perfect
scaling). Prints a markdown table; --json also prints the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import scale

from localcluster import LocalCluster
from support.operator import OperatorProcess, wait_crds_established

SHARD_LABEL = "aml-shard"


def run(shards: int, n: int, namespaces: int, latency_ms: float, timeout: float) -> dict[str, Any]:
    """Converge n identities (2n bindings) spread over `namespaces`, split between
    `shards` shards, each with its own principal. Returns the measures."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-shards-{shards}-"))
    cluster = LocalCluster(work / "cluster")
    cluster.start()
    az: scale.AzLocalProcess | None = None
    operators: list[OperatorProcess] = []
    watcher = scale.Watcher(cluster, ("workloadidentities", "mlrolebindings"))
    try:
        (work / "azlocal").mkdir()
        az = scale.AzLocalProcess(
            work / "azlocal", cluster.ca_file, throttling=True, latency_ms=latency_ms
        )
        cluster.kubectl("apply", "--server-side", "-f", str(scale.REPO / "crds"))
        wait_crds_established(cluster)
        names = "ab"[:shards]
        for i in range(namespaces):
            labels = {"aml-bench": "true", SHARD_LABEL: names[i % shards]}
            body = {"metadata": {"name": f"bench-{i}", "labels": labels}}
            cluster.request("POST", "/api/v1/namespaces", body)
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(scale.policy()))
        made = scale.objects(n, namespaces)
        scale.create_all(cluster, made)
        watcher.expected = len(made)
        watcher.start()
        for index, shard in enumerate(names):
            (work / f"operator-{shard}").mkdir()
            operator = OperatorProcess(
                cluster,
                az,  # type: ignore[arg-type]
                work / f"operator-{shard}",
                resync=600,
                shard=shard,
                shard_selector=f"{SHARD_LABEL}={shard}",
            )
            if index > 0:  # a principal of its own, with the operator's roles
                principal = az.admin(
                    "POST",
                    "principals",
                    {
                        "displayName": f"aml-identity-operator-{shard}",
                        "secret": True,
                        "rolesLike": "aml-identity-operator",
                    },
                )
                operator.env["AZURE_CLIENT_ID"] = principal["appId"]
                operator.env["AZURE_CLIENT_SECRET"] = principal["secret"]
            operators.append(operator)
        before = az.counters()
        started = time.monotonic()
        for operator in operators:
            operator.start()
        processes = [scale.Process(o.process.pid) for o in operators if o.process is not None]
        deadline = started + timeout
        while watcher.all_ready is None and time.monotonic() < deadline:
            for process in processes:
                process.sample()
            for operator in operators:
                if operator.process is not None and operator.process.poll() is not None:
                    raise SystemExit(f"an operator exited: see {operator.log_path}")
            time.sleep(1)  # sampling the processes, not synchronising
        requests = scale.Requests.since(before, az.counters())
        converge = watcher.all_ready - started if watcher.all_ready is not None else None
        writes_needed = 4 * n
        return {
            "shards": shards,
            "identities": n,
            "bindings": 2 * n,
            "all_ready_seconds": round(converge, 1) if converge is not None else None,
            "ready": watcher.count(),
            "write_floor_per_principal_seconds": scale.write_floor(writes_needed // shards),
            "writes_made": requests.writes,
            "writes_needed": writes_needed,
            "answered_429": requests.throttled,
            "requests": requests.total,
            "peak_rss_mib": [round(p.peak_rss_mib(), 1) for p in processes],
            "cpu_seconds": [round(p.cpu_seconds(), 1) for p in processes],
        }
    finally:
        watcher.stop.set()
        for operator in operators:
            operator.stop()
        if az is not None:
            az.stop()
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="identities in the two-shard run")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scale.compile_operator()
    one = run(1, args.n // 2, args.namespaces // 2, args.latency_ms, args.timeout)
    two = run(2, args.n, args.namespaces, args.latency_ms, args.timeout)
    ratio = (
        round(two["all_ready_seconds"] / one["all_ready_seconds"], 3)
        if one["all_ready_seconds"] and two["all_ready_seconds"]
        else None
    )
    rows: list[tuple[str, ...]] = [("", "one shard, half the work", "two shards, all the work")]
    for label, key in (
        ("identities / bindings", None),
        ("all Ready", "all_ready_seconds"),
        ("write floor per principal", "write_floor_per_principal_seconds"),
        ("Azure writes made / needed", None),
        ("answered 429", "answered_429"),
        ("operator peak RSS (MiB, per shard)", "peak_rss_mib"),
        ("operator CPU (s, per shard)", "cpu_seconds"),
    ):
        if label == "identities / bindings":
            cells = [f"{r['identities']} / {r['bindings']}" for r in (one, two)]
        elif label.startswith("Azure writes"):
            cells = [f"{r['writes_made']} / {r['writes_needed']}" for r in (one, two)]
        else:
            cells = [str(r[key]) for r in (one, two)]  # type: ignore[index]
        rows.append((label, *cells))
    lines = [f"| {' | '.join(row)} |" for row in rows]
    lines.insert(1, "|---|---|---|")
    print("\n".join(lines))
    print(f"\ntwo shards / one shard (time to all Ready): {ratio}x (1.0 is perfect scaling)")
    if args.json:
        print(json.dumps({"one": one, "two": two, "ratio": ratio}, indent=1))
    return 0 if ratio is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
