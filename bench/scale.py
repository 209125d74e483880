"""How the operator scales: converge N identities and 2N bindings, then rest.

    .venv/bin/python bench/scale.py [--n 300] [--namespaces 10] [--resync 120]
                                    [--rest 150] [--latency-ms 50] [--no-throttling]

The world is the tests' (real kube-apiserver, azlocal over HTTPS), but azlocal runs in
its own process with ARM's token buckets enforced (`--throttling`) and 50 ms of latency,
as a new user would try it. The cluster gets N WorkloadIdentities (managed identity,
one service account each) spread over the namespaces, and 2N MLRoleBindings (AzureML
Data Scientist and Reader at the workspace ws-prod, one each per identity), all created
through the API before the operator starts. Then the operator starts and the benchmark
watches:

- converge: time from the operator's start to all Ready (watch streams, not polling),
  against the write floor: the writes needed (2 per identity: the identity and its
  federated credential; 1 per binding) drained from ARM's write bucket (200, then 10/s);
- Azure requests from azlocal's counters: writes made vs needed, reads, 429 answers;
- the operator process: peak RSS (VmHWM), most open sockets, CPU seconds, and the time
  from start to its first status write;
- at rest, for `--rest` seconds after all Ready (one resync period by default, which
  holds exactly one resync of every object): Azure reads and writes, and Kubernetes
  writes to the operator's objects (watch events), per resource and per resync.

With --seed (for sizes whose write floor would take hours), the world is converged
before the operator starts (bench/seed.py: the operator's workflows run in the benchmark's
process with azlocal's throttling off), so the run measures a restart on a converged world:
the time until every resource has been compared once (kopf's diff-base annotation is on
every resource), the Azure requests that took (writes should be 0), memory, and the rest.

Prints one table (markdown) and, with --json, the raw numbers. Loopback only.
"""

from __future__ import annotations

import argparse
import compileall
import concurrent.futures
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "localcluster"))
sys.path.insert(0, str(REPO / "tests"))

import seed  # noqa: E402

from azlocal.cli import read_env_file  # noqa: E402
from localcluster import LocalCluster  # noqa: E402
from support.operator import OperatorProcess, wait_crds_established  # noqa: E402
from support.world import RG_IDENTITIES, SUB, WORKSPACE  # noqa: E402

API = "identity.aml.dev/v1alpha1"
GROUP_PATH = "/apis/identity.aml.dev/v1alpha1"
ROLES = ("AzureML Data Scientist", "Reader")
WRITE_BUCKET, WRITE_REFILL = 200, 10.0
READ_REFILL = 25.0
HANDLED_ANNOTATION = "identity.aml.dev/last-handled-configuration"


class AzLocalProcess:
    """`azlocal serve` in its own process, so it never shares a GIL with the benchmark."""

    def __init__(self, workdir: Path, trust_ca: Path, *, throttling: bool, latency_ms: float):
        env_file = workdir / "env"
        command = [
            sys.executable, "-m", "azlocal.cli", "serve", "--port", "0",
            "--state-dir", str(workdir / "state"), "--env-file", str(env_file),
            "--trust-ca", str(trust_ca), "--latency-ms", str(latency_ms),
        ]  # fmt: skip
        if throttling:
            command.append("--throttling")
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=(workdir / "azlocal.log").open("wb")
        )
        deadline = time.monotonic() + 60
        while not env_file.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                raise SystemExit("azlocal did not start")
            time.sleep(0.05)  # waiting for a process to write its file, bounded above
        self._env = read_env_file(env_file)
        self.context = ssl.create_default_context(cafile=self._env["AZLOCAL_CA_BUNDLE"])

    def env(self) -> dict[str, str]:
        return dict(self._env)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """azlocal's admin API (docs/azlocal.md)."""
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{self._env['AZLOCAL_ARM_ENDPOINT']}/_azlocal/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "X-Azlocal-Admin-Key": self._env["AZLOCAL_ADMIN_KEY"],
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, context=self.context, timeout=30) as response:  # noqa: S310
            payload = response.read()
        return json.loads(payload) if payload else None

    def counters(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "counters"))

    def settings(self, **changes: Any) -> None:
        self.admin("PATCH", "settings", changes)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@dataclass
