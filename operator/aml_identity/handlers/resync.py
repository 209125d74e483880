"""The drift resync: one loop per process compares each resource with Azure once per
resync period (see reconcile/schedule.py for why not a kopf timer per object).

Every kopf change handler puts its resource on the schedule (the resume handlers at
start put all of them), so the loop knows every resource this process owns without
keeping their bodies: it reads a resource when it is due, compares it like a change
handler would, and writes only the status fields that changed. It compares nothing
while kopf's peering has paused this replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from aml_identity.handlers import guardrails
from aml_identity.handlers.shell import (
    Memo,
    NotYet,
    ResourceKey,
    Workflow,
    compare,
    log_outcome,
    write_status,
)
from aml_identity.kube.cluster import Cluster, KubeError
from aml_identity.reconcile.peering import paused
from aml_identity.settings import Settings

log = logging.getLogger("aml_identity.resync")

# How long the loop sleeps at most; the schedule wakes it sooner when something becomes
# due earlier than what it sleeps for.
IDLE_SECONDS = 30.0
# A resync that failed unexpectedly (a Kubernetes error, a bug) is tried again after this.
FAILED_RETRY_SECONDS = 30.0

Owned = Callable[[str | None], bool]


class Peering:
    """Reads kopf's peering object(s) to learn whether this replica is active."""

    def __init__(self, cluster: Cluster, settings: Settings, identity: str, priority: int):
        self.cluster = cluster
        self.identity = identity
        self.priority = priority
        name = settings.peering
        if settings.namespaces:
            self.paths = [
                f"/apis/kopf.dev/v1/namespaces/{ns}/kopfpeerings/{name}"
                for ns in settings.namespaces
            ]
        else:
            self.paths = [f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"]

    async def active(self) -> bool:
        now = datetime.now(UTC)
        for path in self.paths:
            peering = await self.cluster.get_cluster_object(path)
            status = (peering.get("status") or {}) if peering is not None else None
            if paused(status, identity=self.identity, priority=self.priority, now=now):
                return False
        return True


class Resyncer:
    def __init__(
        self,
        shared: Memo,
        kinds: Mapping[str, tuple[str, Workflow]],
        *,
        indexes: Mapping[str, Any],
        owned: Owned,
        peering: Peering | None,
    ) -> None:
        """`kinds`: plural -> (kind, reconcile workflow). `indexes`: kopf's live indexes
        (the policies and namespace labels). `owned(namespace)`: this shard's filter."""
        self.shared = shared
        self.kinds = kinds
        self.indexes = indexes
        self.owned = owned
        self.peering = peering
        self.wake = asyncio.Event()
        self.running: set[asyncio.Task[None]] = set()
        shared.schedule.on_earlier = self.wake.set

    async def run(self) -> None:
        """Forever (until cancelled): sleep until something is due, then resync it, at
        most `concurrent_reconciles` at a time."""
        schedule = self.shared.schedule
        limit = self.shared.deps.settings.concurrent_reconciles
        try:
            while True:
                due = schedule.next_due()
                delay = IDLE_SECONDS if due is None else due - time.monotonic()
                if delay > 0:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), min(delay, IDLE_SECONDS))
                    continue
                if len(self.running) >= limit:
                    await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if not await self._active():
                    await asyncio.sleep(IDLE_SECONDS / 3)
                    continue
                for key in schedule.take_due(limit - len(self.running)):
                    task = asyncio.create_task(self._resync(key), name=f"resync {key}")
                    self.running.add(task)
                    task.add_done_callback(self.running.discard)
        finally:
            for task in list(self.running):
                task.cancel()

    async def _active(self) -> bool:
        if self.peering is None:
            return True
        try:
            return await self.peering.active()
        except KubeError as error:
            log.warning("cannot read the peering object, not resyncing: %s", error)
            return False

    def _retry(self, key: ResourceKey, after: float) -> None:
        self.shared.schedule.retry(key, after)

    async def _resync(self, key: ResourceKey) -> None:
        plural, namespace, name = key
        kind, workflow = self.kinds[plural]
        cluster = self.shared.deps.cluster
        try:
            body = await cluster.get_custom(plural, namespace, name)
            if body is None:
                self.shared.forget_key(key)  # gone without our delete handler seeing it
                return
            if body["metadata"].get("deletionTimestamp"):
                return  # kopf's delete handler has it
            if not self.owned(namespace):
                # Moved to another shard: its resume handler schedules it there, and
                # nothing about it is kept here.
                self.shared.forget_key(key)
                return
            policies = guardrails.book(self.shared.deps.settings, self.indexes)
            try:
                outcome = await compare(
                    kind,
                    plural,
                    workflow,
                    shared=self.shared,
                    body=body,
                    policies=policies,
                    resync=True,
                )
            except NotYet as wait:
                self._retry(key, wait.delay)
                return
            patch = kopf.Patch()
            write_status(outcome, body, patch)
            if patch.status:
                await cluster.patch_status(plural, namespace, name, dict(patch.status))
            for event in outcome.events:
                await self._post(body, event.type, event.reason, event.message)
            log_outcome(log, kind, body, outcome)
            if outcome.retry_after is not None:
                self._retry(key, outcome.retry_after)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resync of %s %s/%s failed; retrying", kind, namespace or "", name)
            self._retry(key, FAILED_RETRY_SECONDS)

    async def _post(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        try:
            await self.shared.deps.cluster.post_event(
                body, type=type, reason=reason, message=message
            )
        except KubeError as error:  # an event is worth a log line, never a failed resync
            log.warning("cannot post event %s: %s", reason, error)
