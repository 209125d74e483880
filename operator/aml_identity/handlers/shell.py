"""The generic reconcile shell shared by every kind (ASO's generic reconciler, in small)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import kopf

from aml_identity import audit
from aml_identity.api.common import TRANSIENT_REASONS, Condition, Reason
from aml_identity.controllers.guard import forget
from aml_identity.controllers.outcome import Deps, Event, Outcome
from aml_identity.kube.cluster import KubeError
from aml_identity.locks import KeyedLocks
from aml_identity.metrics import LAST_SYNC, RECONCILE_SECONDS, RECONCILES
from aml_identity.reconcile.conditions import set_finding, set_policy_violation, set_ready
from aml_identity.reconcile.grants import UNDECLARED_GRANTS
from aml_identity.reconcile.policy import PolicyBook
from aml_identity.reconcile.schedule import Schedule

Workflow = Callable[[Deps, dict[str, Any]], Awaitable[Outcome]]
Logger = logging.Logger | logging.LoggerAdapter[Any]


ResourceKey = tuple[str, str | None, str]
"""(plural, namespace or None, name): how the resync schedule and the waiters name a resource."""


def resource_key(plural: str, body: Mapping[str, Any]) -> ResourceKey:
    meta = body["metadata"]
    return (plural, meta.get("namespace") or None, meta["name"])


class Memo:
    """Per-process state kopf hands to every handler (kopf's `memo`)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        # Only while someone holds one (a reconcile, a resync, a delete).
        self.locks = KeyedLocks()
        # Earliest time each object may call Azure again (Retry-After, backoff): the
        # change handlers and the resync share it, so neither path cuts the wait.
        self.not_before: dict[str, float] = {}
        self.resyncs: dict[str, int] = {}
        # Blocked attempts of each object's deletion, for its backoff and escalation.
        self.delete_attempts: dict[str, int] = {}
        # Which uid each resource key had when last compared, so state kept about an object
        # that went without our delete handler (another shard's, a finalizer removed by
        # hand) is dropped when the resync finds it gone.
        self.uids: dict[ResourceKey, str] = {}
        settings = deps.settings
        self.schedule: Schedule[ResourceKey] = Schedule(
            period=settings.resync_seconds,
            spread=settings.resync_jitter,
            clock=time.monotonic,
        )

    def lock(self, uid: str) -> asyncio.Lock:
        # Change handlers and the resync of one object never overlap.
        return self.locks(uid)

    def forget(self, uid: str, key: ResourceKey) -> None:
        """The object is gone: drop everything kept about it."""
        for per_object in (self.not_before, self.resyncs, self.delete_attempts):
            per_object.pop(uid, None)
        if self.uids.get(key) == uid:
            del self.uids[key]
        self.schedule.forget(key)
        self.deps.waiters.forget(key)
        self.deps.grant_sightings.forget(uid)

    def forget_key(self, key: ResourceKey) -> None:
        """The object under `key` is gone (found so by a resync)."""
        uid = self.uids.get(key)
        if uid is not None:
            self.forget(uid, key)
        else:
            self.schedule.forget(key)
            self.deps.waiters.forget(key)

    def __len__(self) -> int:
        """Objects something is kept about (for tests and the memory benchmark)."""
        return len(set(self.uids.values()) | set(self.not_before) | set(self.resyncs))


class NotYet(Exception):
    """The object must wait before it may call Azure again."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"waiting {delay:.1f}s before calling Azure again")
        self.delay = delay


def audit_events(trail: audit.Trail) -> list[Event]:
    """One event per Azure write of a reconcile, naming its request ids."""
    return [
        Event("Normal" if write.succeeded else "Warning", "AzureWrite", write.event_message())
        for write in trail.writes
    ]


def result_label(outcome: Outcome) -> str:
    """The reconcile metric's result: ready, waiting (it will pass by itself) or failed
    (a person must act: the spec, permissions, a lock, ownership)."""
    if outcome.reason is Reason.RECONCILED:
        return "ready"
    if outcome.permanent:
        return "failed"
    waiting = outcome.retry_after is not None or outcome.reason in TRANSIENT_REASONS
    return "waiting" if waiting else "failed"


async def compare(
    kind: str,
    plural: str,
    workflow: Workflow,
    *,
    shared: Memo,
    body: Mapping[str, Any],
    policies: PolicyBook,
    resync: bool,
) -> Outcome:
    """Compare one object with Azure and converge it: the part every path shares (kopf's
    change handlers and the resync). Raises NotYet while the object must wait. Every
    comparison moves the object's next resync one period on."""
    uid = body["metadata"]["uid"]
    settings = shared.deps.settings
    full = True
    if resync:
        shared.resyncs[uid] = shared.resyncs.get(uid, 0) + 1
        full = shared.resyncs[uid] % settings.federation_resync_every == 0
    deps = replace(shared.deps, policies=policies, observe_federation=full)
    shared.uids[resource_key(plural, body)] = uid
    async with shared.lock(uid):
        wait = shared.not_before.get(uid, 0.0) - time.monotonic()
        if wait > 0:
            raise NotYet(wait)
        started = time.monotonic()
        with audit.following(audit.Subject.of(kind, body)) as trail:
            try:
                outcome = await workflow(deps, dict(body))
            except KubeError as error:
                # Any refusal a workflow did not handle itself still becomes a status and
                # an event, classified by the one error table.
                outcome = Outcome.from_kube_error(error, "calling the Kubernetes API")
        outcome.events.extend(audit_events(trail))
        shared.schedule.synced(resource_key(plural, body))
        if outcome.retry_after is not None:
            shared.not_before[uid] = time.monotonic() + outcome.retry_after
        else:
            shared.not_before.pop(uid, None)
    RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)
    LAST_SYNC.labels(kind).set(time.time())
    RECONCILES.labels(kind, result_label(outcome)).inc()
    return outcome


