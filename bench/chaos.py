"""Crash, fault and lose status: nothing leaked, duplicated, missing or stuck.

    .venv/bin/python bench/chaos.py [--n 200] [--kills 50] [--seed 1]
    .venv/bin/python bench/chaos.py --faults [--replication-delay 300]

The world is the tests' (real kube-apiserver, azlocal over HTTPS in its own process). The
workload: N WorkloadIdentities of every form (7 in 10 managed identities; then service
principals with a certificate in a Secret, with a client secret, and with a certificate
in Key Vault), 2N MLRoleBindings (Reader and AzureML Data Scientist at a workspace; every
tenth identity's second binding grants a custom MLRole instead, and every twentieth
grants Reader again, so two bindings share one assignment), and one MLRole.

Kill loop (default): the operator is SIGKILLed at random moments (1-5 s apart) and
restarted, `--kills` times in all: during the converge, during spec changes (roles
swapped, service accounts added) and during the mass delete. Between the phases, with
the operator left alone, every object must become Ready, and the full Azure inventory
(from azlocal's own state: identities, federated credentials, applications, their keys
and secrets, role assignments, custom roles, vault certificates) must equal the specs:
0 leaked, 0 duplicated, 0 missing. After the converge, every object's status is wiped
(a restore from a backup without status) and the operator restarted: it must find what
it owns and make nothing twice. After the mass delete: 0 left, no stuck finalizer.

With --faults, no kills: azlocal answers 5% of requests 500/503, resets 2% of
connections and adds latency jitter, with a replication delay (`--replication-delay`,
default 300 s) for new principals; the workload converges, changes and is deleted with
nothing lost, and the Ready reasons seen meanwhile are only ones that pass by themselves.

Prints a table per phase (markdown) and exits non-zero when an invariant fails. Loopback
only.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "localcluster"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "operator"))

from scale import AzLocalProcess, compile_operator, create_all  # noqa: E402

from aml_identity.reconcile.names import assignment_owner  # noqa: E402
from localcluster import LocalCluster  # noqa: E402
from support.operator import OperatorProcess, wait_crds_established  # noqa: E402
from support.world import RG_IDENTITIES, RG_ML, SUB, WORKSPACE  # noqa: E402

API = "identity.aml.dev/v1alpha1"
GROUP_PATH = "/apis/identity.aml.dev/v1alpha1"
NAMESPACES = 4
ML_ROLE = "chaos-monitor"
ML_ROLE_NAME = "Chaos Endpoint Monitor"
BUILT_IN = {
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "AzureML Data Scientist": "f6c7c914-8db3-469d-8ca1-694a8f32e121",
}
FORMS = ("managed",) * 7 + ("secret-certificate", "client-secret", "vault-certificate")
PLURALS = ("workloadidentities", "mlrolebindings")
# Ready reasons that pass by themselves (besides Reconciled): what --faults may show.
PASSING = {
    "Reconciled",
    "Reconciling",
    "WaitingForDependency",
    "WaitingForPrincipalReplication",
    "Throttled",
    "AzureError",  # a 5xx or a reset: retried
    "Deleting",
}
OWNER_TAG = "aml-identity.uid"
MANAGED_BY = ("aml-identity.managed-by", "aml-identity-operator")


def form(i: int) -> str:
    return FORMS[i % len(FORMS)]


def identity_spec(i: int, vault_url: str, extra_account: bool = False) -> dict[str, Any]:
    accounts = [{"name": f"sa-{i}", "create": True}]
    if extra_account:
        accounts.append({"name": f"sa-{i}-b", "create": True})
    kind = form(i)
    if kind == "managed":
        return {
            "managedIdentity": {"resourceGroup": RG_IDENTITIES, "location": "westeurope"},
            "serviceAccounts": accounts,
        }
    credential: dict[str, Any]
    if kind == "secret-certificate":
        credential = {"certificate": {"secretName": f"wi-{i}-cert"}}
    elif kind == "client-secret":
        credential = {"clientSecret": {"secretName": f"wi-{i}-secret"}}
    else:
        credential = {
            "certificate": {"keyVault": {"vaultUrl": vault_url, "certificateName": f"chaos-{i}"}}
        }
    return {
        "servicePrincipal": {"displayName": f"chaos-{i}", "credential": credential},
        "serviceAccounts": accounts,
    }


def binding_role(i: int, j: int, swapped: bool = False) -> dict[str, str]:
    if j == 1 and i % 10 == 3:
        return {"mlRole": ML_ROLE}
    if j == 1 and i % 20 == 5:
        return {"builtIn": "Reader"}  # the same grant as binding 0: one shared assignment
    names = ("Reader", "AzureML Data Scientist")
    return {"builtIn": names[(j + int(swapped)) % 2]}


def world(n: int, vault_url: str, changed: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """(plural, namespace, body) of the workload; `changed`: the spec changes of phase 2
    (every fourth identity gets a second service account; every third one's bindings swap
    their built-in roles)."""
    made: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(n):
        namespace = f"chaos-{i % NAMESPACES}"
        extra = changed and i % 4 == 0
        made.append((
            "workloadidentities", namespace,
            {"apiVersion": API, "kind": "WorkloadIdentity",
             "metadata": {"name": f"wi-{i}", "namespace": namespace},
             "spec": identity_spec(i, vault_url, extra)},
        ))  # fmt: skip
    for i in range(n):
        namespace = f"chaos-{i % NAMESPACES}"
        for j in (0, 1):
            swapped = changed and i % 3 == 0
            made.append((
                "mlrolebindings", namespace,
                {"apiVersion": API, "kind": "MLRoleBinding",
                 "metadata": {"name": f"wi-{i}-{j}", "namespace": namespace},
                 "spec": {"role": binding_role(i, j, swapped),
                          "subjects": [{"workloadIdentity": f"wi-{i}"}],
                          "scope": {"resourceId": WORKSPACE}}},
            ))  # fmt: skip
    return made


def policy(vault_url: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MLAccessPolicy",
        "metadata": {"name": "bench-chaos"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"aml-chaos": "true"}},
            "scopes": [{"subscription": SUB}],
            "roles": [{"builtIn": list(BUILT_IN), "mlRoles": [ML_ROLE]}],
            "identities": {
                "managedIdentities": [{"resourceGroup": RG_IDENTITIES}],
                "servicePrincipals": {
                    "credentialKinds": ["Certificate", "ClientSecret"],
                    "keyVaults": [vault_url],
                },
            },
        },
    }


def ml_role() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MLRole",
        "metadata": {"name": ML_ROLE},
        "spec": {
            "roleName": ML_ROLE_NAME,
            "permissions": {
                "actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"]
            },
            "assignableScopes": [RG_ML],
        },
    }


# --- the cluster's side --------------------------------------------------------------


def listed(cluster: LocalCluster, plural: str) -> list[dict[str, Any]]:
    status, body = cluster.request("GET", f"{GROUP_PATH}/{plural}")
    if status != 200:
        raise RuntimeError(f"listing {plural}: {status} {body[:200]!r}")
    return list(json.loads(body)["items"])


def ready_reason(obj: dict[str, Any]) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            current = condition.get("observedGeneration") == obj["metadata"].get("generation")
            return str(condition["reason"]) if current else "(stale)"
    return None


@dataclass
class Observer:
    """Polls the custom resources: how many are Ready, and every Ready reason seen."""

    cluster: LocalCluster
    reasons: Counter[str] = field(default_factory=Counter)

    def objects(self) -> list[dict[str, Any]]:
        return [o for p in (*PLURALS, "mlroles") for o in listed(self.cluster, p)]

    def not_ready(self) -> list[str]:
        pending = []
        for obj in self.objects():
            reason = ready_reason(obj)
            if reason is not None:
                self.reasons[reason] += 1
            if reason != "Reconciled":
                meta = obj["metadata"]
                pending.append(f"{meta.get('namespace', '')}/{meta['name']}: {reason}")
        return pending

    def remaining(self) -> list[str]:
        return [
            f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']} "
            f"finalizers={o['metadata'].get('finalizers')}"
            for o in self.objects()
        ]


def wipe_status(cluster: LocalCluster) -> int:
    """Every object's status removed, as a restore from a backup without status."""
    wiped = 0
    for plural in (*PLURALS, "mlroles"):
        for obj in listed(cluster, plural):
            meta = obj["metadata"]
            where = f"namespaces/{meta['namespace']}/" if meta.get("namespace") else ""
            path = f"{GROUP_PATH}/{where}{plural}/{meta['name']}/status"
            body = {"apiVersion": API, "kind": obj["kind"], "metadata": meta, "status": {}}
            status, answer = cluster.request("PUT", path, body)
            if status != 200:
                raise RuntimeError(f"wiping {path}: {status} {answer[:200]!r}")
            wiped += 1
    return wiped


