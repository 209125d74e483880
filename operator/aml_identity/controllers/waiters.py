"""Which resources wait for which: a binding waiting for its WorkloadIdentity or MLRole
is reconciled when that object becomes Ready, instead of polling it.

A dependent registers before it reads the dependency, so a Ready that lands between the
read and the registration cannot be missed. The registry lives in the process: after a
restart every resource is reconciled anyway, and the resync loop (handlers/resync.py) is
the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# (plural, namespace or None, name)
Key = tuple[str, str | None, str]


@dataclass
class Waiters:
    _waiting: dict[Key, set[Key]] = field(default_factory=dict)

    def watch(self, dependency: Key, dependent: Key) -> None:
        self._waiting.setdefault(dependency, set()).add(dependent)

    def unwatch(self, dependency: Key, dependent: Key) -> None:
        dependents = self._waiting.get(dependency)
        if dependents is not None:
            dependents.discard(dependent)
            if not dependents:
                del self._waiting[dependency]

    def ready(self, dependency: Key) -> list[Key]:
        """The dependents to wake now that `dependency` is Ready (each once)."""
        return sorted(self._waiting.pop(dependency, set()), key=str)

    def forget(self, dependent: Key) -> None:
        """A dependent that is gone waits for nothing."""
        for dependency in [d for d, waiting in self._waiting.items() if dependent in waiting]:
            self.unwatch(dependency, dependent)

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiting.values())
