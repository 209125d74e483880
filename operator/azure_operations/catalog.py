"""The operations catalog: every operation Azure publishes for the resource providers
this project touches, and the names of every resource provider.

Data, not code: `data/operations.json` is written by tools/operations/regenerate.py from
Azure's published operations lists (the azure-docs permissions pages, the same lists
`az provider operation list` answers); each provider records the page, commit and date it
came from. A catalog is a snapshot: Azure adds operations, so the operator refuses an
unknown operation only for a provider in the catalog, and can be told not to at all.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from azure_operations.matching import matches, provider_of

ACTION_CODE = "InvalidActionOrNotAction"
DATA_ACTION_CODE = "InvalidDataActionOrNotDataAction"


@dataclass(frozen=True)
class Provider:
    namespace: str
    actions: tuple[str, ...]
    data_actions: tuple[str, ...]
    source: str  # where the list came from: page and commit
    published: str  # the date the page gives (ms.date), ISO

    def operations(self, data: bool) -> tuple[str, ...]:
        return self.data_actions if data else self.actions


class Problem(StrEnum):
    """Why Azure refuses a role-definition pattern (docs/azure-facts.md has its texts)."""

    UNKNOWN_PROVIDER = "UnknownProvider"  # the namespace is no resource provider
    NO_MATCH = "NoMatch"  # the provider has no such operation (wildcards: none matches)
    NO_DATA_OPERATIONS = "NoDataOperations"  # a data pattern for a provider without any
    MULTIPLE_WILDCARDS = "MultipleWildcards"  # Azure allows one * per pattern


@dataclass(frozen=True)
class Finding:
    """A role-definition pattern Azure would refuse."""

    expression: str
    data: bool  # from dataActions/notDataActions
    problem: Problem
    provider: str
    suggestions: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        return DATA_ACTION_CODE if self.data else ACTION_CODE

    def hint(self) -> str:
        """`; did you mean A? (also close: B, C)`, or nothing without suggestions."""
        if not self.suggestions:
            return ""
        best, *others = self.suggestions
        also = f" (also close: {', '.join(others)})" if others else ""
        return f"; did you mean {best}?{also}"


@dataclass(frozen=True)
class VerbCounts:
    read: int = 0
    write: int = 0
    delete: int = 0
    action: int = 0

    @classmethod
    def of(cls, operations: Iterable[str]) -> VerbCounts:
        counts = {"read": 0, "write": 0, "delete": 0, "action": 0}
        for operation in operations:
            verb = operation.rsplit("/", 1)[-1].lower()
            counts[verb if verb in counts else "action"] += 1
        return cls(**counts)


@dataclass(frozen=True)
class Resolution:
    """What a permission block means for the catalogued providers."""

    allowed: tuple[str, ...]  # matched by a pattern and by no exclusion
    denied: tuple[str, ...]  # matched by a pattern, then excluded (notActions)
    # Patterns that reach providers outside the catalog (`*`, `*/read`,
    # `Microsoft.Insights/*`): what they allow there is not listed.
    unresolved: tuple[str, ...] = field(default=())


def resource_type_and_verb(operation: str) -> tuple[str, str]:
    """(`Microsoft.X/workspaces`, `listKeys/action`) for
    `Microsoft.X/workspaces/listKeys/action`; (`Microsoft.X/workspaces`, `read`) for
    `Microsoft.X/workspaces/read`."""
    parts = operation.split("/")
    cut = 2 if len(parts) > 2 and parts[-1].lower() == "action" else 1
    return "/".join(parts[:-cut]), "/".join(parts[-cut:])


class Catalog:
    def __init__(self, document: dict[str, Any]) -> None:
        self.providers: dict[str, Provider] = {}
        for namespace, entry in document["providers"].items():
            self.providers[namespace.lower()] = Provider(
                namespace,
                _unique(entry["actions"]),
                _unique(entry.get("dataActions", [])),
                entry["source"],
                entry["published"],
            )
        self.namespaces = frozenset(n.lower() for n in document["namespaces"]) | frozenset(
            self.providers
        )

    def provider(self, namespace: str) -> Provider | None:
        return self.providers.get(namespace.lower())

    def is_namespace(self, namespace: str) -> bool:
        return namespace.lower() in self.namespaces

    def check(self, expression: str, *, data: bool) -> Finding | None:
        """Why Azure would refuse `expression` in a role definition, or None. Patterns
        whose provider is a known namespace outside the catalog pass: only Azure knows
        their operations."""
        namespace = provider_of(expression)
        if expression.count("*") > 1:
            return Finding(expression, data, Problem.MULTIPLE_WILDCARDS, namespace or "")
        if namespace is None:
            return None
        if not self.is_namespace(namespace):
            return Finding(expression, data, Problem.UNKNOWN_PROVIDER, namespace)
        provider = self.provider(namespace)
        if provider is None:
            return None
        operations = provider.operations(data)
        if any(matches(expression, op) for op in operations):
            return None
        problem = Problem.NO_MATCH if operations else Problem.NO_DATA_OPERATIONS
        return Finding(expression, data, problem, provider.namespace)

    def check_all(
        self,
        *,
        actions: Sequence[str] = (),
        not_actions: Sequence[str] = (),
        data_actions: Sequence[str] = (),
        not_data_actions: Sequence[str] = (),
    ) -> list[tuple[str, int, Finding]]:
        """Every finding in a permission block, as (field, index, finding)."""
        found = []
        for name, patterns, data in (
            ("actions", actions, False),
            ("notActions", not_actions, False),
            ("dataActions", data_actions, True),
            ("notDataActions", not_data_actions, True),
        ):
            for index, expression in enumerate(patterns):
                finding = self.check(expression, data=data)
                if finding is not None:
                    found.append((name, index, finding))
        return found

    def suggested(self, finding: Finding) -> Finding:
        """The finding with the closest operations of its provider (of the other kind too:
        a data action written as an action is a common slip). Asked for only for the
        findings reported: each costs tens of milliseconds."""
        provider = self.provider(finding.provider)
        if provider is None or finding.problem == Problem.MULTIPLE_WILDCARDS:
            return finding
        candidates = {op.lower(): op for op in provider.operations(finding.data)}
        for op in provider.operations(not finding.data):
            candidates.setdefault(op.lower(), op)
        close = difflib.get_close_matches(
            finding.expression.lower(), list(candidates), n=3, cutoff=0.75
        )
        return replace(finding, suggestions=tuple(candidates[c] for c in close))

    def resolve(self, allowed: Sequence[str], excluded: Sequence[str], *, data: bool) -> Resolution:
        """The catalogued operations `allowed` minus `excluded` grants and denies."""
        granted, denied = [], []
        for provider in self.providers.values():
            for operation in provider.operations(data):
                if not any(matches(a, operation) for a in allowed):
                    continue
                if any(matches(n, operation) for n in excluded):
                    denied.append(operation)
                else:
                    granted.append(operation)
        beyond = tuple(
            a for a in allowed if (ns := provider_of(a)) is None or self.provider(ns) is None
        )
        return Resolution(tuple(granted), tuple(denied), beyond)


def _unique(operations: Iterable[str]) -> tuple[str, ...]:
    """Azure's pages list some operations twice, once per letter case: keep the first."""
    seen: dict[str, str] = {}
    for op in operations:
        seen.setdefault(op.lower(), op)
    return tuple(seen.values())


@cache
def catalog() -> Catalog:
    """The catalog shipped with this version."""
    text = resources.files("azure_operations").joinpath("data/operations.json").read_text()
    return Catalog(json.loads(text))