# --- Azure's side, from azlocal's own state -----------------------------------------


@dataclass
class Inventory:
    """What exists in Azure that the operator made, keyed by what it is for."""

    identities: Counter[str] = field(default_factory=Counter)  # "<ns>/<wi>"
    credentials: Counter[str] = field(default_factory=Counter)  # "<ns>/<wi>:<fic name>"
    applications: Counter[str] = field(default_factory=Counter)  # "<ns>/<wi>"
    keys: Counter[str] = field(default_factory=Counter)  # "<ns>/<wi>" per managed key
    secrets: Counter[str] = field(default_factory=Counter)  # "<ns>/<wi>" per managed secret
    assignments: Counter[str] = field(default_factory=Counter)  # "<principal>|<role guid>"
    custom_roles: Counter[str] = field(default_factory=Counter)  # role name
    vault_certificates: Counter[str] = field(default_factory=Counter)  # certificate name
    kubernetes_secrets: Counter[str] = field(default_factory=Counter)  # "<ns>/<name>"

    def parts(self) -> dict[str, Counter[str]]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Counter)}


def _ours(tags: dict[str, str]) -> bool:
    return tags.get(MANAGED_BY[0]) == MANAGED_BY[1]


def azure_inventory(az: AzLocalProcess, path: Path, cluster: LocalCluster) -> Inventory:
    az.admin("POST", "save", {"path": str(path)})
    state = json.loads(path.read_text())
    found = Inventory()
    identity_of: dict[str, str] = {}
    for resource in state["resources"].values():
        tags = resource.get("tags") or {}
        if resource["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities" and _ours(tags):
            key = f"{tags['aml-identity.namespace']}/{tags['aml-identity.name']}"
            found.identities[key] += 1
            identity_of[resource["id"].lower()] = key
    for resource in state["resources"].values():
        if resource["type"].endswith("/federatedIdentityCredentials"):
            parent = resource["id"].rsplit("/federatedIdentityCredentials/", 1)[0].lower()
            if parent in identity_of:
                found.credentials[f"{identity_of[parent]}:{resource['name']}"] += 1
    for app in state["applications"].values():
        tags = dict(t.split(":", 1) for t in app.get("tags") or [] if ":" in t)
        if not _ours(tags):
            continue
        key = f"{tags['aml-identity.namespace']}/{tags['aml-identity.name']}"
        found.applications[key] += 1
        for certificate in app.get("certificates") or []:
            if str(certificate.get("display_name", "")).startswith("aml-identity"):
                found.keys[key] += 1
        for secret in app.get("secrets") or []:
            if str(secret.get("display_name", "")).startswith("aml-identity"):
                found.secrets[key] += 1
    for assignment in state["role_assignments"].values():
        if assignment_owner(assignment.get("description")) is not None:
            guid = assignment["role_definition_id"].rsplit("/", 1)[-1].lower()
            found.assignments[f"{assignment['principal_id']}|{guid}"] += 1
    for definition in state["role_definitions"].values():
        if definition["role_type"] == "CustomRole" and definition["role_name"] == ML_ROLE_NAME:
            found.custom_roles[definition["role_name"]] += 1
    for vault in state.get("vaults", {}).values():
        for certificate in vault.get("certificates", {}).values():
            live = certificate.get("deleted_at") is None and certificate.get("versions")
            if live and str(certificate["name"]).startswith("chaos-"):
                found.vault_certificates[certificate["name"]] += 1
    status, body = cluster.request(
        "GET", "/api/v1/secrets?labelSelector=identity.aml.dev%2Fworkload-identity-uid"
    )
    if status == 200:
        for secret in json.loads(body)["items"]:
            meta = secret["metadata"]
            found.kubernetes_secrets[f"{meta['namespace']}/{meta['name']}"] += 1
    return found


def expected_inventory(cluster: LocalCluster, n: int, changed: bool) -> Inventory:
    """What the specs (and the Ready identities' principal ids) call for."""
    want = Inventory()
    principals: dict[str, str] = {}
    for obj in listed(cluster, "workloadidentities"):
        meta, status = obj["metadata"], obj.get("status") or {}
        principals[f"{meta['namespace']}/{meta['name']}"] = str(status.get("principalId"))
    custom = next(
        (
            str((o.get("status") or {}).get("roleDefinitionName"))
            for o in listed(cluster, "mlroles")
        ),
        "",
    )
    for i in range(n):
        key = f"chaos-{i % NAMESPACES}/wi-{i}"
        kind = form(i)
        accounts = [f"sa-{i}"] + ([f"sa-{i}-b"] if changed and i % 4 == 0 else [])
        if kind == "managed":
            want.identities[key] += 1
            for account in accounts:
                want.credentials[f"{key}:k8s-{account}"] += 1
        else:
            want.applications[key] += 1
            if kind == "client-secret":
                want.secrets[key] += 1
                want.kubernetes_secrets[f"chaos-{i % NAMESPACES}/wi-{i}-secret"] += 1
            else:
                want.keys[key] += 1
            if kind == "secret-certificate":
                want.kubernetes_secrets[f"chaos-{i % NAMESPACES}/wi-{i}-cert"] += 1
            if kind == "vault-certificate":
                want.vault_certificates[f"chaos-{i}"] += 1
        grants = set()
        for j in (0, 1):
            role = binding_role(i, j, changed and i % 3 == 0)
            guid = BUILT_IN[role["builtIn"]] if "builtIn" in role else custom
            grants.add(f"{principals.get(key)}|{guid}")
        for grant in grants:
            want.assignments[grant] += 1
    want.custom_roles[ML_ROLE_NAME] += 1
    return want


def compare(found: Inventory, want: Inventory) -> dict[str, dict[str, int]]:
    """Per part: leaked (not in the specs), duplicated (made twice), missing."""
    result = {}
    for part, have in found.parts().items():
        expected = want.parts()[part]
        result[part] = {
            "found": sum(have.values()),
            "leaked": sum(c for k, c in have.items() if k not in expected),
            "duplicated": sum(
                c - expected[k] for k, c in have.items() if k in expected and c > expected[k]
            ),
            "missing": sum(c - have.get(k, 0) for k, c in expected.items() if have.get(k, 0) < c),
        }
    return result


# --- the run --------------------------------------------------------------------------


@dataclass
class Chaos:
    cluster: LocalCluster
    az: AzLocalProcess
    operator: OperatorProcess
    rng: random.Random
    kills_left: int
    killed: int = 0
    log: list[str] = field(default_factory=list)

    def kill_while(self, busy: Any, share: int) -> int:
        """Up to `share` SIGKILLs at random moments 1-5 s apart while `busy()` holds."""
        done = 0
        while done < share and self.kills_left > 0 and busy():
            time.sleep(self.rng.uniform(1.0, 5.0))  # the chaos schedule itself
            self.operator.kill()
            self.operator.start()
            done += 1
            self.killed += 1
            self.kills_left -= 1
        return done


def apply_in_batches(cluster: LocalCluster, changes: list[tuple[str, str, dict[str, Any]]]) -> None:
    for start in range(0, len(changes), 20):
        batch = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [b for _, _, b in changes[start : start + 20]],
        }
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                        input=json.dumps(batch))  # fmt: skip


