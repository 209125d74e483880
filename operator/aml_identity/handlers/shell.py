"""The generic reconcile shell shared by every kind (ASO's generic reconciler, in small)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf

from aml_identity.api.common import Condition, Reason
from aml_identity.controllers.guard import forget
from aml_identity.controllers.outcome import Deps, Outcome
from aml_identity.metrics import RECONCILE_SECONDS, RECONCILES
from aml_identity.reconcile.conditions import set_policy_violation, set_ready
from aml_identity.reconcile.policy import PolicyBook

Workflow = Callable[[Deps, dict[str, Any]], Awaitable[Outcome]]


class Memo:
    """Per-process state kopf hands to every handler (kopf's `memo`)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.locks: dict[str, asyncio.Lock] = {}
        # Earliest time each object may call Azure again (Retry-After, backoff): the
        # change handlers and the resync timer share it, so neither path cuts the wait.
        self.not_before: dict[str, float] = {}

    def lock(self, uid: str) -> asyncio.Lock:
        # Change handlers and the resync timer of one object never overlap.
        return self.locks.setdefault(uid, asyncio.Lock())


def _result(outcome: Outcome) -> str:
    if outcome.reason is Reason.RECONCILED:
        return "ready"
    return "waiting" if outcome.retry_after is not None else "failed"


async def run(
    kind: str,
    workflow: Workflow,
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    policies: PolicyBook,
) -> None:
    shared: Memo = memo.shared
    uid = body["metadata"]["uid"]
    deps = replace(shared.deps, policies=policies)
    async with shared.lock(uid):
        wait = shared.not_before.get(uid, 0.0) - time.monotonic()
        if wait > 0:
            raise kopf.TemporaryError(f"waiting {wait:.1f}s before calling Azure again", delay=wait)
        started = time.monotonic()
        outcome = await workflow(deps, dict(body))
        if outcome.retry_after is not None:
            shared.not_before[uid] = time.monotonic() + outcome.retry_after
        else:
            shared.not_before.pop(uid, None)
    RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)
    RECONCILES.labels(kind, _result(outcome)).inc()
    write_status(outcome, body, patch)
    _post_events(body, outcome)
    log = logger.info if outcome.reason is Reason.RECONCILED else logger.warning
    log(
        "%s %s: %s: %s (%d Azure write%s)",
        kind,
        _name(body),
        outcome.reason.value,
        outcome.message,
        outcome.azure_writes,
        "" if outcome.azure_writes == 1 else "s",
    )
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


def write_status(outcome: Outcome, body: kopf.Body, patch: kopf.Patch) -> None:
    status = body.get("status") or {}
    previous = [Condition.model_validate(c) for c in status.get("conditions", [])]
    generation = body["metadata"].get("generation")
    conditions = set_ready(
        previous, outcome.reason, outcome.message, observed_generation=generation
    )
    for key, value in outcome.status.items():
        patch.status[key] = value
    patch.status["observedGeneration"] = generation
    patch.status["lastSyncTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch.status["pendingChanges"] = outcome.pending_changes
    conditions = set_policy_violation(
        conditions, outcome.policy_violation, observed_generation=generation
    )
    patch.status["conditions"] = [c.model_dump(by_alias=True, mode="json") for c in conditions]


async def run_delete(
    kind: str,
    workflow: Workflow,
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Deletion: the finalizer stays until the workflow says Azure is clean. Deleting
    only removes, so no policy is consulted."""
    shared: Memo = memo.shared
    async with shared.lock(body["metadata"]["uid"]):
        outcome = await workflow(shared.deps, dict(body))
    _post_events(body, outcome)
    if outcome.reason is Reason.DELETION_BLOCKED:
        write_status(outcome, body, patch)
        logger.warning("%s %s: deletion blocked: %s", kind, _name(body), outcome.message)
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after or 60)
    meta = body["metadata"]
    forget(kind, meta.get("namespace") or "", meta["name"])
    logger.info("%s %s: deleted: %s", kind, _name(body), outcome.message)


def _post_events(body: kopf.Body, outcome: Outcome) -> None:
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def _name(body: kopf.Body) -> str:
    meta = body["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])
