"""The operations catalog and Azure's wildcard semantics (operator/azure_operations), and
what an MLRole's patterns mean (reconcile/role.py): pure, no I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import regenerate

from aml_identity.api.mlrole import MLRoleSpec
from aml_identity.reconcile.role import (
    check_operations,
    explain_spec,
    patterns,
)
from azure_operations import Problem, VerbCounts, catalog, matches, resource_type_and_verb

ML = "Microsoft.MachineLearningServices"
TYPO = f"{ML}/workspaces/onlineEndpoint/read"
SAVED = Path(__file__).resolve().parents[2] / "tools/operations/saved"
# AzureML Data Scientist, as Azure publishes it (emulator/azlocal/data/builtin_roles.yaml).
DATA_SCIENTIST = {
    "actions": [f"{ML}/workspaces/*/{verb}" for verb in ("read", "action", "delete", "write")],
    "not_actions": [
        f"{ML}/workspaces/delete",
        f"{ML}/workspaces/write",
        f"{ML}/workspaces/computes/*/write",
        f"{ML}/workspaces/computes/*/delete",
        f"{ML}/workspaces/computes/listKeys/action",
        f"{ML}/workspaces/listKeys/action",
    ],
}


def role(**permissions: list[str]) -> MLRoleSpec:
    return MLRoleSpec.model_validate(
        {
            "roleName": "r",
            "assignableScopes": ["/subscriptions/s"],
            "permissions": {k: v for k, v in permissions.items()},
        }
    )


@pytest.mark.parametrize(
    ("expression", "operation", "expected"),
    [
        ("*", "Microsoft.Anything/x/read", True),
        ("*/read", "Microsoft.Compute/virtualMachines/read", True),
        ("*/read", "Microsoft.Compute/virtualMachines/write", False),
        ("Microsoft.Authorization/*/Write", "microsoft.authorization/roleAssignments/write", True),
        (f"{ML}/workspaces/*/read", f"{ML}/workspaces/onlineEndpoints/deployments/read", True),
        # A whole /*/ segment also stands for none: workspaces/*/read covers workspaces/read.
        (f"{ML}/workspaces/*/read", f"{ML}/workspaces/read", True),
        (f"{ML}/workspaces/*/read", f"{ML}/workspacesX/read", False),
        (f"{ML}/workspaces/*/read", f"{ML}/registries/read", False),
        ("Microsoft.Storage/*", "Microsoft.Storage/storageAccounts/listKeys/action", True),
        (
            "Microsoft.Storage/storageAccounts/list*",
            "Microsoft.Storage/storageAccounts/listKeys/action",
            True,
        ),
        ("a.b/c", "aXb/c", False),  # dots are literal
    ],
)
def test_wildcard_semantics(expression: str, operation: str, expected: bool) -> None:
    assert matches(expression, operation) is expected


def test_a_misspelt_operation_gets_the_closest_real_ones() -> None:
    found = catalog().check(f"{ML}/workspaces/onlineEndpoint/read", data=False)
    assert found is not None
    assert found.suggestions == (), "suggestions are made only when asked for"
    finding = catalog().suggested(found)
    assert finding.problem == Problem.NO_MATCH
    assert finding.code == "InvalidActionOrNotAction"
    assert finding.suggestions[0] == f"{ML}/workspaces/onlineEndpoints/read"


@pytest.mark.parametrize(
    ("expression", "data", "problem"),
    [
        ("Microsoft.Nonexistent/things/read", False, Problem.UNKNOWN_PROVIDER),
        # A wildcard must match something; blobs are data operations, not actions.
        (
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",
            False,
            Problem.NO_MATCH,
        ),
        (f"{ML}/workspaces/*/computes/*", False, Problem.MULTIPLE_WILDCARDS),
        (f"{ML}/workspaces/read", True, Problem.NO_DATA_OPERATIONS),
        ("Microsoft.KeyVault/vaults/secrets/getSecret/action", False, Problem.NO_MATCH),
    ],
)
def test_patterns_azure_refuses(expression: str, data: bool, problem: Problem) -> None:
    finding = catalog().check(expression, data=data)
    assert finding is not None
    assert finding.problem == problem
    assert finding.code == (
        "InvalidDataActionOrNotDataAction" if data else "InvalidActionOrNotAction"
    )


@pytest.mark.parametrize(
    ("expression", "data"),
    [
        ("*", False),
        ("*/read", False),
        (f"{ML}/workspaces/*/read", False),
        ("microsoft.machinelearningservices/WORKSPACES/onlineendpoints/READ", False),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*", True),
        ("Microsoft.KeyVault/vaults/secrets/getSecret/action", True),
        # A real provider outside the catalog: Azure decides.
        ("Microsoft.Compute/virtualMachines/nonsense", False),
    ],
)
def test_patterns_azure_accepts(expression: str, data: bool) -> None:
    assert catalog().check(expression, data=data) is None


def test_the_data_scientist_role_resolved() -> None:
    resolved = catalog().resolve(
        DATA_SCIENTIST["actions"], DATA_SCIENTIST["not_actions"], data=False
    )
    allowed = {op.lower() for op in resolved.allowed}
    denied = {op.lower() for op in resolved.denied}
    assert f"{ML}/workspaces/read".lower() in allowed
    assert f"{ML}/workspaces/onlineEndpoints/write".lower() in allowed
    assert f"{ML}/workspaces/computes/read".lower() in allowed
    for refused in ("write", "delete", "listKeys/action", "computes/write", "computes/delete"):
        assert f"{ML}/workspaces/{refused}".lower() in denied, refused
    assert not allowed & denied
    assert all(op.lower().startswith(f"{ML}/workspaces/".lower()) for op in allowed)
    assert resolved.unresolved == ()


def test_patterns_beyond_the_catalog_are_reported_unresolved() -> None:
    resolved = catalog().resolve(["*/read", "Microsoft.Insights/*"], [], data=False)
    assert resolved.unresolved == ("*/read", "Microsoft.Insights/*")
    assert f"{ML}/workspaces/read" in resolved.allowed


def test_verbs_and_resource_types() -> None:
    assert resource_type_and_verb(f"{ML}/workspaces/listKeys/action") == (
        f"{ML}/workspaces",
        "listKeys/action",
    )
    assert resource_type_and_verb(f"{ML}/workspaces/read") == (f"{ML}/workspaces", "read")
    assert resource_type_and_verb(f"{ML}/register/action") == (ML, "register/action")
    counts = VerbCounts.of(["a/read", "a/write", "a/delete", "a/x/action", "a/b/READ"])
    assert (counts.read, counts.write, counts.delete, counts.action) == (2, 1, 1, 1)


def test_an_mlrole_with_a_typo_is_refused_with_a_suggestion() -> None:
    spec = role(
        actions=[f"{ML}/workspaces/onlineEndpoints/read", f"{ML}/workspaces/onlineEndpoint/read"]
    )
    problem = check_operations(spec, catalog()).refused
    assert problem is not None
    assert problem.startswith(f"spec.permissions.actions[1]: '{ML}/workspaces/onlineEndpoint/read'")
    assert f"did you mean {ML}/workspaces/onlineEndpoints/read" in problem
    assert "list of 2024-02-07" in problem  # the date of the list it was checked against


def test_unknown_providers_are_passed_through_with_a_warning() -> None:
    spec = role(actions=["Microsoft.Nonexistent/things/read"])
    assert check_operations(spec, catalog()).refused is None
    assert check_operations(spec, catalog()).warnings == [
        "spec.permissions.actions[0]: Microsoft.Nonexistent is not a resource provider this "
        "version of the operator knows; Azure will decide"
    ]


def test_many_unknown_operations_are_summarised() -> None:
    spec = role(actions=[f"{ML}/workspaces/nope{i}/read" for i in range(8)])
    problem = check_operations(spec, catalog()).refused
    assert problem is not None
    assert problem.count("spec.permissions.actions[") == 5
    assert problem.endswith("; and 3 more")


def test_the_status_summary_of_a_monitor_role() -> None:
    spec = role(
        actions=[
            f"{ML}/workspaces/onlineEndpoints/read",
            f"{ML}/workspaces/onlineEndpoints/*/read",
        ],
        data_actions=["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
    )
    summary = explain_spec(spec, catalog()).summary()
    assert summary["write"] == summary["delete"] == summary["action"] == 0
    assert summary["read"] >= 2
    assert summary["dataActions"] == 1
    assert "notResolved" not in summary
    grouped = explain_spec(spec, catalog()).by_resource_type(data=False)
    assert grouped[f"{ML}/workspaces/onlineEndpoints"]["allows"] == ["read"]


def test_the_shipped_catalog_is_what_the_script_makes_of_the_saved_pages(tmp_path: Path) -> None:
    out = tmp_path / "operations.json"
    assert regenerate.main(["--saved", str(SAVED), "--out", str(out)]) == 0
    made, shipped = json.loads(out.read_text()), json.loads((Path(regenerate.OUT)).read_text())
    made.pop("generated"), shipped.pop("generated")
    assert made == shipped
    assert set(shipped["providers"]) == set(regenerate.CATALOGUED)
    for provider in shipped["providers"].values():
        assert provider["source"].startswith("MicrosoftDocs/azure-docs articles/")
        assert provider["published"][:2] == "20"


def test_the_page_parser_reads_actions_and_data_actions() -> None:
    page = """---