class VerboseOperator(OperatorProcess):
    """The operator with kopf's own debug log (--verbose), to see what a restart waits on."""

    def start(self) -> OperatorProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aml_identity.cli", "run", "--verbose"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self


def wait_for(what: str, check: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        if check():
            return time.monotonic() - started
        time.sleep(2)  # polling the API server for the outcome, bounded by `timeout`
    raise SystemExit(f"chaos: timed out after {timeout:.0f} s waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="WorkloadIdentities (2N bindings)")
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1, help="random seed of the kill times")
    parser.add_argument("--faults", action="store_true", help="faults instead of kills")
    parser.add_argument("--replication-delay", type=float, default=300.0)
    parser.add_argument("--resync", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=1200.0, help="per phase")
    parser.add_argument("--verbose", action="store_true", help="the operator logs kopf's debug")
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 (a kill schedule, not a secret)
    work = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    compile_operator()
    cluster = LocalCluster(work / "cluster")
    cluster.start()
    az: AzLocalProcess | None = None
    operator: OperatorProcess | None = None
    failures: list[str] = []
    phases: list[dict[str, Any]] = []
    try:
        (work / "azlocal").mkdir()
        az = AzLocalProcess(work / "azlocal", cluster.ca_file, throttling=False, latency_ms=20.0)
        vault_url = az.env()["AZLOCAL_KEYVAULT_URL"]
        azlocal = az
        if args.faults:
            az.settings(
                serverErrorRate=0.05,
                resetRate=0.02,
                jitterMs=200,
                replicationDelaySeconds=args.replication_delay,
            )
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        wait_crds_established(cluster)
        for i in range(NAMESPACES):
            body = {"metadata": {"name": f"chaos-{i}", "labels": {"aml-chaos": "true"}}}
            cluster.request("POST", "/api/v1/namespaces", body)
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(policy(vault_url)))
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(ml_role()))
        create_all(cluster, world(args.n, vault_url))
        (work / "operator").mkdir()
        kind = VerboseOperator if args.verbose else OperatorProcess
        operator = kind(cluster, az, work / "operator", resync=args.resync)  # type: ignore[arg-type]  # the process stands in for the in-process AzLocal
        operator.env["AML_IDENTITY_RESYNC_JITTER"] = "0.1"
        operator.env["AML_IDENTITY_CLUSTER_ID"] = "chaos"
        observer = Observer(cluster)
        chaos = Chaos(cluster, az, operator, rng, 0 if args.faults else args.kills)
        shares = [args.kills * 2 // 5, args.kills * 3 // 10]  # converge, changes; the rest: delete
        operator.start()

        def phase(name: str, changed: bool, started: float, kills: int) -> None:
            took = wait_for(
                f"every object Ready ({name})", lambda: not observer.not_ready(), args.timeout
            )
            result = compare(
                azure_inventory(azlocal, work / f"state-{name.split()[0]}.json", cluster),
                expected_inventory(cluster, args.n, changed),
            )
            bad = {
                p: r for p, r in result.items() if r["leaked"] or r["duplicated"] or r["missing"]
            }
            if bad:
                failures.append(f"{name}: {bad}")
            phases.append(
                {"phase": name, "kills": kills, "seconds": round(time.monotonic() - started, 1),
                 "quiet_to_ready": round(took, 1), "inventory": result}
            )  # fmt: skip

        # 1. Converge under kills.
        started = time.monotonic()
        kills = chaos.kill_while(lambda: bool(observer.not_ready()), shares[0])
        phase("converge", False, started, kills)
        # 2. Lost status: a restore without status, then a restart.
        started = time.monotonic()
        operator.stop()
        wiped = wipe_status(cluster)
        operator.start()
        phase(f"status wiped ({wiped} objects)", False, started, 0)
        # 3. Spec changes under kills.
        started = time.monotonic()
        changes = [
            item
            for item, before in zip(
                world(args.n, vault_url, True), world(args.n, vault_url), strict=True
            )
            if item[2]["spec"] != before[2]["spec"]
        ]
        # Applied in batches while the operator is being killed.
        applying = threading.Thread(target=apply_in_batches, args=(cluster, changes), daemon=True)
        applying.start()
        kills = chaos.kill_while(
            lambda: applying.is_alive() or bool(observer.not_ready()), shares[1]
        )
        applying.join()
        phase(f"spec changes ({len(changes)} objects)", True, started, kills)
        # 4. Mass delete under kills.
        started = time.monotonic()
        for plural in (*PLURALS, "mlroles"):
            cluster.kubectl("delete", plural, "--all", "--all-namespaces", "--wait=false")
        kills = chaos.kill_while(lambda: bool(observer.remaining()), chaos.kills_left)
        took = wait_for("every object gone", lambda: not observer.remaining(), args.timeout)
        left = compare(azure_inventory(az, work / "state-deleted.json", cluster), Inventory())
        if any(r["found"] for r in left.values()):
            failures.append(f"after the mass delete: {left}")
        seconds = round(time.monotonic() - started, 1)
        phases.append(
            {"phase": "mass delete", "kills": kills, "seconds": seconds,
             "quiet_to_ready": round(took, 1), "inventory": left}
        )  # fmt: skip
        reasons = dict(observer.reasons)
        if args.faults:
            lasting = {r: c for r, c in reasons.items() if r not in PASSING and r != "(stale)"}
            if lasting:
                failures.append(f"reasons that need a person were shown: {lasting}")
        print(report(args, phases, reasons, chaos.killed, az))
        for failure in failures:
            print(f"FAILED: {failure}")
        return 1 if failures else 0
    finally:
        if operator is not None:
            operator.stop()
        if az is not None:
            az.stop()
        cluster.stop()


def report(
    args: argparse.Namespace,
    phases: list[dict[str, Any]],
    reasons: dict[str, int],
    killed: int,
    az: AzLocalProcess,
) -> str:
    counters = az.counters()
    injected = {
        name: sum(c["count"] for c in counters if c["operation"] == name)
        for name in ("injected-fault", "injected-reset")
    }
    mode = (
        f"faults: 5% 500/503, 2% resets, 200 ms jitter, {args.replication_delay:.0f} s "
        f"replication delay ({injected['injected-fault']} errors, "
        f"{injected['injected-reset']} resets injected)"
        if args.faults
        else f"{killed} SIGKILLs (seed {args.seed})"
    )
    lines = [
        f"{args.n} WorkloadIdentities, {2 * args.n} MLRoleBindings, 1 MLRole; {mode}",
        "",
        "| phase | kills | took | Ready (or gone) after the last kill "
        "| leaked | duplicated | missing |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        inv = p["inventory"].values()
        if p["phase"] == "mass delete":
            leaked, duplicated, missing = sum(r["found"] for r in inv), 0, 0
        else:
            leaked = sum(r["leaked"] for r in inv)
            duplicated = sum(r["duplicated"] for r in inv)
            missing = sum(r["missing"] for r in inv)
        lines.append(
            f"| {p['phase']} | {p['kills']} | {p['seconds']} s | {p['quiet_to_ready']} s "
            f"| {leaked} | {duplicated} | {missing} |"
        )
    if phases:
        compared = ", ".join(f"{part} {r['found']}" for part, r in phases[0]["inventory"].items())
        lines += ["", f"Azure objects compared (after the converge): {compared}"]
    lines.append("Ready reasons seen while polling: " + json.dumps(reasons, sort_keys=True))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
