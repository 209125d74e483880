"""The access report: who can do what, where, and why. Pure: the caller passes what it
read from the cluster (WorkloadIdentities, MLRoleBindings, MLRoles, Pods) and the clock.

For every WorkloadIdentity: its form, credential and expiry, federations, every role it
holds at every scope with the binding that declares it (and, for an MLRole, how many
operations it allows), and the service accounts and running Pods that use it. Findings
come first, most serious first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from pydantic.alias_generators import to_camel

from aml_identity.api.mlrole import MLRole
from aml_identity.api.mlrolebinding import MLRoleBinding
from aml_identity.api.workloadidentity import WorkloadIdentity
from aml_identity.reconcile.binding import scope_id
from aml_identity.reconcile.conditions import find_condition
from aml_identity.reconcile.names import definition_guid
from aml_identity.reconcile.orphans import Orphan
from aml_identity.reconcile.policy import built_in_privilege, ml_role_privilege
from aml_identity.reconcile.role import counts_text

EXPIRY_WARNING = timedelta(days=30)
# The binding column of a grant no MLRoleBinding declares (csv, markdown).
UNDECLARED = "(undeclared)"
FORMATS = ("table", "json", "yaml", "csv", "markdown")
# Most serious first: the order findings are listed in.
SEVERITY = {
    "CredentialExpired": 0,
    "ClientSecret": 1,
    "PrivilegedRole": 2,
    "CredentialExpiring": 3,
    "NoBinding": 4,
    "NoUser": 5,
    "UndeclaredGrant": 6,
}


@dataclass(frozen=True)
class Grant:
    role: str
    scope: str
    binding: str  # namespace/name of the MLRoleBinding that declares it
    privileged: str | None = None  # why the role is privileged
    operations: dict[str, Any] | None = None  # an MLRole's status.operations


@dataclass(frozen=True)
class Undeclared:
    """A role assignment to the identity that no MLRoleBinding declares (its status)."""

    role_definition_id: str
    scope: str
    assignment: str
    role_name: str | None = None

    @property
    def role(self) -> str:
        return self.role_name or definition_guid(self.role_definition_id)


@dataclass(frozen=True)
class Federation:
    issuer: str
    subject: str


@dataclass(frozen=True)
class Identity:
    namespace: str
    name: str
    form: str  # ManagedIdentity or ServicePrincipal
    ready: str
    client_id: str | None
    principal_id: str | None
    credential: str | None  # Certificate, ClientSecret, or None (federation only)
    credential_expires: str | None
    federations: list[Federation] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    service_accounts: list[str] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)
    undeclared: list[Undeclared] = field(default_factory=list)
    # Signs in from outside the cluster: a credential, or a federation with another issuer.
    external: bool = False

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Finding:
    kind: str
    identity: str
    message: str


@dataclass(frozen=True)
class Report:
    generated: str
    findings: list[Finding]
    identities: list[Identity]
    # Azure objects of this cluster whose resource is gone (reconcile/orphans.py), and
    # why they were not looked for, if they were not.
    orphans: list[Orphan] = field(default_factory=list)
    orphans_not_scanned: str | None = None


def build(
    identities: Iterable[Mapping[str, Any]],
    bindings: Iterable[Mapping[str, Any]],
    ml_roles: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    *,
    issuer: str,
    subscription: str,
    now: datetime,
    orphans: Sequence[Orphan] = (),
    orphans_not_scanned: str | None = None,
) -> Report:
    roles = {r["metadata"]["name"]: MLRole.model_validate(r) for r in ml_roles}
    grants = _grants(bindings, roles, subscription)
    running = _running_pods(pods)
    entries = [
        _identity(body, grants, running, issuer)
        for body in sorted(
            identities, key=lambda b: (b["metadata"]["namespace"], b["metadata"]["name"])
        )
    ]
    findings = [f for entry in entries for f in _findings(entry, now)]
    findings.sort(key=lambda f: (SEVERITY[f.kind], f.identity))
    return Report(now.isoformat(), findings, entries, list(orphans), orphans_not_scanned)


def _grants(
    bindings: Iterable[Mapping[str, Any]], roles: Mapping[str, MLRole], subscription: str
) -> dict[str, list[Grant]]:
    """namespace/WorkloadIdentity name -> the grants bindings declare for it."""
    found: dict[str, list[Grant]] = {}
    for body in bindings:
        binding = MLRoleBinding.model_validate(body)
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        status = binding.status
        role_ref = binding.spec.role
        role = (
            (status.role_name if status else None)
            or role_ref.built_in
            or role_ref.ml_role
            or role_ref.role_definition_id
            or "?"
        )
        privileged = None
        operations = None
        if role_ref.built_in is not None or role_ref.role_definition_id is not None:
            guid = definition_guid(role_ref.role_definition_id or "")
            _, privileged = built_in_privilege(guid, role_ref.built_in or "")
        elif role_ref.ml_role is not None and role_ref.ml_role in roles:
            ml_role = roles[role_ref.ml_role]
            privileged = ml_role_privilege(ml_role.spec)
            if ml_role.status is not None and ml_role.status.operations is not None:
                counts = ml_role.status.operations
                operations = counts.model_dump(
                    by_alias=True, exclude={"not_resolved"} if not counts.not_resolved else set()
                )
        scope = (status.scope if status else None) or scope_id(binding.spec.scope, subscription)
        for subject in binding.spec.subjects:
            if subject.workload_identity is not None:
                grant = Grant(role, scope, f"{namespace}/{name}", privileged, operations)
                found.setdefault(f"{namespace}/{subject.workload_identity}", []).append(grant)
    return found


def _running_pods(pods: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(namespace, service account) -> names of its running Pods."""
    found: dict[tuple[str, str], list[str]] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        meta, spec = pod["metadata"], pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        found.setdefault((meta["namespace"], account), []).append(meta["name"])
    return found


