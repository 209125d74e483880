"""ABAC delegation conditions: the parser and evaluator, and how rbac applies them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from azlocal import abac, rbac, seed

WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
READ = "Microsoft.Authorization/roleAssignments/read"
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
RBAC_ADMIN = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg-ml"

# "Constrain roles and principal types" (delegate-role-assignments-examples), as indented
# there, with Data Scientist and Reader for service principals only.
CANONICAL = f"""
(
 (
  !(ActionMatches{{'{WRITE}'}})
 )
 OR
 (
  @Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{DATA_SCIENTIST}, {READER}}}
  AND
  @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {{'ServicePrincipal'}}
 )
)
AND
(
 (
  !(ActionMatches{{'{DELETE}'}})
 )
 OR
 (
  @Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{DATA_SCIENTIST}, {READER}}}
  AND
  @Resource[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {{'ServicePrincipal'}}
 )
)
"""  # noqa: E501 (the documented layout)
# "Allow most roles, but don't allow others to assign roles", on one line.
ALL_BUT_ADMINS = (
    f"((!(ActionMatches{{'{WRITE}'}})) OR (@Request[Microsoft.Authorization/roleAssignments:"
    f"RoleDefinitionId] ForAnyOfAllValues:GuidNotEquals {{{OWNER}, {RBAC_ADMIN}}})) AND "
    f"((!(ActionMatches{{'{DELETE}'}})) OR (@Resource[Microsoft.Authorization/roleAssignments:"
    f"RoleDefinitionId] ForAnyOfAllValues:GuidNotEquals {{{OWNER}, {RBAC_ADMIN}}}))"
)


def role_id(guid: str) -> str:
    return f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def request(role: str, principal_type: str = "ServicePrincipal") -> abac.Attributes:
    return abac.Attributes(
        request={
            abac.ROLE_DEFINITION_ID: role_id(role),
            abac.PRINCIPAL_ID: "11111111-1111-1111-1111-111111111111",
            abac.PRINCIPAL_TYPE: principal_type,
        }
    )


def resource(role: str, principal_type: str = "ServicePrincipal") -> abac.Attributes:
    return abac.Attributes(resource=request(role, principal_type).request)


@pytest.mark.parametrize(
    ("action", "attributes", "expected"),
    [
        (WRITE, request(DATA_SCIENTIST), True),
        (WRITE, request(READER.upper()), True),  # GUIDs ignore case
        (WRITE, request(OWNER), False),
        (WRITE, request(DATA_SCIENTIST, "User"), False),
        (WRITE, request(DATA_SCIENTIST, "serviceprincipal"), True),  # ...IgnoreCase
        (WRITE, abac.NO_ATTRIBUTES, False),  # nothing to compare: the write is not allowed
        (DELETE, resource(DATA_SCIENTIST), True),
        (DELETE, resource(OWNER), False),
        (DELETE, request(DATA_SCIENTIST), False),  # a delete reads @Resource, not @Request
        (READ, abac.NO_ATTRIBUTES, True),  # actions the condition does not target pass
        ("Microsoft.MachineLearningServices/workspaces/read", abac.NO_ATTRIBUTES, True),
    ],
)
def test_canonical_condition(action: str, attributes: abac.Attributes, expected: bool) -> None:
    assert abac.evaluate(abac.parse(CANONICAL), action, attributes) is expected


@pytest.mark.parametrize(
    ("action", "attributes", "expected"),
    [
        (WRITE, request(DATA_SCIENTIST), True),
        (WRITE, request(OWNER), False),
        (WRITE, request(RBAC_ADMIN), False),
        (DELETE, resource(READER), True),
        (DELETE, resource(OWNER), False),
    ],
)
def test_for_any_of_all_values_guid_not_equals(
    action: str, attributes: abac.Attributes, expected: bool
) -> None:
    assert abac.evaluate(abac.parse(ALL_BUT_ADMINS), action, attributes) is expected


def test_the_tree_of_a_small_condition() -> None:
    text = (
        f"not actionmatches{{'{WRITE}'}} || "
        f"@request[microsoft.authorization/roleassignments:principalid] guidequals "
        "'AAAAAAAA-0000-0000-0000-000000000000'"
    )
    assert abac.parse(text) == abac.Or(
        (
            abac.Not(abac.ActionMatches(WRITE)),
            abac.Comparison(
                "Request",
                abac.PRINCIPAL_ID,
                None,
                "GuidEquals",
                ("aaaaaaaa-0000-0000-0000-000000000000",),
            ),
        )
    )


@pytest.mark.parametrize(
    ("function", "values", "actual", "expected"),
    [
        ("StringEquals", "'ServicePrincipal'", "ServicePrincipal", True),
        ("StringEquals", "'ServicePrincipal'", "serviceprincipal", False),  # case-sensitive
        ("StringEqualsIgnoreCase", "'group'", "Group", True),
        ("StringNotEquals", "'User'", "Group", True),
        ("StringNotEqualsIgnoreCase", "'user'", "User", False),
        ("ForAnyOfAnyValues:StringEqualsIgnoreCase", "{'User', 'Group'}", "group", True),
        ("ForAnyOfAnyValues:StringEqualsIgnoreCase", "{'User', 'Group'}", "Device", False),
        ("ForAllOfAnyValues:StringEquals", "{'User', 'Group'}", "User", True),
        ("ForAllOfAllValues:StringNotEquals", "{'User', 'Group'}", "Device", True),
        ("ForAllOfAllValues:StringNotEquals", "{'User', 'Group'}", "User", False),
        ("ForAnyOfAllValues:StringEquals", "{'User', 'Group'}", "User", False),
    ],
)
def test_string_operators(function: str, values: str, actual: str, expected: bool) -> None:
    tree = abac.parse(f"@Resource[{abac.PRINCIPAL_TYPE}] {function} {values}")
    attributes = abac.Attributes(resource={abac.PRINCIPAL_TYPE: actual})
    assert abac.evaluate(tree, DELETE, attributes) is expected


def test_guid_operators_compare_a_role_definition_id_by_its_last_segment() -> None:
    equals = abac.parse(f"@Request[{abac.ROLE_DEFINITION_ID}] GuidEquals {OWNER}")
    not_equals = abac.parse(f"@Request[{abac.ROLE_DEFINITION_ID}] GuidNotEquals {{{OWNER}}}")
    for role in (
        OWNER,
        role_id(OWNER),
        f"/providers/Microsoft.Authorization/roleDefinitions/{OWNER}",
    ):
        attributes = abac.Attributes(request={abac.ROLE_DEFINITION_ID: role})
        assert abac.evaluate(equals, WRITE, attributes)
        assert not abac.evaluate(not_equals, WRITE, attributes)
    # An absent attribute satisfies neither.
    assert not abac.evaluate(equals, WRITE)
    assert not abac.evaluate(not_equals, WRITE)


def test_action_matches_uses_permission_wildcards() -> None:
    tree = abac.parse("ActionMatches{'Microsoft.Authorization/roleAssignments/*'}")
    assert abac.evaluate(tree, WRITE)
    assert abac.evaluate(tree, "microsoft.authorization/ROLEASSIGNMENTS/delete")
    assert not abac.evaluate(tree, "Microsoft.Authorization/roleDefinitions/write")


def test_and_or_keywords_and_symbols() -> None:
    yes, no = "ActionMatches{'*'}", "ActionMatches{'x'}"
    assert abac.evaluate(abac.parse(f"{yes} and {yes} AND {yes}"), WRITE)
    assert not abac.evaluate(abac.parse(f"{yes} && {no}"), WRITE)
    assert abac.evaluate(abac.parse(f"{no} or {no} || {yes}"), WRITE)
    assert abac.evaluate(abac.parse(f"({yes} AND {no}) OR {yes}"), WRITE)
    assert not abac.evaluate(abac.parse(f"{yes} AND ({no} OR {no})"), WRITE)
    assert abac.evaluate(abac.parse(f"!!{yes}"), WRITE)
    assert abac.evaluate(abac.parse(f"NOT ({no})"), WRITE)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "(",
        "()",
        "ActionMatches{'a'} AND",
        "ActionMatches{'a'} AND ActionMatches{'b'} OR ActionMatches{'c'}",  # needs parentheses
        "ActionMatches{'a'} ActionMatches{'b'}",
        "ActionMatches{'a', 'b'}",  # one action per ActionMatches, as documented
        "ActionMatches{a}",
        "ActionMatches{'a'",
        "SubOperationMatches{'Blob.List'}",
        f"@Request[{abac.ROLE_DEFINITION_ID}] ForAnyOfAnyValues:GuidEquals {{not-a-guid}}",
        f"@Request[{abac.ROLE_DEFINITION_ID}] ForAnyOfAnyValues:GuidEquals {{{OWNER}",
        f"@Request[{abac.ROLE_DEFINITION_ID}] ForAnyOfAnyValues:GuidEquals {{}}",
        f"@Request[{abac.ROLE_DEFINITION_ID}] GuidEquals {{{OWNER}, {READER}}}",  # one value
        f"@Request[{abac.ROLE_DEFINITION_ID}] StringEquals '{OWNER}'",  # GUID attribute
        f"@Request[{abac.PRINCIPAL_TYPE}] GuidEquals {OWNER}",  # string attribute
        f"@Request[{abac.PRINCIPAL_TYPE}] StringEquals User",  # strings are quoted
        f"@Request[{abac.PRINCIPAL_TYPE}] ForSomeValues:StringEquals 'User'",
        f"@Request[{abac.PRINCIPAL_TYPE}] StringLike 'Us*'",
        f"@Principal[{abac.PRINCIPAL_TYPE}] StringEquals 'User'",
        "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] "
        "StringEquals 'logs'",
        f"@Request[{abac.PRINCIPAL_TYPE}] StringEquals 'User' extra",
        "ActionMatches{'a'} # comment",
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(abac.ConditionError):
        abac.parse(text)


def test_an_unparsable_stored_condition_never_holds() -> None:
    assert not abac.holds("ActionMatches{", READ)
    assert abac.holds(CANONICAL, READ)


RBAC_ADMIN_PERMISSION = rbac.Permission(actions=(WRITE, DELETE, "*/read"))


def test_a_condition_limits_only_its_own_grant() -> None:
    conditioned = rbac.Grant("op", RG, (RBAC_ADMIN_PERMISSION,), CANONICAL)
    ws = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/ws-prod"
    assert rbac.is_allowed([conditioned], ["op"], WRITE, ws, attributes=request(DATA_SCIENTIST))
    assert not rbac.is_allowed([conditioned], ["op"], WRITE, ws, attributes=request(OWNER))
    assert rbac.is_allowed([conditioned], ["op"], READ, ws), "reads are not constrained"
    # Another assignment without a condition still allows the action (access is a union).
    plain = rbac.Grant("op", SUB, (RBAC_ADMIN_PERMISSION,))
    assert rbac.is_allowed([conditioned, plain], ["op"], WRITE, ws, attributes=request(OWNER))
    # ... but not one whose permissions do not include the action.
    reader = rbac.Grant("op", SUB, (rbac.Permission(actions=("*/read",)),))
    assert not rbac.is_allowed([conditioned, reader], ["op"], WRITE, ws, attributes=request(OWNER))


def write_seed(path: Path, **assignment: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "tenant": {"id": "7c3f7b52-1d4e-4d5a-9b0e-5f3a2c1d0e01"},
                "principals": [{"kind": "ServicePrincipal", "name": "delegate"}],
                "roleAssignments": [
                    {
                        "principal": "delegate",
                        "role": "Role Based Access Control Administrator",
                        "scope": RG,
                        **assignment,
                    }
                ],
            }
        )
    )
    return path


def test_seeded_assignments_may_carry_a_condition(tmp_path: Path) -> None:
    store, _ = seed.load(write_seed(tmp_path / "seed.yaml", condition=CANONICAL), tmp_path, 0.0)
    (assignment,) = store.role_assignments.values()
    assert (assignment.condition, assignment.condition_version) == (CANONICAL, "2.0")
    properties = assignment.to_json()["properties"]
    assert (properties["condition"], properties["conditionVersion"]) == (CANONICAL, "2.0")
    store, _ = seed.load(write_seed(tmp_path / "plain.yaml"), tmp_path, 0.0)
    (plain,) = store.role_assignments.values()
    assert "condition" not in plain.to_json()["properties"]


@pytest.mark.parametrize(
    "extra", [{"condition": "ActionMatches{"}, {"condition": CANONICAL, "conditionVersion": "1.0"}]
)
def test_a_seed_with_an_invalid_condition_is_refused(tmp_path: Path, extra: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="seed: "):
        seed.load(write_seed(tmp_path / "seed.yaml", **extra), tmp_path, 0.0)
