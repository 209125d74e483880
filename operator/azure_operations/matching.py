"""Azure RBAC's wildcard semantics for role-definition patterns.

An operation is `{Company}.{Provider}/{resourceType}/.../{verb}` (`.../action` for
anything that is not read, write or delete). A pattern matches an operation when:
- letter case is ignored (Azure compares operations case-insensitively: its own pages
  spell the same operation `onlineEndpoints` and `onlineendpoints`);
- `*` matches any run of characters, `/` included, so `Microsoft.Storage/*` covers every
  Storage operation and `*/read` every read;
- a whole `/*/` segment also matches no segment at all: `workspaces/*/read` covers
  `workspaces/read` as well as `workspaces/computes/read`. Azure's own AzureML Data
  Scientist role relies on it: its actions are `workspaces/*/read`, `.../*/write`, ...,
  and its notActions list `workspaces/write` and `workspaces/delete`, which would be
  pointless if the wildcard did not cover them (docs/azure-facts.md has the sources).
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=8192)
def _pattern(expression: str, empty_segment: bool) -> re.Pattern[str]:
    body = ".*".join(re.escape(part) for part in expression.split("*"))
    if empty_segment:
        # `/.*/` came from a whole `/*/` segment: it may also stand for no segment.
        body = body.replace("/.*/", "(?:/.*)?/")
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL)


def matches(expression: str, operation: str, *, empty_segment: bool = True) -> bool:
    """Whether the role-definition pattern `expression` covers `operation`. With
    `empty_segment=False`, a `/*/` segment must stand for at least one segment: the
    narrower reading, for checks that must not fail open if Azure reads it that way
    (an exclusion that might not exclude)."""
    return _pattern(expression, empty_segment).match(operation) is not None


def provider_of(expression: str) -> str | None:
    """The resource provider namespace a pattern names (`Microsoft.Storage` for
    `Microsoft.Storage/*/read`), or None when the namespace itself has a wildcard
    (`*`, `*/read`, `Microsoft.*/read`)."""
    namespace = expression.split("/", 1)[0]
    return None if "*" in namespace or not namespace else namespace
