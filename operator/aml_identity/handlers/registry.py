"""Every kopf handler of the operator, registered against configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from aml_identity.api import GROUP, VERSION
from aml_identity.controllers import mlrole, mlrolebinding, workloadidentity
from aml_identity.handlers import dependencies, guardrails, holders, orphans
from aml_identity.handlers.resync import Peering, Resyncer
from aml_identity.handlers.shell import Workflow, run, run_delete
from aml_identity.kube.cluster import KubeError, connection
from aml_identity.reconcile.shards import owns, parse_selector
from aml_identity.settings import Settings

FINALIZER = f"{GROUP}/finalizer"
KINDS: dict[str, tuple[str, Workflow, Workflow]] = {
    "workloadidentities": ("WorkloadIdentity", workloadidentity.reconcile, workloadidentity.delete),
    "mlrolebindings": ("MLRoleBinding", mlrolebinding.reconcile, mlrolebinding.delete),
    "mlroles": ("MLRole", mlrole.reconcile, mlrole.delete),
}


Logger = logging.Logger | logging.LoggerAdapter[Any]


def _change_handler(kind: str, plural: str, workflow: Workflow, settings: Settings) -> Any:
    async def reconcile(
        *, body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Logger, **kwargs: Any
    ) -> None:
        if settings.shard:
            await _release_unsharded(memo, plural, body, settings.shard)
        policies = guardrails.book(settings, kwargs)
        await run(
            kind, plural, workflow, body=body, patch=patch, memo=memo, logger=logger,
            policies=policies,
        )  # fmt: skip

    return reconcile


async def _release_unsharded(memo: Any, plural: str, body: kopf.Body, shard: str) -> None:
    """A resource an unsharded operator handled carries its finalizer, which no shard
    would ever remove (its deletion would hang): once this shard's own finalizer is on
    it, this shard's cleanup protects it, and the old one goes."""
    meta = body["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if FINALIZER not in finalizers or finalizer(shard) not in finalizers:
        return
    with contextlib.suppress(KubeError):  # changed meanwhile: the next look retries
        await memo.shared.deps.cluster.remove_finalizer(
            plural, meta.get("namespace"), meta["name"], finalizers, FINALIZER
        )


def _delete_handler(kind: str, plural: str, workflow: Workflow) -> Any:
    async def cleanup(
        *, body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Logger, **_: Any
    ) -> None:
        await run_delete(
            kind, workflow, plural=plural, body=body, patch=patch, memo=memo, logger=logger
        )

    return cleanup


def _login(*, logger: Logger, **kwargs: Any) -> kopf.ConnectionInfo | None:
    return connection(logger=logger, **kwargs)


def ownership(settings: Settings) -> Any:
    """kopf's `when` filter for this shard: the resources it reconciles, or None for
    all. Namespace labels come from the namespace index kopf keeps for the policies."""
    selector = (
        parse_selector(settings.shard_namespace_selector)
        if settings.shard_namespace_selector
        else None
    )
    if selector is None and settings.shard_cluster_resources:
        return None

    def owned(namespace: str | None, **kwargs: Any) -> bool:
        labels = guardrails.namespace_labels(kwargs).get(namespace) if namespace else None
        return owns(
            selector,
            cluster_resources=settings.shard_cluster_resources,
            namespace=namespace or None,
            namespace_labels=labels,
        )

    return owned


def build_registry(settings: Settings, peering: Peering | None = None) -> kopf.OperatorRegistry:
    """`peering`: how the resync loop learns whether kopf's peering paused this replica
    (None: standalone)."""
    registry = kopf.OperatorRegistry()
    # A custom registry has none of kopf's default login handlers: in a Pod the service
    # account, elsewhere the kubeconfig, as the kubernetes client would choose.
    kopf.on.login(registry=registry, id="login")(_login)

    when = ownership(settings)
    for plural, (kind, reconcile, delete) in KINDS.items():
        resource = (GROUP, VERSION, plural)
        on_change = _change_handler(kind, plural, reconcile, settings)
        on_delete = _delete_handler(kind, plural, delete)
        # One level-triggered reconcile serves create, update, resume and wake-ups; each
        # puts the resource on the resync schedule (handlers/resync.py).
        for cause, decorate in (
            ("create", kopf.on.create),
            ("update", kopf.on.update),
            ("resume", kopf.on.resume),
        ):
            decorate(*resource, registry=registry, id=f"reconcile-{cause}", backoff=5, when=when)(
                on_change
            )
        kopf.on.delete(*resource, registry=registry, id="cleanup", backoff=5, when=when)(on_delete)
    _register_resync(registry, settings, peering, when)
    orphans.register(registry, settings, peering)
    dependencies.register(registry)
    holders.register(registry)
    # kopf refuses to start with admission handlers but no server: only with a webhook.
    checked = {plural: kind for plural, (kind, _, _) in KINDS.items()}
    guardrails.register(registry, settings, checked if settings.webhook_port else {})
    return registry


def _register_resync(
    registry: kopf.OperatorRegistry, settings: Settings, peering: Peering | None, when: Any
) -> None:
    """Start the resync loop with the operator and stop it with the operator."""
    kinds = {plural: (kind, reconcile) for plural, (kind, reconcile, _) in KINDS.items()}

    @kopf.on.startup(registry=registry, id="resync-loop")
    async def start(memo: Any, **kwargs: Any) -> None:
        # kwargs holds kopf's indexes, which stay live for the operator's lifetime.
        def owned(namespace: str | None) -> bool:
            return when is None or bool(when(namespace=namespace, **kwargs))

        resyncer = Resyncer(memo.shared, kinds, indexes=kwargs, owned=owned, peering=peering)
        memo.resync_loop = asyncio.create_task(resyncer.run(), name="resync loop")

    @kopf.on.cleanup(registry=registry, id="resync-loop")
    async def stop(memo: Any, **_: Any) -> None:
        task = getattr(memo, "resync_loop", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def finalizer(shard: str) -> str:
    """Each shard its own: kopf removes its finalizer from resources none of its
    handlers want, which must not release another shard's."""
    return f"{FINALIZER}-{shard}" if shard else FINALIZER


def configure(settings: kopf.OperatorSettings, ours: Settings) -> None:
    """kopf's own behaviour: our finalizer and annotation names, quiet events, bounded
    concurrency (kopf opens a connection per concurrent request, without limit)."""
    settings.persistence.finalizer = finalizer(ours.shard)
    settings.queueing.worker_limit = ours.concurrent_reconciles
    # A worker keeps its slot while idle; kopf's default of 5 s would let a few hundred
    # objects that each need one quick look hold every slot.
    settings.queueing.idle_timeout = 0.5
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Our workflows post the events that matter; kopf's per-handler log lines (a retry
    # logs an ERROR) stay in the log. Posted as events too, each retry of a delete in a
    # terminating namespace, which refuses new events, logged a failure besides.
    settings.posting.loggers = False
    # Page the initial listings: one response with every resource would be parsed whole.
    settings.watching.chunk_size = 500
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.networking.request_timeout = 30
