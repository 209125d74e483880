"""RBAC evaluation and ARM scope rules, as pure functions."""

from __future__ import annotations

from azlocal import armids, rbac

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg-ml"
WS = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/ws-prod"

DATA_SCIENTIST = rbac.Permission(
    actions=(
        "Microsoft.MachineLearningServices/workspaces/*/read",
        "Microsoft.MachineLearningServices/workspaces/*/write",
    ),
    not_actions=(
        "Microsoft.MachineLearningServices/workspaces/write",
        "Microsoft.MachineLearningServices/workspaces/computes/*/write",
    ),
)


# What a single pattern matches is tested with the shared matcher (tests/unit/test_operations.py).


def test_not_actions_subtract() -> None:
    endpoint_write = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write"
    compute_write = "Microsoft.MachineLearningServices/workspaces/computes/gpu/write"
    assert rbac.permission_allows(DATA_SCIENTIST, endpoint_write)
    assert not rbac.permission_allows(DATA_SCIENTIST, compute_write)
    assert not rbac.permission_allows(
        DATA_SCIENTIST, "Microsoft.MachineLearningServices/workspaces/write"
    )


def test_data_actions_are_separate() -> None:
    permission = rbac.Permission(
        data_actions=("Microsoft.KeyVault/vaults/secrets/getSecret/action",)
    )
    action = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
    assert rbac.permission_allows(permission, action, data=True)
    assert not rbac.permission_allows(permission, action)


def test_assignments_apply_at_and_below_their_scope_only() -> None:
    grants = [rbac.Grant("p1", RG, (DATA_SCIENTIST,))]
    action = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"
    assert rbac.is_allowed(grants, ["p1"], action, f"{WS}/onlineEndpoints/e1")
    assert rbac.is_allowed(grants, ["P1"], action, WS.upper()), "ids and scopes ignore case"
    assert not rbac.is_allowed(grants, ["p1"], action, SUB), "not above the scope"
    assert not rbac.is_allowed(grants, ["p1"], action, f"{SUB}/resourceGroups/rg-ml2"), (
        "prefix is not containment"
    )
    assert not rbac.is_allowed(grants, ["p2"], action, WS), "not for other principals"


def test_group_membership_counts() -> None:
    grants = [rbac.Grant("group-1", "/", (rbac.Permission(actions=("*",)),))]
    assert rbac.is_allowed(grants, ["user-1", "group-1"], "x/y/read", WS)
    assert not rbac.is_allowed(grants, ["user-1"], "x/y/read", WS)


def test_scope_helpers() -> None:
    assert armids.is_within(WS, RG)
    assert armids.is_within(RG, "/")
    assert not armids.is_within(RG, WS)
    assert armids.subscription_of(WS) == "00000000-0000-0000-0000-000000000001"
    assert armids.resource_group_of(WS.replace("resourceGroups", "resourcegroups")) == "rg-ml"
    assert armids.resource_group_of(SUB) is None
    assert armids.is_guid("6f1b0f43-3d4f-4c6e-9a57-5b0b7f6f2c11")
    assert armids.is_guid("6f1b0f433d4f4c6e9a575b0b7f6f2c11")
    assert not armids.is_guid("training-binding")
    assert (
        armids.guid_hex("6F1B0F43-3D4F-4C6E-9A57-5B0B7F6F2C11")
        == "6f1b0f433d4f4c6e9a575b0b7f6f2c11"
    )
    assert armids.norm(RG + "/") == RG.lower()
