"""Undeclared grants, the pure part: which assignments count, what is new, the condition."""

from __future__ import annotations

from aml_identity.api.common import ConditionStatus, Reason
from aml_identity.api.observed import RoleAssignment
from aml_identity.reconcile.grants import GrantScan, newly_found, scan_scopes, undeclared

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-ml"
WS = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/ws-prod"
ROLES = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions"
READER = f"{ROLES}/acdd72a7-3385-48ef-bd42-f606fba81ae7"
ME, OTHER = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def assignment(name: str, scope: str, principal: str = ME) -> RoleAssignment:
    return RoleAssignment(
        id=f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        name=name,
        scope=scope,
        role_definition_id=READER,
        principal_id=principal,
        principal_type="ServicePrincipal",
    )


def test_scopes_default_to_the_subscription_and_drop_what_another_covers() -> None:
    assert scan_scopes(["subscription"], SUB) == (f"/subscriptions/{SUB}",)
    assert scan_scopes([WS, RG, RG.upper(), " "], SUB) == (RG,)
    assert scan_scopes([], SUB) == ()


def test_only_the_principals_undeclared_assignments_count_once_each() -> None:
    listed = [
        assignment("b", WS),
        assignment("a", RG),
        assignment("declared", RG),
        assignment("theirs", RG, OTHER),
        assignment("A", RG),  # the same assignment from a second listing
    ]
    found = undeclared(listed, ME.upper(), lambda a: a.name == "declared", [RG])
    assert [a.name for a in found] == ["a", "b"]  # sorted by scope
    above = [assignment("inherited", "/providers/Microsoft.Management/managementGroups/root")]
    assert undeclared(above, ME, lambda a: False, [f"/subscriptions/{SUB}"]) == []


def test_each_finding_is_announced_once() -> None:
    found = [assignment("a", RG), assignment("b", WS)]
    assert [a.name for a in newly_found(["A"], found)] == ["b"]
    assert newly_found(["a", "b"], found) == []


def test_the_condition_says_what_was_found_kept_and_removed() -> None:
    scopes = (f"/subscriptions/{SUB}",)
    status, reason, message = GrantScan(scopes).condition()
    assert (status, reason) == (ConditionStatus.FALSE, Reason.ALL_GRANTS_DECLARED)
    found = GrantScan(scopes, undeclared=(assignment("a", WS),), kept_because="no policy")
    status, reason, message = found.condition()
    assert (status, reason) == (ConditionStatus.TRUE, Reason.UNDECLARED_GRANTS)
    assert "assignment a" in message
    assert WS in message
    assert message.endswith("kept: no policy")
    assert found.status() == [{"name": "a", "scope": WS, "roleDefinitionId": READER}]
    named = GrantScan(
        scopes, undeclared=(assignment("a", WS),), role_names={READER.lower(): "Reader"}
    )
    assert f"Reader at {WS}" in named.condition()[2]
    assert named.status()[0]["roleName"] == "Reader"
    removed = GrantScan(scopes, removed=(assignment("a", WS),))
    assert removed.condition()[0] == ConditionStatus.FALSE
    assert "removed 1" in removed.condition()[2]
    status, reason, message = GrantScan(scopes, unreadable="403 Forbidden").condition()
    assert (status, reason) == (ConditionStatus.UNKNOWN, Reason.GRANTS_UNREADABLE)
    assert "403 Forbidden" in message


def test_many_findings_are_summarised_in_the_message() -> None:
    many = tuple(assignment(f"n{i:02}", RG) for i in range(12))
    message = GrantScan((RG,), undeclared=many).condition()[2]
    assert "12 role assignment(s)" in message
    assert "and 7 more (status.undeclaredGrants)" in message


def test_a_candidate_is_confirmed_after_the_grace_period_and_forgotten_when_gone() -> None:
    from aml_identity.reconcile.grants import Sightings

    seen = Sightings()
    assert seen.confirmed("wid-1", ["a"], now=100.0, grace=5.0) == set()
    assert seen.confirmed("wid-1", ["A", "b"], now=104.0, grace=5.0) == set()
    assert seen.confirmed("wid-1", ["a", "b"], now=105.0, grace=5.0) == {"a"}
    # "a" went away (a binding recorded it): seen again later, it waits again.
    assert seen.confirmed("wid-1", ["b"], now=110.0, grace=5.0) == {"b"}
    assert seen.confirmed("wid-1", ["a", "b"], now=111.0, grace=5.0) == {"b"}
    assert seen.confirmed("wid-1", [], now=112.0, grace=5.0) == set()
    assert len(seen) == 0
    seen.confirmed("wid-2", ["c"], now=0.0, grace=5.0)
    seen.forget("wid-2")
    assert len(seen) == 0


def test_a_snapshot_serves_until_it_is_too_old() -> None:
    from aml_identity.reconcile.grants import Snapshot

    seen = Snapshot()
    assert seen.fresh(0.0, 30.0) is None
    seen.keep([{"metadata": {"name": "b"}}], now=10.0)
    assert seen.fresh(39.0, 30.0) == [{"metadata": {"name": "b"}}]
    assert seen.fresh(40.0, 30.0) is None
