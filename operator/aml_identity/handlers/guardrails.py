"""kopf registrations for the guardrails: the policy and namespace indexes every decision
reads, the admission webhook, and the re-check of affected resources when a policy or a
namespace's labels change.

kopf fills every index before it calls any handler, so no reconcile ever decides on an
empty view of the policies after a restart (which would revoke everything).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from aml_identity.api import GROUP, VERSION
from aml_identity.api.mlaccesspolicy import MLAccessPolicySpec
from aml_identity.controllers import admission
from aml_identity.kube.cluster import POLICY_TRIGGER_ANNOTATION, Cluster
from aml_identity.metrics import POLICY_DENIALS
from aml_identity.reconcile.policy import Policy, PolicyBook
from aml_identity.reconcile.x509 import serving_certificate
from aml_identity.settings import Settings

log = logging.getLogger("aml_identity")
POLICY_INDEX = "policy_index"
NAMESPACE_INDEX = "namespace_index"
# The namespaced kinds a policy governs (MLRoles are cluster-scoped: admins write them).
GOVERNED = ("workloadidentities", "mlrolebindings")


class _Labels(Mapping[str, Mapping[str, str]]):
    """kopf's namespace index read as name -> labels, without copying it: every
    reconcile gets a view, and copying every namespace's labels each time would cost
    as much as there are namespaces."""

    def __init__(self, index: Mapping[str, Any]) -> None:
        self._index = index

    def __getitem__(self, name: str) -> Mapping[str, str]:
        for labels in self._index[name]:
            return dict(labels)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def namespace_labels(kwargs: Mapping[str, Any]) -> Mapping[str, Mapping[str, str]]:
    """Namespace name -> labels, from the index kopf passes handlers and filters."""
    return _Labels(kwargs.get(NAMESPACE_INDEX) or {})


def book(settings: Settings, kwargs: Mapping[str, Any]) -> PolicyBook:
    """A handler's view of the policies, from the indexes kopf passes it."""
    policies = kwargs.get(POLICY_INDEX) or {}
    return PolicyBook(
        policies=tuple(Policy(name, spec) for name, store in policies.items() for spec in store),
        namespace_labels=namespace_labels(kwargs),
        default_subscription=settings.subscription_id,
    )


def parse_policy(name: str, spec: Mapping[str, Any]) -> Policy | None:
    """A policy the operator can read, or None (logged): the CRD schema admits nothing
    invalid, but an older operator meeting a newer field must never let a policy it
    cannot read allow anything."""
    try:
        return Policy(name, MLAccessPolicySpec.model_validate(dict(spec)))
    except ValidationError as error:
        log.error("MLAccessPolicy %s cannot be read, ignored: %s", name, error)
        return None


async def live_policies(
    cluster: Cluster, settings: Settings, *, namespaces: bool = True
) -> PolicyBook:
    """The MLAccessPolicies (and namespace labels) in the cluster now, read from the API
    server rather than kopf's indexes: for the plan and azure-condition commands, and for
    admission, which a paused standby replica answers too (its indexes are not fed)."""
    listed = await cluster.list_cluster_custom("mlaccesspolicies")
    parsed = (parse_policy(i["metadata"]["name"], i.get("spec") or {}) for i in listed)
    return PolicyBook(
        policies=tuple(p for p in parsed if p is not None),
        namespace_labels=await cluster.all_namespace_labels() if namespaces else {},
        default_subscription=settings.subscription_id,
    )


class Seen:
    """What the change handlers saw last, to find who a change affects."""

    def __init__(self) -> None:
        self.policy_namespaces: dict[str, set[str]] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.ml_role_generations: dict[str, int] = {}


