"""Prometheus metrics the operator exports (one registry, names documented in docs/)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "aml_identity_reconciles_total",
    "Reconciles by kind and result (ready, waiting, failed).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "aml_identity_reconcile_duration_seconds", "Time spent in one reconcile.", ["kind"]
)
AZURE_REQUESTS = Counter(
    "aml_identity_azure_requests_total",
    "HTTP requests to Azure by operation (resource type and method) and status code.",
    ["operation", "status"],
)
DRIFT_CORRECTIONS = Counter(
    "aml_identity_drift_corrections_total",
    "Azure objects changed or recreated because they no longer matched the spec.",
    ["kind"],
)
CREDENTIAL_EXPIRY = Gauge(
    "aml_identity_credential_expiry_timestamp_seconds",
    "Expiry (Unix time) of each WorkloadIdentity's served credential (slot=current) and of "
    "the one being retired (slot=previous). Alert when time() is close to it.",
    ["namespace", "name", "slot"],
)
POLICY_VIOLATIONS = Gauge(
    "aml_identity_policy_violations",
    "Resources that no MLAccessPolicy allows but that run on because every policy selecting "
    "their namespace says enforcement: Audit (1 while the violation lasts).",
    ["kind", "namespace", "name"],
)
UNDECLARED_GRANTS = Gauge(
    "aml_identity_undeclared_grants",
    "Role assignments to each WorkloadIdentity's principal, within the compared scopes, "
    "that no MLRoleBinding declares (made by hand or by another tool).",
    ["namespace", "name"],
)
ORPHANS = Gauge(
    "aml_identity_orphans",
    "Azure objects tagged with this cluster whose custom resource no longer exists, by "
    "kind, at the last scan (aml-identity orphans lists them; --delete removes them).",
    ["kind"],
)
POLICY_DENIALS = Counter(
    "aml_identity_policy_denials_total",
    "Reconciles and admission requests refused by MLAccessPolicy, by kind and where "
    "(admission or reconcile).",
    ["kind", "where"],
)
AZURE_PACED_SECONDS = Counter(
    "aml_identity_azure_paced_seconds_total",
    "Seconds ARM requests waited for the operator's own model of ARM's token buckets "
    "(reads, writes, deletes), instead of being answered 429.",
    ["bucket"],
)
LAST_SYNC = Gauge(
    "aml_identity_last_sync_timestamp_seconds",
    "When the last reconcile of each kind compared Azure with the specs (Unix time). "
    "Status is written only when it changes, so this is where the resync shows.",
    ["kind"],
)