class Requests:
    reads: int = 0
    writes: int = 0
    throttled: int = 0
    total: int = 0

    @classmethod
    def since(cls, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> Requests:
        counts: dict[tuple[str, int], int] = {}
        for row in after:
            counts[(row["operation"], row["status"])] = row["count"]
        for row in before:
            key = (row["operation"], row["status"])
            counts[key] = counts.get(key, 0) - row["count"]
        result = cls()
        for (operation, status), n in counts.items():
            if operation in ("token", "unrouted") or operation.startswith(("oauth", "graph/")):
                continue
            result.total += n
            if status == 429:
                result.throttled += n
            if operation.endswith(("/read", "/list")):
                result.reads += n
            else:
                result.writes += n if status < 400 else 0
        return result


@dataclass
class Watcher:
    """Ready per object and every MODIFIED event of the operator's kinds, from watches."""

    cluster: LocalCluster
    plurals: tuple[str, ...]
    ready: dict[str, bool] = field(default_factory=dict)
    # Objects the operator has handled once (kopf's diff-base annotation is on them).
    handled: set[str] = field(default_factory=set)
    # The last body of each object, and, while `explain` is on, what each MODIFIED event
    # changed (e.g. "status.conditions", "metadata.annotations.<key>").
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    explain: bool = False
    changed: dict[str, int] = field(default_factory=dict)
    # A few condition changes at rest, before and after (for the --json report).
    condition_changes: list[dict[str, Any]] = field(default_factory=list)
    first_status: float | None = None
    all_ready: float | None = None
    modified: int = 0
    expected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        for plural in self.plurals:
            threading.Thread(target=self._watch, args=(plural,), daemon=True).start()

    def _watch(self, plural: str) -> None:
        host, port = self.cluster.server.removeprefix("https://").split(":")
        version = "0"
        while not self.stop.is_set():
            connection = http.client.HTTPSConnection(
                host, int(port), context=self.cluster._ssl(), timeout=300
            )
            # The server ends each watch within 120 s and sends bookmarks, so a quiet
            # stream neither times out here nor loses its place.
            path = (
                f"{GROUP_PATH}/{plural}?watch=1&resourceVersion={version}"
                "&timeoutSeconds=120&allowWatchBookmarks=true"
            )
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                for line in response:
                    if self.stop.is_set():
                        break
                    event = json.loads(line)
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] == "ERROR":
                        version = "0"
                        break
                    if event["type"] != "BOOKMARK":
                        self._seen(plural, event["type"], obj)
            except OSError:
                pass  # a broken stream: watch again from the last version seen
            finally:
                connection.close()

    def _seen(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = f"{plural}/{meta['namespace']}/{meta['name']}"
        conditions = (obj.get("status") or {}).get("conditions") or []
        now = time.monotonic()
        with self.lock:
            if kind == "MODIFIED":
                self.modified += 1
            if conditions and kind == "MODIFIED" and self.first_status is None:
                self.first_status = now
            self.ready[key] = any(
                c["type"] == "Ready"
                and c["status"] == "True"
                and c.get("observedGeneration") == meta.get("generation")
                for c in conditions
            )
            if HANDLED_ANNOTATION in (meta.get("annotations") or {}):
                self.handled.add(key)
            if self.explain and kind == "MODIFIED" and key in self.last:
                for path in what_changed(self.last[key], obj):
                    self.changed[path] = self.changed.get(path, 0) + 1
                    if path == "status.conditions" and len(self.condition_changes) < 5:
                        before = (self.last[key].get("status") or {}).get("conditions")
                        self.condition_changes.append(
                            {"object": key, "before": before, "after": conditions}
                        )
            self.last[key] = obj
            count = sum(self.ready.values())
            if self.all_ready is None and self.expected and count == self.expected:
                self.all_ready = now

    def handled_count(self) -> int:
        with self.lock:
            return len(self.handled)

    def count(self) -> int:
        with self.lock:
            return sum(self.ready.values())


@dataclass
class Process:
    pid: int
    peak_sockets: int = 0

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def sample(self) -> None:
        try:
            fds = os.listdir(f"/proc/{self.pid}/fd")
            sockets = sum(
                os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith("socket:")
                for fd in fds
                if os.path.exists(f"/proc/{self.pid}/fd/{fd}")
            )
        except OSError:
            return
        self.peak_sockets = max(self.peak_sockets, sockets)

    def peak_rss_mib(self) -> float:
        return self._status("VmHWM") / 1024

    def rss_mib(self) -> float:
        return self._status("VmRSS") / 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def policy() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MLAccessPolicy",
        "metadata": {"name": "bench-scale"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"aml-bench": "true"}},
            "scopes": [{"subscription": SUB}],
            "roles": [{"builtIn": list(ROLES)}],
            "identities": {"managedIdentities": [{"resourceGroup": RG_IDENTITIES}]},
        },
    }