async def run(
    kind: str,
    plural: str,
    workflow: Workflow,
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Any,
    logger: Logger,
    policies: PolicyBook,
) -> None:
    """One reconcile from a kopf change handler (create, update, resume, wake-up)."""
    try:
        outcome = await compare(
            kind, plural, workflow, shared=memo.shared, body=body, policies=policies, resync=False
        )
    except NotYet as wait:
        raise kopf.TemporaryError(str(wait), delay=wait.delay) from None
    write_status(outcome, body, patch)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    log_outcome(logger, kind, body, outcome)
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


def log_outcome(logger: Logger, kind: str, body: Mapping[str, Any], outcome: Outcome) -> None:
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


def write_status(outcome: Outcome, body: Mapping[str, Any], patch: kopf.Patch) -> None:
    """Patch only the status fields that change: a resync that finds Azure as it was
    writes nothing to Kubernetes (no watch event, no Argo CD refresh). When it last ran
    is in the aml_identity_last_sync_timestamp_seconds metric instead."""
    status = body.get("status") or {}
    previous = [Condition.model_validate(c) for c in status.get("conditions", [])]
    generation = body["metadata"].get("generation")
    conditions = set_ready(
        previous, outcome.reason, outcome.message, observed_generation=generation
    )
    conditions = set_policy_violation(
        conditions, outcome.policy_violation, observed_generation=generation
    )
    if outcome.grants is not None:
        found = outcome.grants.condition() if outcome.grants.scopes else None
        conditions = set_finding(
            conditions, UNDECLARED_GRANTS, found, observed_generation=generation
        )
    wanted: dict[str, Any] = {
        **outcome.status,
        "observedGeneration": generation,
        "pendingChanges": outcome.pending_changes,
        "conditions": [c.model_dump(by_alias=True, mode="json") for c in conditions],
    }
    for key, value in wanted.items():
        if status.get(key) != value:
            patch.status[key] = value
    if "lastSyncTime" in status:  # written by earlier versions on every resync
        patch.status["lastSyncTime"] = None


# A blocked deletion is retried with a doubling delay up to MAX_BLOCKED_DELAY, so it
# keeps trying (access may return) without hammering Azure or the event log; after
# STUCK_AFTER attempts it says how to let the resource go.
MAX_BLOCKED_DELAY = 600.0
STUCK_AFTER = 3


def blocked_delay(rule_delay: float | None, attempt: int) -> float:
    base = rule_delay or 60.0
    return float(min(MAX_BLOCKED_DELAY, base * 2 ** min(attempt - 1, 10)))


def stuck_message(kind: str, attempt: int) -> str:
    return (
        f"Deletion has been blocked {attempt} times and is retried until Azure allows it. "
        f"To leave what remains in Azure and let the {kind} go, set spec.deletionPolicy: "
        "Orphan (kubectl patch --type merge -p "
        '\'{"spec":{"deletionPolicy":"Orphan"}}\')'
    )


async def run_delete(
    kind: str,
    workflow: Workflow,
    *,
    plural: str,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Any,
    logger: Logger,
) -> None:
    """Deletion: the finalizer stays until the workflow says Azure is clean. Deleting
    only removes, so no policy is consulted."""
    shared: Memo = memo.shared
    uid = body["metadata"]["uid"]
    async with shared.lock(uid):
        with audit.following(audit.Subject.of(kind, body)) as trail:
            try:
                outcome = await workflow(shared.deps, dict(body))
            except KubeError as error:
                outcome = Outcome.from_kube_error(error, "calling the Kubernetes API")
                outcome.reason = Reason.DELETION_BLOCKED
        outcome.events.extend(audit_events(trail))
    if outcome.reason is Reason.DELETION_BLOCKED:
        attempt = shared.delete_attempts.get(uid, 0) + 1
        shared.delete_attempts[uid] = attempt
        delay = blocked_delay(outcome.retry_after, attempt)
        outcome.message = f"{outcome.message} (attempt {attempt}; next in {delay:.0f}s)"
        if attempt == STUCK_AFTER:
            outcome.events.append(Event("Warning", "DeletionStuck", stuck_message(kind, attempt)))
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if outcome.reason is Reason.DELETION_BLOCKED:
        write_status(outcome, body, patch)
        logger.warning("%s %s: deletion blocked: %s", kind, _name(body), outcome.message)
        raise kopf.TemporaryError(outcome.message, delay=delay)
    meta = body["metadata"]
    forget(kind, meta.get("namespace") or "", meta["name"])
    shared.forget(uid, resource_key(plural, body))
    logger.info("%s %s: deleted: %s", kind, _name(body), outcome.message)


def _name(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])
