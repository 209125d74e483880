"""Keep controllers.holders.Holders current from the watch of MLRoleBindings.

An event handler, not a kopf index: kopf holds every handler until each object of an
indexed kind has a worker that has indexed it, and its workers are bounded
(settings.queueing.worker_limit), so an index over thousands of bindings never finishes.
"""

from __future__ import annotations

from typing import Any

import kopf

from aml_identity.api import GROUP, VERSION
from aml_identity.reconcile.names import AssignmentOwner


def register(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.event(GROUP, VERSION, "mlrolebindings", registry=registry, id="assignment-holders")
    def follow(
        type: str | None,
        namespace: str | None,
        name: str,
        uid: str,
        status: kopf.Status,
        meta: kopf.Meta,
        memo: Any,
        **_: Any,
    ) -> None:
        holders = memo.shared.deps.assignment_holders
        if type == "DELETED" or meta.get("deletionTimestamp"):
            holders.forget(uid)  # a binding on its way out inherits nothing
            return
        recorded = [str(a["name"]) for a in status.get("assignments") or [] if a.get("name")]
        holders.record(AssignmentOwner(namespace or "", name, uid), recorded)