ms.date: 02/23/2026
---
## Microsoft.Example

Intro text.

> [!div class="mx-tableFixed"]
> | Action | Description |
> | --- | --- |
> | Microsoft.Example/things/read | Reads things |
> | Microsoft.Example/things/write | Writes <br> things |
> | **DataAction** | **Description** |
> | Microsoft.Example/things/blobs/read | Reads blobs |

## Next steps
"""
    sections = regenerate.parse_page(page)
    assert list(sections) == ["Microsoft.Example"]
    assert sections["Microsoft.Example"].actions == [
        "Microsoft.Example/things/read",
        "Microsoft.Example/things/write",
    ]
    assert sections["Microsoft.Example"].data_actions == ["Microsoft.Example/things/blobs/read"]
    assert regenerate.page_date(page) == "2026-02-23"


def test_patterns_azure_already_took_pass_even_when_the_catalog_lacks_them() -> None:
    """A catalog older than an operation must not block a role that works: what the
    definition in Azure (or the admitted spec) already has is not refused again."""
    newer = f"{ML}/workspaces/brandNewThings/read"
    spec = role(actions=[f"{ML}/workspaces/read", newer])
    assert check_operations(spec, catalog()).refused is not None
    assert check_operations(spec, catalog(), patterns(spec.permissions)).refused is None
    # What is added next to them is still checked.
    grown = role(actions=[f"{ML}/workspaces/read", newer, TYPO])
    problem = check_operations(grown, catalog(), patterns(spec.permissions)).refused
    assert problem is not None
    assert problem.startswith(f"spec.permissions.actions[2]: '{TYPO}'")


def test_hundreds_of_unknown_operations_are_checked_quickly() -> None:
    """Admission has 10 s; only the reported findings get (costly) suggestions."""
    import time

    spec = role(actions=[f"{ML}/workspaces/nope{i}/read" for i in range(1000)])
    started = time.monotonic()
    assert check_operations(spec, catalog()).refused is not None
    assert time.monotonic() - started < 2


def test_an_exclusion_that_might_not_exclude_does_not_hide_privilege() -> None:
    """The privilege guard reads notActions narrowly: `roleAssignments/*/write` may not
    cover `roleAssignments/write` if Azure's `/*/` never stands for no segment."""
    from aml_identity.reconcile.policy import authorization_writes

    write = "Microsoft.Authorization/roleAssignments/write"
    delete = "Microsoft.Authorization/roleAssignments/delete"
    actions = ["Microsoft.Authorization/roleAssignments/*"]
    wide = ["Microsoft.Authorization/roleAssignments/*/write"]
    assert authorization_writes(actions, wide) == [write, delete]
    assert authorization_writes(actions, [write, delete]) == []
