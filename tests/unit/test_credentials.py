"""Credential renewal and rotation with overlap, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aml_identity.reconcile.credentials import (
    CLOCK_SKEW,
    Action,
    Alert,
    Key,
    RotationState,
    alert,
    next_step,
    parse_duration,
    remove_key,
    renewal_time,
    validity_window,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("8760h", 8760 * 3600), ("1h30m", 5400), ("90s", 90), ("0.5h", 1800)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "10", "1d", "h", "0s", "1h 30m", "-1h"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_renewal_defaults_to_two_thirds() -> None:
    assert renewal_time(T0, T0 + 9 * H, None) == T0 + 6 * H


def test_renew_before() -> None:
    assert renewal_time(T0, T0 + 8760 * H, 720 * H) == T0 + 8040 * H


def test_renew_before_longer_than_lifetime_falls_back() -> None:
    assert renewal_time(T0, T0 + 3 * H, 5 * H) == T0 + 2 * H


def test_very_short_lifetimes_truncate_to_seconds() -> None:
    due = renewal_time(T0, T0 + timedelta(seconds=10), None)
    assert due == T0 + timedelta(seconds=6)
    assert due.microsecond == 0


def key(name: str, start: datetime, hours: float) -> Key:
    return Key(name, start, start + timedelta(hours=hours))


def test_rotation_adds_switches_then_removes_after_overlap() -> None:
    old = key("old", T0, 9)
    overlap = timedelta(minutes=30)
    state = RotationState((old,), "old", None, None)
    assert next_step(state, T0 + 5 * H, renew_before=None, overlap=overlap).action is Action.NOTHING
    due = next_step(state, T0 + 6 * H, renew_before=None, overlap=overlap)
    assert due.action is Action.ISSUE
    new = key("new", T0 + 6 * H, 9)
    added = RotationState((old, new), "old", None, None)
    switch = next_step(added, T0 + 6 * H, renew_before=None, overlap=overlap)
    assert (switch.action, switch.key_id) == (Action.SWITCH, "new")
    switched = RotationState((old, new), "new", "old", T0 + 6 * H)
    # Both keys stay registered through the overlap: no moment without a valid key.
    waiting = next_step(
        switched, T0 + 6 * H + timedelta(minutes=29), renew_before=None, overlap=overlap
    )
    assert waiting.action is Action.NOTHING
    remove = next_step(switched, T0 + 6 * H + overlap, renew_before=None, overlap=overlap)
    assert (remove.action, remove.key_id) == (Action.REMOVE, "old")


def test_nothing_registered_means_issue() -> None:
    state = RotationState((), None, None, None)
    assert next_step(state, T0, renew_before=None, overlap=H).action is Action.ISSUE


def test_store_lost_its_key_switches_to_a_valid_one() -> None:
    state = RotationState((key("k1", T0, 9),), None, None, None)
    step = next_step(state, T0 + H, renew_before=None, overlap=H)
    assert (step.action, step.key_id) == (Action.SWITCH, "k1")


def test_a_store_that_cannot_switch_issues_instead() -> None:
    """A Secret holds no private key for a key already registered: it must issue."""
    state = RotationState((key("k1", T0, 9),), None, None, None, switchable=frozenset())
    assert next_step(state, T0 + H, renew_before=None, overlap=H).action is Action.ISSUE


def test_a_key_without_material_is_removed_not_switched_to() -> None:
    """A key registered by a step that crashed before the store took it: removed."""
    active, orphan = key("a", T0, 9), key("orphan", T0 + H, 9)
    state = RotationState((active, orphan), "a", None, None, switchable=frozenset())
    step = next_step(state, T0 + 2 * H, renew_before=None, overlap=H)
    assert (step.action, step.key_id) == (Action.REMOVE, "orphan")
    vault = RotationState((active, orphan), "a", None, None, switchable=frozenset({"orphan"}))
    step = next_step(vault, T0 + 2 * H, renew_before=None, overlap=H)
    assert (step.action, step.key_id) == (Action.SWITCH, "orphan")


def test_stray_keys_are_removed_only_when_not_in_use() -> None:
    active, stray = key("a", T0, 9), key("s", T0 - 10 * H, 12)
    state = RotationState((active, stray), "a", None, None)
    step = next_step(state, T0 + H, renew_before=None, overlap=H)
    assert (step.action, step.key_id) == (Action.REMOVE, "s")


def test_key_list_edits_never_drop_a_key_in_use() -> None:
    keys = (key("a", T0, 9), key("b", T0, 9))
    with pytest.raises(ValueError, match="served by the store"):
        remove_key(keys, "a", active="a", previous="b", switched_at=T0, now=T0, overlap=H)
    with pytest.raises(ValueError, match="overlap window"):
        remove_key(
            keys,
            "b",
            active="a",
            previous="b",
            switched_at=T0,
            now=T0 + timedelta(minutes=59),
            overlap=H,
        )
    assert (
        remove_key(keys, "b", active="a", previous="b", switched_at=T0, now=T0 + H, overlap=H)
        == keys[:1]
    )


def test_new_certificates_tolerate_clock_skew() -> None:
    now = T0 + timedelta(microseconds=500)
    not_before, not_after = validity_window(now, 24 * H)
    assert not_before == T0 - CLOCK_SKEW
    assert not_after == T0 + 24 * H
    # Renewal counts from the backdated start: still before two thirds of the usable time.
    assert renewal_time(not_before, not_after, None) < T0 + 16 * H


def test_alerts() -> None:
    not_after = T0 + 9 * H
    renewal = renewal_time(T0, not_after, None)
    assert alert(T0 + 7 * H, not_after, renewal, renewal_failing=False) is Alert.NONE
    assert alert(T0 + 7 * H, not_after, renewal, renewal_failing=True) is Alert.EXPIRING
    assert alert(not_after, not_after, renewal, renewal_failing=False) is Alert.EXPIRED
    assert (
        alert(not_after + timedelta(seconds=1), not_after, renewal, renewal_failing=True)
        is Alert.EXPIRED
    )
