"""Credential lifetimes and rotation with overlap: pure decisions, clock injected.

Rotation never leaves a moment when no valid key is registered: the new key is added
to the application first, then the store (Secret or Key Vault) switches to it, and the
previous key is removed only after `overlap`, so running workloads can pick up the new
certificate. Renewal is due at `notAfter - renewBefore`, or at two thirds of the lifetime
when renewBefore is unset (cert-manager's default).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> timedelta:
    """A Go duration of hours, minutes and seconds ("8760h", "1h30m", "90s")."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (use h, m and s, e.g. 8760h or 1h30m)")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return timedelta(seconds=seconds)


CLOCK_SKEW = timedelta(minutes=5)


def validity_window(now: datetime, duration: timedelta) -> tuple[datetime, datetime]:
    """notBefore and notAfter for a new certificate. notBefore is backdated by the
    tolerated clock skew, so a verifier whose clock runs a little behind ours accepts
    it at once; notAfter is counted from now, so the full duration is usable."""
    start = now.replace(microsecond=0)
    return start - CLOCK_SKEW, start + duration


def renewal_time(
    not_before: datetime, not_after: datetime, renew_before: timedelta | None
) -> datetime:
    """When to renew, truncated to whole seconds.

    With renewBefore unset, or not shorter than the lifetime (the CRD refuses that, but
    a certificate found in a store may be short), renewal comes at two thirds of it.
    """
    lifetime = not_after - not_before
    if renew_before is None or renew_before >= lifetime or renew_before <= timedelta(0):
        due = not_before + lifetime * 2 / 3
    else:
        due = not_after - renew_before
    return due.replace(microsecond=0)


@dataclass(frozen=True)
class Key:
    """A key credential registered on the application."""

    key_id: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class RotationState:
    """What the store serves and what the application accepts."""

    registered: tuple[Key, ...]  # keyCredentials on the application
    active: str | None  # key id the store (Secret or Key Vault) serves now
    previous: str | None  # key id being retired
    switched_at: datetime | None  # when the store switched from previous to active
    # Keys the store could start serving. A Secret can serve only a key issued in the same
    # step (its private key exists nowhere else), so it passes an empty set; None means any.
    switchable: frozenset[str] | None = None

    def can_switch_to(self, key_id: str) -> bool:
        return self.switchable is None or key_id in self.switchable


class Action(StrEnum):
    ISSUE = "Issue"  # create a new certificate and add its key to the application
    SWITCH = "Switch"  # make the store serve the newest registered key
    REMOVE = "Remove"  # remove a key from the application
    NOTHING = "Nothing"


@dataclass(frozen=True)
class Step:
    action: Action
    key_id: str | None = None
    reason: str = ""


def next_step(
    state: RotationState,
    now: datetime,
    *,
    renew_before: timedelta | None,
    overlap: timedelta,
) -> Step:
    """The one next thing to do; call again after doing it."""
    keys = {k.key_id: k for k in state.registered}
    active = keys.get(state.active) if state.active else None
    if active is None:
        newest = max(state.registered, key=lambda k: k.not_after, default=None)
        if (
            newest is not None
            and newest.not_after > now
            and newest.key_id != state.previous
            and state.can_switch_to(newest.key_id)
        ):
            return Step(Action.SWITCH, newest.key_id, "the store serves no registered key")
        return Step(Action.ISSUE, reason="no valid key is registered")
    # A key added for a rotation that has not switched yet: switch now.
    pending = [
        k
        for k in state.registered
        if k.key_id not in (state.active, state.previous)
        and k.not_after > active.not_after
        and state.can_switch_to(k.key_id)
    ]
    if pending:
        return Step(
            Action.SWITCH, max(pending, key=lambda k: k.not_after).key_id, "new key registered"
        )
    if state.previous and state.previous in keys:
        retire_at = (state.switched_at or now) + overlap
        if now >= retire_at:
            return Step(Action.REMOVE, state.previous, "overlap ended")
        return Step(Action.NOTHING, reason=f"previous key retires at {retire_at.isoformat()}")
    if now >= renewal_time(active.not_before, active.not_after, renew_before):
        return Step(Action.ISSUE, reason="renewal is due")
    strays = [k.key_id for k in state.registered if k.key_id != state.active]
    if strays:
        return Step(Action.REMOVE, strays[0], "not served and not overlapping")
    return Step(Action.NOTHING)


def remove_key(
    registered: Sequence[Key],
    key_id: str,
    *,
    active: str | None,
    previous: str | None,
    switched_at: datetime | None,
    now: datetime,
    overlap: timedelta,
) -> tuple[Key, ...]:
    """The key list without `key_id`; refuses to drop a key that is still in use."""
    if key_id == active:
        raise ValueError(f"key {key_id} is served by the store and cannot be removed")
    if key_id == previous and switched_at is not None and now < switched_at + overlap:
        raise ValueError(f"key {key_id} is still within its overlap window")
    return tuple(k for k in registered if k.key_id != key_id)


class Alert(StrEnum):
    NONE = "None"
    EXPIRING = "Expiring"  # renewal has failed and expiry is near
    EXPIRED = "Expired"


def alert(now: datetime, not_after: datetime, renewal: datetime, *, renewal_failing: bool) -> Alert:
    """Expired is always reported; expiring only when renewal is overdue and failing."""
    if now >= not_after:
        return Alert.EXPIRED
    if renewal_failing and now >= renewal:
        return Alert.EXPIRING
    return Alert.NONE
