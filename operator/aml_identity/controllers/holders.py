"""Which MLRoleBindings hold which role assignment: what a binding consults before it
deletes an assignment it created, so that a grant two bindings share is handed over to
the one that stays instead of being deleted under it.

A binding holds what its status records (followed from the watch: handlers/holders.py)
and what its reconcile in progress relies on (set before its writes, so an owner
releasing one of them meanwhile hands it over). Both live in the process. A binding of a
namespace the operator does not watch is not here: it finds the assignment gone at its
next look and creates it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aml_identity.reconcile.names import AssignmentOwner as Holder

_NONE: frozenset[str] = frozenset()


@dataclass
class Holders:
    _by_assignment: dict[str, dict[str, Holder]] = field(default_factory=dict)
    _recorded: dict[str, frozenset[str]] = field(default_factory=dict)
    _relied: dict[str, frozenset[str]] = field(default_factory=dict)

    def record(self, holder: Holder, assignments: Iterable[str]) -> None:
        """`holder`'s status records exactly `assignments` (names) now."""
        self._set(self._recorded, holder, assignments)

    def rely(self, holder: Holder, assignments: Iterable[str]) -> None:
        """`holder`'s reconcile now relies on exactly `assignments` (another binding's,
        shared), before its status says so."""
        self._set(self._relied, holder, assignments)

    def forget(self, uid: str) -> None:
        held = self._held(uid)
        self._recorded.pop(uid, None)
        self._relied.pop(uid, None)
        for name in held:
            self._drop(name, uid)

    def get(self, assignment: str) -> list[Holder]:
        """The bindings holding `assignment`."""
        return sorted(self._by_assignment.get(assignment.lower(), {}).values())

    def _held(self, uid: str) -> frozenset[str]:
        return self._recorded.get(uid, _NONE) | self._relied.get(uid, _NONE)

    def _set(self, which: dict[str, frozenset[str]], holder: Holder, names: Iterable[str]) -> None:
        uid = holder.uid
        before = self._held(uid)
        wanted = frozenset(n.lower() for n in names)
        if wanted:
            which[uid] = wanted
        else:
            which.pop(uid, None)
        after = self._held(uid)
        for gone in before - after:
            self._drop(gone, uid)
        for name in after:
            self._by_assignment.setdefault(name, {})[uid] = holder

    def _drop(self, name: str, uid: str) -> None:
        holders = self._by_assignment.get(name)
        if holders is not None:
            holders.pop(uid, None)
            if not holders:
                del self._by_assignment[name]

    def __len__(self) -> int:
        return len(self._recorded.keys() | self._relied.keys())
