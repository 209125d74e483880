"""Whether this replica is the active one under kopf's peering: a pure reading of the
peering object's status.

kopf pauses its own handlers when another live peer has a higher priority, or the same
one (then every peer pauses). The resync loop is ours, not kopf's, so it reads the same
object and applies the same rule: a paused replica compares nothing with Azure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any


def paused(
    status: Mapping[str, Mapping[str, Any]] | None,
    *,
    identity: str,
    priority: int,
    now: datetime,
) -> bool:
    """`status`: the peering object's status (peer id -> priority, lifetime, lastseen);
    None when the object is missing, which kopf also treats as a reason to pause."""
    if status is None:
        return True
    for peer, info in status.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        lastseen = info.get("lastseen")
        # kopf takes a peer without lastseen as seen just now.
        seen = datetime.fromisoformat(str(lastseen).replace("Z", "+00:00")) if lastseen else now
        if seen + timedelta(seconds=int(info.get("lifetime", 60))) <= now:
            continue  # dead
        if int(info.get("priority", 0)) >= priority:
            return True
    return False