def _identity(
    body: Mapping[str, Any],
    grants: Mapping[str, list[Grant]],
    running: Mapping[tuple[str, str], list[str]],
    issuer: str,
) -> Identity:
    resource = WorkloadIdentity.model_validate(body)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    spec, status = resource.spec, resource.status
    accounts = sorted({a.name for a in spec.service_accounts})
    federations = [
        Federation(issuer, f"system:serviceaccount:{namespace}:{account}") for account in accounts
    ] + [Federation(f.issuer, f.subject) for f in spec.federated_credentials]
    credential = status.credential if status else None
    condition = find_condition(status.conditions, "Ready") if status else None
    ready = condition.reason if condition else "Unknown"
    return Identity(
        namespace=namespace,
        name=name,
        form="ManagedIdentity" if spec.managed_identity is not None else "ServicePrincipal",
        ready=ready,
        client_id=status.client_id if status else None,
        principal_id=status.principal_id if status else None,
        credential=credential.kind if credential else None,
        credential_expires=(
            credential.not_after.isoformat() if credential and credential.not_after else None
        ),
        federations=federations,
        grants=grants.get(f"{namespace}/{name}", []),
        service_accounts=accounts,
        pods=sorted(p for a in accounts for p in running.get((namespace, a), [])),
        undeclared=[
            Undeclared(g.role_definition_id, g.scope, g.name, g.role_name)
            for g in (status.undeclared_grants if status else [])
        ],
        external=bool(credential and credential.kind) or bool(spec.federated_credentials),
    )


def _findings(entry: Identity, now: datetime) -> list[Finding]:
    found = []
    if entry.credential == "ClientSecret":
        found.append(
            Finding(
                "ClientSecret",
                entry.ref,
                "uses a client secret; prefer a certificate or federation",
            )
        )
    for grant in entry.grants:
        if grant.privileged:
            found.append(
                Finding(
                    "PrivilegedRole",
                    entry.ref,
                    f"holds {grant.role} at {grant.scope} ({grant.privileged}; "
                    f"binding {grant.binding})",
                )
            )
    if entry.credential_expires:
        expires = datetime.fromisoformat(entry.credential_expires)
        if expires.tzinfo is None:  # a hand-edited status: read it as UTC
            expires = expires.replace(tzinfo=UTC)
        if expires <= now:
            found.append(Finding("CredentialExpired", entry.ref, f"credential expired {expires}"))
        elif expires - now <= EXPIRY_WARNING:
            days = (expires - now).days
            found.append(
                Finding("CredentialExpiring", entry.ref, f"credential expires in {days} days")
            )
    if not entry.grants:
        found.append(Finding("NoBinding", entry.ref, "no MLRoleBinding grants it anything"))
    if not entry.pods and not entry.external:
        # Used outside the cluster (a credential, a federation with another issuer): no
        # Pod here says whether it is in use.
        found.append(Finding("NoUser", entry.ref, "no running Pod uses it"))
    for extra in entry.undeclared:
        found.append(
            Finding(
                "UndeclaredGrant",
                entry.ref,
                f"holds {extra.role} at {extra.scope} "
                f"(assignment {extra.assignment}), declared by no MLRoleBinding",
            )
        )
    return found


