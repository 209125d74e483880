"""Which resources a shard of the operator owns: pure decisions.

A shard is one operator Deployment (its own replicas, leader election and Azure
principal) that reconciles the namespaced resources of the namespaces its label selector
selects, and, when told, the cluster-scoped MLRoles. Shards' selectors must not overlap:
each resource has exactly one owner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aml_identity.api.mlaccesspolicy import LabelSelector, LabelSelectorRequirement
from aml_identity.reconcile.policy import selects

_SET = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)$")


class SelectorError(ValueError):
    pass


def _parts(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current.strip())
    return [p for p in parts if p]


def parse_selector(text: str) -> LabelSelector:
    """A label selector in kubectl's syntax: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
    `k in (a,b)`, `k notin (a,b)`, comma-separated, all of which must hold."""
    try:
        return _parse(text)
    except ValueError as error:  # pydantic's ValidationError included
        raise SelectorError(f"not a label selector: {text!r}") from error


def _parse(text: str) -> LabelSelector:
    labels: dict[str, str] = {}
    expressions: list[LabelSelectorRequirement] = []
    for part in _parts(text):
        found = _SET.match(part)
        if found:
            key, operator, values = found.groups()
            listed = [v.strip() for v in values.split(",") if v.strip()]
            kind = "In" if operator == "in" else "NotIn"
            expressions.append(LabelSelectorRequirement(key=key, operator=kind, values=listed))
        elif "!=" in part:
            key, value = (s.strip() for s in part.split("!=", 1))
            expressions.append(LabelSelectorRequirement(key=key, operator="NotIn", values=[value]))
        elif "=" in part:
            key, value = (s.strip() for s in part.replace("==", "=", 1).split("=", 1))
            labels[key] = value
        elif part.startswith("!"):
            expressions.append(
                LabelSelectorRequirement(key=part[1:].strip(), operator="DoesNotExist")
            )
        else:
            expressions.append(LabelSelectorRequirement(key=part, operator="Exists"))
    for key in [*labels, *(e.key for e in expressions)]:
        if not key or any(c in key for c in " !=(),"):
            raise SelectorError(f"not a label selector: {text!r} (at {key!r})")
    return LabelSelector(match_labels=labels, match_expressions=expressions)


def owns(
    selector: LabelSelector | None,
    *,
    cluster_resources: bool,
    namespace: str | None,
    namespace_labels: Mapping[str, str] | None,
) -> bool:
    """Whether this shard reconciles a resource in `namespace` (None: cluster-scoped).
    A namespace whose labels are not known yet is nobody's until they are."""
    if namespace is None:
        return cluster_resources
    if selector is None:
        return True
    return namespace_labels is not None and selects(selector, namespace_labels)