def objects(
    n: int, namespaces: int, bindings: int | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(plural, namespace, body) for N identities and `bindings` bindings (2N by default:
    binding k grants ROLES[(k // N) % 2] to identity k % N)."""
    bindings = 2 * n if bindings is None else bindings
    made: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(n):
        namespace = f"bench-{i % namespaces}"
        made.append((
            "workloadidentities", namespace,
            {
                "apiVersion": API, "kind": "WorkloadIdentity",
                "metadata": {"name": f"wi-{i}", "namespace": namespace},
                "spec": {
                    "managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"},
                    "serviceAccounts": [{"name": f"sa-{i}", "create": True}],
                },
            },
        ))  # fmt: skip
    for k in range(bindings):
        i, j = k % n, k // n
        namespace = f"bench-{i % namespaces}"
        made.append((
            "mlrolebindings", namespace,
            {
                "apiVersion": API, "kind": "MLRoleBinding",
                "metadata": {"name": f"wi-{i}-{j}", "namespace": namespace},
                "spec": {
                    "role": {"builtIn": ROLES[j % len(ROLES)]},
                    "subjects": [{"workloadIdentity": f"wi-{i}"}],
                    "scope": {"resourceId": WORKSPACE},
                },
            },
        ))  # fmt: skip
    return made


def create_all(cluster: LocalCluster, made: list[tuple[str, str, dict[str, Any]]]) -> None:
    def post(item: tuple[str, str, dict[str, Any]]) -> None:
        plural, namespace, body = item
        status, answer = cluster.request(
            "POST", f"{GROUP_PATH}/namespaces/{namespace}/{plural}", body
        )
        if status not in (201, 409):
            raise RuntimeError(f"creating {plural} {namespace}: {status} {answer[:300]!r}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(post, made))


def what_changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The fields a write changed: status and spec fields, metadata annotations (by key),
    labels and finalizers; resourceVersion and managedFields left out."""
    paths: list[str] = []
    for part in ("spec", "status"):
        old, new = before.get(part) or {}, after.get(part) or {}
        paths += [f"{part}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    for part in ("annotations", "labels"):
        old, new = before["metadata"].get(part) or {}, after["metadata"].get(part) or {}
        paths += [
            f"metadata.{part}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
        ]
    for part in ("finalizers", "generation", "deletionTimestamp"):
        if before["metadata"].get(part) != after["metadata"].get(part):
            paths.append(f"metadata.{part}")
    return paths or ["(nothing but resourceVersion)"]


def reconciles(metrics_port: int) -> float:
    """The operator's count of finished reconciles (every kind and result)."""
    try:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aml_identity_reconciles_total{")
    )


def compile_operator() -> None:
    """Byte code for the operator's modules, as the image ships it (docker/install.sh).
    From a checkout with PYTHONDONTWRITEBYTECODE (as on this project's machine), every
    start would compile them again: a cost no installed operator pays."""
    compileall.compile_dir(REPO / "operator", quiet=1)


def write_floor(writes_needed: int) -> float:
    return max(0.0, (writes_needed - WRITE_BUCKET) / WRITE_REFILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="WorkloadIdentities")
    parser.add_argument(
        "--bindings",
        type=int,
        default=None,
        help="MLRoleBindings (default 2N; Azure allows 4,000 role assignments per subscription)",
    )
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--resync", type=float, default=120.0)
    parser.add_argument(
        "--rest", type=float, default=None, help="seconds at rest (default: one resync period)"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--no-throttling", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up converging after")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers")
    parser.add_argument(
        "--seed", action="store_true", help="converge before the operator starts (at rest)"
    )
    args = parser.parse_args()
    # Any window of one resync period holds exactly one resync of every object.
    rest = args.rest if args.rest is not None else args.resync
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    compile_operator()
    cluster = LocalCluster(work / "cluster")
    cluster.start()
    az: AzLocalProcess | None = None
    operator: OperatorProcess | None = None
    watcher = Watcher(cluster, ("workloadidentities", "mlrolebindings"))
    try:
        (work / "azlocal").mkdir()
        az = AzLocalProcess(
            work / "azlocal", cluster.ca_file,
            throttling=not args.no_throttling, latency_ms=args.latency_ms,
        )  # fmt: skip
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        wait_crds_established(cluster)
        for i in range(args.namespaces):
            body = {"metadata": {"name": f"bench-{i}", "labels": {"aml-bench": "true"}}}
            cluster.request("POST", "/api/v1/namespaces", body)
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(policy()))
        bindings = 2 * args.n if args.bindings is None else args.bindings
        made = objects(args.n, args.namespaces, bindings)
        applied = time.monotonic()
        create_all(cluster, made)
        applied = time.monotonic() - applied
        writes_needed = 0 if args.seed else 2 * args.n + bindings
        (work / "operator").mkdir()
        operator = OperatorProcess(cluster, az, work / "operator", resync=args.resync)  # type: ignore[arg-type]
        operator.env["AML_IDENTITY_RESYNC_JITTER"] = "0.1"
        seeded = None
        if args.seed:
            seeded = time.monotonic()
            az.settings(throttling=False, latencyMs=0)
            not_ready = seed.converge(operator.env, ["workloadidentities", "mlrolebindings"])
            az.settings(throttling=not args.no_throttling, latencyMs=args.latency_ms)
            seeded = time.monotonic() - seeded
            if not_ready:
                raise SystemExit(f"seeding left {not_ready} resources not Ready")
        watcher.expected = len(made)
        watcher.start()
        before = az.counters()
        started = time.monotonic()
        operator.start()
        assert operator.process is not None
        process = Process(operator.process.pid)
        deadline = started + args.timeout
        first_reconcile = None
        while args.seed and time.monotonic() < started + 60:
            # A restart writes no status: the first finished reconcile, from the metrics.
            if reconciles(operator.metrics_port) > 0:
                first_reconcile = time.monotonic() - started
                break
            time.sleep(0.05)  # sampling the metrics, not synchronising
        compared_at: float | None = None
        while time.monotonic() < deadline:
            process.sample()
            if operator.process.poll() is not None:
                raise SystemExit(f"the operator exited: see {operator.log_path}")
            if args.seed:
                if watcher.handled_count() >= len(made):
                    compared_at = time.monotonic()
                    break
            elif watcher.all_ready is not None:
                break
            time.sleep(1)  # sampling the process, not synchronising
        converged = Requests.since(before, az.counters())
        cpu = process.cpu_seconds()
        ready_at = compared_at if args.seed else watcher.all_ready
        converge = (ready_at - started) if ready_at is not None else None
        first = (watcher.first_status - started) if watcher.first_status else None
        rest_report: dict[str, Any] = {}
        if ready_at is not None and rest > 0:
            at_rest = az.counters()
            modified = watcher.modified
            watcher.explain = True
            until = time.monotonic() + rest
            while time.monotonic() < until:
                process.sample()
                time.sleep(1)  # sampling the process, not synchronising
            rested = Requests.since(at_rest, az.counters())
            resyncs = rest / args.resync
            per = len(made) * resyncs
            rest_report = {
                "seconds": rest,
                "azure_reads": rested.reads,
                "azure_writes": rested.writes,
                "azure_429": rested.throttled,
                "kubernetes_writes": watcher.modified - modified,
                "kubernetes_writes_changed": dict(watcher.changed),
                "condition_changes": watcher.condition_changes,
                "reads_per_resource_per_resync": round(rested.reads / per, 3),
                "read_refill_share": round(rested.reads / rest / READ_REFILL, 3),
                "ready_at_end": watcher.count(),
            }
        floor = write_floor(writes_needed)
        report = {
            "n": args.n,
            "seeded_in": round(seeded, 1) if seeded is not None else None,
            "bindings": bindings,
            "namespaces": args.namespaces,
            "resync": args.resync,
            "objects_created_in": round(applied, 1),
            "all_ready_seconds": round(converge, 1) if converge is not None else None,
            "ready": watcher.count() if ready_at is None else len(made),
            "write_floor_seconds": floor,
            "ratio": round(converge / floor, 3) if converge is not None and floor else None,
            "writes_made": converged.writes,
            "writes_needed": writes_needed,
            "requests": converged.total,
            "answered_429": converged.throttled,
            "share_429": round(converged.throttled / max(1, converged.total), 4),
            "reads": converged.reads,
            "reads_per_object": round(converged.reads / len(made), 2),
            "peak_rss_mib": round(process.peak_rss_mib(), 1),
            "rss_mib_at_end": round(process.rss_mib(), 1),
            "peak_sockets": process.peak_sockets,
            "cpu_seconds_converge": round(cpu, 1),
            "start_to_first_status": round(first, 2) if first is not None else None,
            "start_to_first_reconcile": (
                round(first_reconcile, 2) if first_reconcile is not None else None
            ),
            "rest": rest_report,
        }
        print(table(report))
        if args.json:
            print(json.dumps(report, indent=1))
        return 0 if ready_at is not None else 1
    finally:
        watcher.stop.set()
        if operator is not None:
            operator.stop()
        if az is not None:
            az.stop()
        cluster.stop()


def table(r: dict[str, Any]) -> str:
    rest = r["rest"]
    rows = [
        ("identities / bindings / namespaces", f"{r['n']} / {r['bindings']} / {r['namespaces']}"),
        ("all Ready (from operator start)", f"{r['all_ready_seconds']} s" if r["all_ready_seconds"]
         else f"never ({r['ready']} Ready)"),
        ("write floor, ratio", f"{r['write_floor_seconds']:.0f} s, {r['ratio']}x"),
    ] if r["seeded_in"] is None else [
        ("identities / bindings / namespaces", f"{r['n']} / {r['bindings']} / {r['namespaces']}"),
        ("seeded (converged without the operator) in", f"{r['seeded_in']} s"),
        ("every resource compared once (from operator start)",
         f"{r['all_ready_seconds']} s" if r["all_ready_seconds"] else "never"),
        ("start to first finished reconcile", f"{r['start_to_first_reconcile']} s"),
    ]  # fmt: skip
    rows += [
        ("Azure writes made / needed", f"{r['writes_made']} / {r['writes_needed']}"),
        ("Azure requests, answered 429", f"{r['requests']}, {r['answered_429']} "
         f"({100 * r['share_429']:.2f}%)"),
        ("Azure reads (per object)", f"{r['reads']} ({r['reads_per_object']})"),
        ("operator peak RSS", f"{r['peak_rss_mib']} MiB"),
        ("most open sockets", str(r["peak_sockets"])),
        ("operator CPU to all Ready", f"{r['cpu_seconds_converge']} s"),
        ("start to first status", f"{r['start_to_first_status']} s"),
    ]  # fmt: skip
    if rest:
        rows += [
            (f"at rest ({rest['seconds']:.0f} s, resync {r['resync']:.0f} s): Azure reads",
             f"{rest['azure_reads']} ({rest['reads_per_resource_per_resync']} per resource "
             f"per resync, {100 * rest['read_refill_share']:.1f}% of the read refill)"),
            ("at rest: Azure writes, Kubernetes writes",
             f"{rest['azure_writes']}, {rest['kubernetes_writes']}"
             + (f" (changed: {rest['kubernetes_writes_changed']})"
                if rest["kubernetes_writes"] else "")),
            ("at rest: Ready at the end", str(rest["ready_at_end"])),
        ]  # fmt: skip
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