# --- output ---


def as_data(report: Report) -> dict[str, Any]:
    """The report as plain data, with the API's camelCase names."""
    camel: dict[str, Any] = _camel(asdict(report))
    return camel


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {to_camel(k): _camel(v) if k != "operations" else v for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def render(report: Report, output: str) -> str:
    if output == "json":
        return json.dumps(as_data(report), indent=2)
    if output == "yaml":
        return yaml.safe_dump(as_data(report), sort_keys=False)
    if output == "csv":
        return _csv(report)
    if output == "markdown":
        return _markdown(report)
    return _table(report)


def _role_text(grant: Grant) -> str:
    counts = f" [{counts_text(grant.operations)}]" if grant.operations else ""
    return f"{grant.role}{counts} at {grant.scope} ({grant.binding})"


def _rows(report: Report) -> list[dict[str, str]]:
    """One row per identity and grant (an identity without grants has one row)."""
    rows = []
    for entry in report.identities:
        grants: list[Grant | None] = [
            *entry.grants,
            *(Grant(u.role, u.scope, UNDECLARED) for u in entry.undeclared),
        ] or [None]
        for grant in grants:
            rows.append(
                {
                    "identity": entry.ref,
                    "form": entry.form,
                    "ready": entry.ready,
                    "clientId": entry.client_id or "",
                    "credential": entry.credential or "federation",
                    "expires": entry.credential_expires or "",
                    "role": grant.role if grant else "",
                    "scope": grant.scope if grant else "",
                    "binding": grant.binding if grant else "",
                    "serviceAccounts": " ".join(entry.service_accounts),
                    "pods": " ".join(entry.pods),
                }
            )
    return rows


def _csv(report: Report) -> str:
    out = io.StringIO()
    rows = _rows(report)
    fields = list(rows[0]) if rows else ["identity"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _markdown(report: Report) -> str:
    lines = [f"# Access report ({report.generated})", "", "## Findings", ""]
    lines += [f"- **{f.kind}** `{f.identity}`: {f.message}" for f in report.findings] or ["None."]
    lines += ["", "## Identities", ""]
    rows = _rows(report)
    if rows:
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|" + "---|" * len(rows[0]))
        lines += ["| " + " | ".join(v.replace("|", "\\|") for v in r.values()) + " |" for r in rows]
    lines += ["", "## Orphans", ""]
    lines += _orphan_lines(report, "- ")
    return "\n".join(lines) + "\n"


def _orphan_lines(report: Report, indent: str) -> list[str]:
    if report.orphans_not_scanned is not None:
        return [f"{indent}not looked for: {report.orphans_not_scanned}"]
    return [f"{indent}{o.kind} {o.id} (was {o.owner})" for o in report.orphans] or [f"{indent}none"]


def _table(report: Report) -> str:
    lines = ["FINDINGS"]
    lines += [f"  {f.kind:<19} {f.identity:<32} {f.message}" for f in report.findings] or ["  none"]
    for entry in report.identities:
        credential = entry.credential or "federation only"
        if entry.credential_expires:
            credential += f", expires {entry.credential_expires}"
        lines += [
            "",
            f"{entry.ref}  {entry.form}  {entry.ready}  client id {entry.client_id or '-'}",
            f"  credential   {credential}",
        ]
        lines += [f"  federation   {f.subject} ({f.issuer})" for f in entry.federations]
        lines += [f"  role         {_role_text(g)}" for g in entry.grants] or [
            "  role         none"
        ]
        lines += [
            f"  undeclared   {u.role} at {u.scope} (assignment {u.assignment})"
            for u in entry.undeclared
        ]
        lines.append(f"  used by      {', '.join(entry.pods) or 'no running Pod'}")
    lines += ["", "ORPHANS (Azure objects of this cluster whose resource is gone)"]
    lines += _orphan_lines(report, "  ")
    return "\n".join(lines) + "\n"
