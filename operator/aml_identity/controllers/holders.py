"""Which MLRoleBindings record which role assignment in their status: what a binding
consults before it deletes an assignment it created, so that a grant two bindings share
is handed over to the one that stays instead of being deleted under it.

Kept from the watch of the bindings (handlers/holders.py), in the process. A binding of a
namespace the operator does not watch is not in it: that binding finds the assignment
gone at its next look and creates it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# (namespace, name, uid) of a binding
Holder = tuple[str, str, str]


@dataclass
class Holders:
    _by_assignment: dict[str, dict[str, Holder]] = field(default_factory=dict)
    _assignments_of: dict[str, frozenset[str]] = field(default_factory=dict)

    def record(self, holder: Holder, assignments: Iterable[str]) -> None:
        """`holder`'s status records exactly `assignments` (names) now."""
        uid = holder[2]
        names = frozenset(a.lower() for a in assignments)
        for gone in self._assignments_of.get(uid, frozenset()) - names:
            self._drop(gone, uid)
        for name in names:
            self._by_assignment.setdefault(name, {})[uid] = holder
        if names:
            self._assignments_of[uid] = names
        else:
            self._assignments_of.pop(uid, None)

    def add(self, holder: Holder, assignments: Iterable[str]) -> None:
        """`holder` relies on `assignments` from now on, before its status says so: an
        owner releasing one of them meanwhile hands it over instead of deleting it."""
        names = frozenset(a.lower() for a in assignments)
        if names:
            self.record(holder, self._assignments_of.get(holder[2], frozenset()) | names)

    def forget(self, uid: str) -> None:
        for name in self._assignments_of.pop(uid, frozenset()):
            self._drop(name, uid)

    def get(self, assignment: str) -> list[Holder]:
        """The bindings recording `assignment`."""
        return sorted(self._by_assignment.get(assignment.lower(), {}).values())

    def _drop(self, name: str, uid: str) -> None:
        holders = self._by_assignment.get(name)
        if holders is not None:
            holders.pop(uid, None)
            if not holders:
                del self._by_assignment[name]

    def __len__(self) -> int:
        return len(self._assignments_of)
