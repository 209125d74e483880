"""Azure ML's workspace listKeys: routed, authorized with its own action, Azure's shape."""

from __future__ import annotations

from azlocal.server import AzLocal
from support.azure import Arm, admin_credential, holding, operator_credential
from support.world import ML_API, RG_ML, SUB, WORKSPACE

READER = (
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
    "acdd72a7-3385-48ef-bd42-f606fba81ae7"
)
ACTION = "Microsoft.MachineLearningServices/workspaces/listKeys/action"


def test_owner_lists_workspace_keys(azlocal: AzLocal) -> None:
    owner = Arm(azlocal, admin_credential(azlocal), retry_total=0)
    answer = owner.send("POST", f"{WORKSPACE}/listKeys", ML_API)
    assert answer.status_code == 200
    keys = answer.json()
    assert set(keys) == {
        "userStorageKey",
        "userStorageResourceId",
        "appInsightsInstrumentationKey",
        "containerRegistryCredentials",
        "notebookAccessKeys",
    }
    assert keys["userStorageResourceId"].startswith(
        f"{RG_ML}/providers/Microsoft.Storage/storageAccounts/"
    )
    registry = keys["containerRegistryCredentials"]
    assert set(registry) == {"location", "username", "passwords"}
    assert [p["name"] for p in registry["passwords"]] == ["password", "password2"]
    assert all(p["value"] for p in registry["passwords"])
    assert set(keys["notebookAccessKeys"]) == {"primaryAccessKey", "secondaryAccessKey"}
    # Derived from the workspace: the same every time, different for another workspace.
    assert owner.send("POST", f"{WORKSPACE}/listKeys", ML_API).json() == keys
    workspaces = f"{RG_ML}/providers/Microsoft.MachineLearningServices/workspaces"
    dev = owner.send("POST", f"{workspaces}/ws-dev/listKeys", ML_API)
    assert dev.json()["userStorageKey"] != keys["userStorageKey"]
    missing = owner.send("POST", f"{workspaces}/nope/listKeys", ML_API)
    assert missing.status_code == 404


def test_operator_and_reader_may_not_list_keys(azlocal: AzLocal) -> None:
    operator = Arm(azlocal, operator_credential(azlocal), retry_total=0)
    assert operator.send("GET", WORKSPACE, ML_API).status_code == 200
    denied = operator.send("POST", f"{WORKSPACE}/listKeys", ML_API)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AuthorizationFailed"
    assert f"perform action '{ACTION}'" in denied.json()["error"]["message"]

    with holding(azlocal, READER, RG_ML) as as_reader:
        assert as_reader.send("GET", WORKSPACE, ML_API).status_code == 200
        refused = as_reader.send("POST", f"{WORKSPACE}/listKeys", ML_API)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "AuthorizationFailed"
        assert f"perform action '{ACTION}'" in refused.json()["error"]["message"]
