"""Prometheus metrics the operator exports (one registry, names documented in docs/)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
