"""Wake the resources that wait for a WorkloadIdentity or an MLRole when it becomes Ready.

The watch event that shows a dependency Ready comes after its status was stored, so the
woken binding reads it Ready. Waking is an annotation on the dependent (a new value each
time, so kopf sees an update and reconciles it at once).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from aml_identity.api import GROUP, VERSION
from aml_identity.kube.cluster import DEPENDENCY_ANNOTATION
from aml_identity.reconcile.conditions import object_ready

DEPENDENCIES = ("workloadidentities", "mlroles")
Logger = logging.Logger | logging.LoggerAdapter[Any]


def _waker(plural: str) -> Any:
    async def wake(
        type: str | None,
        name: str,
        namespace: str | None,
        body: kopf.Body,
        memo: Any,
        logger: Logger,
        **_: Any,
    ) -> None:
        if type == "DELETED" or not object_ready(body):
            return
        deps = memo.shared.deps
        revision = f"{plural}/{name}@{body['metadata'].get('resourceVersion', '')}"
        woken = deps.waiters.ready((plural, namespace or None, name))
        if woken:
            logger.info("Ready: waking %s", ", ".join(f"{ns}/{n}" for _, ns, n in woken))
        for dependent, dependent_namespace, dependent_name in woken:
            await deps.cluster.annotate_custom(
                dependent,
                str(dependent_namespace),
                dependent_name,
                {DEPENDENCY_ANNOTATION: revision},
            )

    return wake


def register(registry: kopf.OperatorRegistry) -> None:
    for plural in DEPENDENCIES:
        kopf.on.event(GROUP, VERSION, plural, registry=registry, id="wake-dependents")(
            _waker(plural)
        )
