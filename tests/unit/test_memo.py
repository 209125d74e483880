"""The per-process state the handlers keep about objects: dropped when they go."""

from __future__ import annotations

import asyncio
import gc

from aml_identity.controllers.holders import Holders
from aml_identity.controllers.outcome import Deps
from aml_identity.handlers.shell import Memo
from aml_identity.reconcile.names import AssignmentOwner
from aml_identity.settings import Settings

KEY = ("workloadidentities", "ml-team", "trainer")


def memo() -> Memo:
    settings = Settings(AZURE_TENANT_ID="t", AZURE_SUBSCRIPTION_ID="s")
    # No Azure or Kubernetes client is touched: only the bookkeeping is under test.
    return Memo(Deps(settings=settings, azure=None, cluster=None, issuer=""))  # type: ignore[arg-type]


def test_a_lock_lives_only_while_it_is_held() -> None:
    shared = memo()

    async def run() -> None:
        async with shared.lock("uid-1"):
            assert shared.lock("uid-1") is shared.lock("uid-1")
            assert len(shared.locks) == 1

    asyncio.run(run())
    gc.collect()
    assert len(shared.locks) == 0


def test_an_object_found_gone_by_the_resync_leaves_nothing_behind() -> None:
    shared = memo()
    shared.uids[KEY] = "uid-1"
    shared.not_before["uid-1"] = 5.0
    shared.resyncs["uid-1"] = 3
    shared.delete_attempts["uid-1"] = 1
    shared.schedule.synced(KEY)
    shared.deps.waiters.watch(("mlroles", None, "r"), KEY)
    assert len(shared) == 1
    shared.forget_key(KEY)
    assert len(shared) == 0
    assert (shared.uids, shared.not_before, shared.resyncs, shared.delete_attempts) == (
        {},
        {},
        {},
        {},
    )
    assert len(shared.deps.waiters) == 0
    assert shared.schedule.next_due() is None


def test_holders_follow_what_each_binding_records() -> None:
    holders = Holders()
    first, second = (
        AssignmentOwner("ml", "first", "uid-1"),
        AssignmentOwner("ml", "second", "uid-2"),
    )
    holders.record(first, ["A", "b"])
    holders.record(second, ["a"])
    assert holders.get("a") == [first, second]
    holders.record(first, ["b"])  # it no longer records a
    assert holders.get("A") == [second]
    holders.forget("uid-2")
    assert holders.get("a") == []
    assert holders.get("b") == [first]
    holders.record(first, [])
    assert (holders.get("b"), len(holders)) == ([], 0)


def test_a_binding_relies_on_a_shared_assignment_before_its_status_says_so() -> None:
    holders = Holders()
    sharer = AssignmentOwner("ml", "second", "uid-2")
    holders.record(sharer, ["a"])
    holders.rely(sharer, ["B"])
    assert holders.get("b") == [sharer]
    # A watch event with an older status does not take back what the reconcile relies on.
    holders.record(sharer, ["a"])
    assert (holders.get("a"), holders.get("b")) == ([sharer], [sharer])
    holders.rely(sharer, [])  # its next reconcile relies on nothing shared
    holders.record(sharer, ["b"])  # and its status records b
    assert (holders.get("a"), holders.get("b")) == ([], [sharer])
    holders.forget("uid-2")
    assert (holders.get("b"), len(holders)) == ([], 0)