def register(registry: kopf.OperatorRegistry, settings: Settings, kinds: dict[str, str]) -> None:
    """`kinds`: plural -> kind of every kind the webhook checks."""
    seen = Seen()

    @kopf.index(GROUP, VERSION, "mlaccesspolicies", registry=registry, id=POLICY_INDEX)
    def index_policy(name: str, spec: kopf.Spec, **_: Any) -> dict[str, MLAccessPolicySpec] | None:
        policy = parse_policy(name, spec)
        return {name: policy.spec} if policy is not None else None

    @kopf.index("", "v1", "namespaces", registry=registry, id=NAMESPACE_INDEX)
    def index_namespace(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    @kopf.on.event(GROUP, VERSION, "mlaccesspolicies", registry=registry, id="policy-changed")
    async def policy_changed(
        type: str | None, name: str, body: kopf.Body, memo: Any, **kwargs: Any
    ) -> None:
        selected: set[str] = set()
        policy = parse_policy(name, body.get("spec") or {}) if type != "DELETED" else None
        if policy is not None:
            selected = book(settings, kwargs).selected_namespaces(policy.spec)
        before = seen.policy_namespaces.get(name, set())
        seen.policy_namespaces[name] = selected
        if type is None:  # the initial listing: every resource is reconciled at start
            return
        revision = f"{name}@{body['metadata'].get('resourceVersion', '')}"
        await _recheck(memo, sorted(before | selected), revision)

    @kopf.on.event("", "v1", "namespaces", registry=registry, id="namespace-labels-changed")
    async def namespace_changed(
        type: str | None, name: str, labels: kopf.Labels, body: kopf.Body, memo: Any, **_: Any
    ) -> None:
        before = seen.namespace_labels.get(name)
        seen.namespace_labels[name] = dict(labels)
        if type == "MODIFIED" and before is not None and before != dict(labels):
            revision = f"namespace@{body['metadata'].get('resourceVersion', '')}"
            await _recheck(memo, [name], revision)

    @kopf.on.event(GROUP, VERSION, "mlroles", registry=registry, id="mlrole-changed")
    async def ml_role_changed(
        type: str | None, name: str, body: kopf.Body, memo: Any, **_: Any
    ) -> None:
        # Only a new generation (a spec change, e.g. privileged or new actions) matters;
        # the operator's own status writes do not re-check anything.
        generation = int(body["metadata"].get("generation") or 0)
        before = seen.ml_role_generations.get(name)
        seen.ml_role_generations[name] = generation
        if type is None or before == generation:
            return
        cluster = memo.shared.deps.cluster
        using = [
            binding
            for binding in await cluster.list_cluster_custom("mlrolebindings")
            if ((binding.get("spec") or {}).get("role") or {}).get("mlRole") == name
        ]
        await _poke(cluster, "mlrolebindings", using, f"mlrole/{name}@{generation}")

    for plural, kind in kinds.items():
        kopf.on.validate(
            GROUP,
            VERSION,
            plural,
            registry=registry,
            id=f"validate-{plural}",
            operations=["CREATE", "UPDATE"],
        )(_validator(plural, kind, settings))


async def _recheck(memo: Any, namespaces: list[str], revision: str) -> None:
    """Make every governed resource in `namespaces` reconcile now, so a tightened policy
    revokes promptly, not at the next resync."""
    cluster = memo.shared.deps.cluster
    count = 0
    for namespace in namespaces:
        for plural in GOVERNED:
            listed = await cluster.list_custom(plural, namespace)
            count += await _poke(cluster, plural, listed, revision)
    if count:
        log.info("policy change %s: %d resource(s) re-checked", revision, count)


async def _poke(cluster: Cluster, plural: str, objects: list[dict[str, Any]], revision: str) -> int:
    """Annotate each of `objects` with `revision` (skipping those that have it): each new
    value is an update, so they reconcile now. Returns how many were annotated."""
    count = 0
    for obj in objects:
        meta = obj["metadata"]
        if (meta.get("annotations") or {}).get(POLICY_TRIGGER_ANNOTATION) == revision:
            continue
        trigger = {POLICY_TRIGGER_ANNOTATION: revision}
        await cluster.annotate_custom(plural, meta["namespace"], meta["name"], trigger)
        count += 1
    return count


def _validator(plural: str, kind: str, settings: Settings) -> Any:
    async def validate(
        *,
        body: kopf.Body,
        old: kopf.Body | None,
        memo: Any,
        warnings: list[str],
        **kwargs: Any,
    ) -> None:
        # Not kopf's indexes: a standby replica (paused by peering) serves the webhook
        # too, and its indexes are empty. Two reads per request: the policies, then the
        # namespace's labels (Deps.policy_set reads those it does not know).
        deps = memo.shared.deps
        deps = replace(deps, policies=await live_policies(deps.cluster, settings, namespaces=False))
        result = await admission.review(
            deps, plural, dict(body), dict(old) if old is not None else None
        )
        warnings.extend(result.warnings)
        if result.denied is not None:
            if result.code == 403:
                POLICY_DENIALS.labels(kind, "admission").inc()
            raise kopf.AdmissionError(result.denied, code=result.code)

    return validate


def webhook_server(settings: Settings) -> kopf.WebhookServer:
    """The HTTPS server for the admission webhook: the chart's mounted certificate, or a
    throwaway CA and certificate for `webhook_host` outside a cluster."""
    ca: bytes | None = None
    if settings.webhook_cert_dir:
        folder = Path(settings.webhook_cert_dir)
        if (folder / "ca.crt").exists():
            ca = (folder / "ca.crt").read_bytes()
    else:
        now = datetime.now(UTC)
        serving = serving_certificate(
            settings.webhook_host, now - timedelta(minutes=5), now + timedelta(days=365)
        )
        folder = Path(tempfile.mkdtemp(prefix="aml-identity-webhook-"))
        (folder / "tls.crt").write_bytes(serving.cert_pem)
        (folder / "tls.key").write_bytes(serving.key_pem)
        (folder / "tls.key").chmod(0o600)
        ca = serving.ca_pem
    return kopf.WebhookServer(
        addr=settings.webhook_address,
        port=settings.webhook_port,
        host=settings.webhook_host,
        certfile=str(folder / "tls.crt"),
        pkeyfile=str(folder / "tls.key"),
        cadata=ca,
    )
