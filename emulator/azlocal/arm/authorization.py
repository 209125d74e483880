"""Microsoft.Authorization: role assignments and role definitions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from azlocal import abac, armids
from azlocal.arm.common import require_body_object, require_resource_group, require_subscription
from azlocal.arm.router import ArmRequest, AttributeReader, Handler, Router
from azlocal.context import Context
from azlocal.errors import ArmError
from azlocal.store import Principal, RoleAssignment, RoleDefinition, Store
from azure_operations import Finding, Problem, catalog

ASSIGNMENT_API_VERSIONS = frozenset(
    {
        "2015-07-01",
        "2018-01-01-preview",
        "2018-09-01-preview",
        "2020-03-01-preview",
        "2020-04-01-preview",
        "2020-08-01-preview",
        "2020-10-01-preview",
        "2022-01-01-preview",
        "2022-04-01",
    }
)
DEFINITION_API_VERSIONS = frozenset(
    {"2015-07-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview"}
)
SCOPE = r"^(?P<scope>(/.*?)?)/providers/microsoft\.authorization"
ASSIGNMENT = SCOPE + r"/roleassignments/(?P<name>[^/]+)$"
ASSIGNMENTS = SCOPE + r"/roleassignments/?$"
DEFINITION = SCOPE + r"/roledefinitions/(?P<name>[^/]+)$"
DEFINITIONS = SCOPE + r"/roledefinitions/?$"
PRINCIPAL_TYPES = {"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"}
FILTER_PRINCIPAL = re.compile(r"principalId\s+eq\s+'(?P<id>[^']+)'", re.I)
FILTER_ASSIGNED_TO = re.compile(r"assignedTo\('(?P<id>[^']+)'\)", re.I)
FILTER_ROLE_NAME = re.compile(r"roleName\s+eq\s+'(?P<name>(?:[^']|'')*)'", re.I)
FILTER_TYPE = re.compile(r"type\s+eq\s+'(?P<type>[^']+)'", re.I)

router = Router()


def _assignments(
    method: str,
    pattern: str,
    operation: str,
    action: str,
    attributes: AttributeReader | None = None,
) -> Callable[[Handler], Handler]:
    return router.add(
        method,
        pattern,
        operation=operation,
        action=action,
        api_versions=ASSIGNMENT_API_VERSIONS,
        resource_type="roleAssignments",
        attributes=attributes,
    )


def _definitions(
    method: str, pattern: str, operation: str, action: str
) -> Callable[[Handler], Handler]:
    return router.add(
        method,
        pattern,
        operation=operation,
        action=action,
        api_versions=DEFINITION_API_VERSIONS,
        resource_type="roleDefinitions",
    )


def _scope(req: ArmRequest) -> str:
    return req.param("scope") or "/"


def require_scope_exists(req: ArmRequest, scope: str) -> None:
    """Subscriptions, resource groups and emulated resources must exist, as in Azure."""
    if scope == "/":
        return
    sub = armids.subscription_of(scope)
    if sub is None:
        raise ArmError(400, "InvalidScope", f"The scope '{scope}' is not valid.")
    require_subscription(req.ctx, sub)
    group = armids.resource_group_of(scope)
    if group is None:
        return
    require_resource_group(req.ctx, sub, group)
    parts = [p for p in scope.split("/") if p]
    if len(parts) > 4 and req.ctx.store.get(scope) is None and not _vault_object(req, parts):
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{'/'.join(parts[5:])}' under resource group '{group}' was not found.",
        )


def _vault_object(req: ArmRequest, parts: list[str]) -> bool:
    """A Key Vault object scope, <vault id>/{certificates,secrets,keys}/<name>, of a vault
    that exists: Azure accepts role assignments there (the object need not exist yet)."""
    return (
        len(parts) == 10
        and parts[6].lower() == "vaults"
        and parts[5].lower() == "microsoft.keyvault"
        and parts[8].lower() in ("certificates", "secrets", "keys")
        and req.ctx.store.get("/" + "/".join(parts[:8])) is not None
    )


# --- role assignments ---


def _principal_not_found(principal_id: str, tenant: str) -> ArmError:
    return ArmError(
        400,
        "PrincipalNotFound",
        f"Principal {armids.guid_hex(principal_id)} does not exist in the directory {tenant}. "
        "Check that you have the correct principal ID. If you are creating this principal and "
        "then immediately assigning a role, this error might be related to a replication delay. "
        "In this case, set the role assignment principalType property to a value, such as "
        "ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
    )


def _actual_type(principal: Principal) -> str:
    return principal.kind


def _find_assignment(store: Store, scope: str, name: str) -> RoleAssignment | None:
    assignment = store.role_assignments.get(name.lower())
    if assignment is None or not armids.same(assignment.scope, scope):
        return None
    return assignment


def _write_attributes(ctx: Context, match: re.Match[str], body: Any) -> abac.Attributes:
    """@Request attributes of a role-assignment PUT: what the body asks for. Malformed
    bodies give no attributes (a condition on them fails; the handler answers 400 to
    callers it does not constrain)."""
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        return abac.NO_ATTRIBUTES
    request: dict[str, str] = {}
    role_id, principal_id = props.get("roleDefinitionId"), props.get("principalId")
    principal_type = props.get("principalType")
    if isinstance(role_id, str):
        request[abac.ROLE_DEFINITION_ID] = role_id
    if isinstance(principal_id, str):
        request[abac.PRINCIPAL_ID] = principal_id
        if principal_type is None:
            # Not in the request: azlocal offers the directory's type, as the write
            # would resolve it (Azure's choice here is undocumented).
            principal = ctx.store.principals.get(principal_id.lower())
            principal_type = principal.kind if principal is not None else None
    if isinstance(principal_type, str):
        request[abac.PRINCIPAL_TYPE] = principal_type
    return abac.Attributes(request=request)


def _delete_attributes(ctx: Context, match: re.Match[str], body: Any) -> abac.Attributes:
    """@Resource attributes of a role-assignment DELETE: the assignment being deleted.
    For a missing one there are none, so a delegation condition on deletes does not hold
    and a caller constrained by one gets 403 where others get 204 (Azure's answer for a
    missing assignment under a condition is undocumented)."""
    assignment = _find_assignment(ctx.store, match.group("scope") or "/", match.group("name"))
    if assignment is None:
        return abac.NO_ATTRIBUTES
    return abac.Attributes(
        resource={
            abac.ROLE_DEFINITION_ID: assignment.role_definition_id,
            abac.PRINCIPAL_ID: assignment.principal_id,
            abac.PRINCIPAL_TYPE: assignment.principal_type,
        }
    )


def _invalid_condition() -> ArmError:
    # Message from learn.microsoft.com/azure/role-based-access-control/conditions-troubleshoot
    # ("Condition is not valid error"); 400 per MicrosoftDocs/azure-docs#119449 and the
    # trace in Azure/azure-cli#15683. The code is not in Microsoft's documentation: it is
    # the one public deployment notes quote for refused conditions.
    return ArmError(
        400, "InvalidRoleAssignmentCondition", "The given role assignment condition is invalid."
    )


def _condition_of(props: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (condition, conditionVersion) to store: the condition must be in the grammar
    azlocal evaluates (abac.py) and its version "2.0", the only one Azure accepts; without
    a version it defaults to "2.0", as the REST API documents."""
    condition, version = props.get("condition"), props.get("conditionVersion")
    if condition is None or (isinstance(condition, str) and not condition.strip()):
        return None, None  # no condition: nothing for a version to describe
    if not isinstance(condition, str):
        raise _invalid_condition()
    if version is None:
        version = abac.SUPPORTED_VERSION
    if version != abac.SUPPORTED_VERSION:
        raise _invalid_condition()
    try:
        abac.parse(condition)
    except abac.ConditionError:
        raise _invalid_condition() from None
    return condition, version


@_assignments(
    "PUT",
    ASSIGNMENT,
    "roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/write",
    _write_attributes,
)
async def put_assignment(req: ArmRequest) -> web.Response:
    ctx, scope, name = req.ctx, _scope(req), req.param("name")
    if not armids.is_guid(name):
        raise ArmError(
            400,
            "InvalidRoleAssignmentId",
            f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
        )
    props = require_body_object(require_body_object(req.body).get("properties"))
    role_id, principal_id = props.get("roleDefinitionId"), props.get("principalId")
    principal_type = props.get("principalType")
    if not isinstance(role_id, str) or not isinstance(principal_id, str):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "properties.roleDefinitionId and properties.principalId are required.",
        )
    if not armids.is_guid(principal_id):
        raise ArmError(
            400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment."
        )
    if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
        raise ArmError(
            400, "InvalidPrincipalType", f"The principal type '{principal_type}' is not valid."
        )
    description = props.get("description")
    if description is not None and not isinstance(description, str):
        raise ArmError(400, "InvalidRequestContent", "properties.description must be a string.")
    condition, condition_version = _condition_of(props)
    require_scope_exists(req, scope)
    definition = ctx.store.role_definition(role_id)
    if definition is None:
        raise ArmError(
            400,
            "RoleDefinitionDoesNotExist",
            "The specified role definition with ID "
            f"'{armids.guid_hex(armids.last_segment(role_id))}' "
            "does not exist.",
        )
    if not any(armids.is_within(scope, s) for s in definition.assignable_scopes):
        # Azure's exact answer here is not documented; a role outside its assignable scopes
        # is not visible at the scope, so azlocal answers as for a missing definition.
        raise ArmError(
            400,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{armids.guid_hex(definition.name)}' does "
            f"not exist (it is not assignable at scope '{scope}').",
        )
    principal = ctx.store.principals.get(principal_id.lower())
    replicated = principal is not None and (
        ctx.now() - principal.created_at >= ctx.settings.replication_delay_seconds
    )
    if principal_type is None and not replicated:
        raise _principal_not_found(principal_id, ctx.store.tenant_id)
    if principal is not None and replicated:
        actual = _actual_type(principal)
        if principal_type is not None and principal_type != actual:
            raise ArmError(
                400,
                "UnmatchedPrincipalType",
                f"The PrincipalId '{armids.guid_hex(principal_id)}' has type '{actual}' , which is "
                f"different from specified PrinciaplType '{principal_type}'.",
            )
        principal_type = actual
    role_guid = definition.name.lower()
    existing = ctx.store.role_assignments.get(name.lower())
    if existing is not None:
        same = (
            armids.same(existing.scope, scope)
            and armids.last_segment(existing.role_definition_id).lower() == role_guid
            and existing.principal_id.lower() == principal_id.lower()
        )
        if not same:
            raise ArmError(
                400,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        # A PUT replaces the updatable properties: description, condition, conditionVersion.
        updated = (description, condition, condition_version)
        if updated != (existing.description, existing.condition, existing.condition_version):
            existing.description, existing.condition, existing.condition_version = updated
            existing.updated_at, existing.updated_by = ctx.now(), req.caller.object_id
        return web.json_response(existing.to_json(), status=200)
    for other in ctx.store.role_assignments.values():
        if (
            armids.same(other.scope, scope)
            and armids.last_segment(other.role_definition_id).lower() == role_guid
            and other.principal_id.lower() == principal_id.lower()
        ):
            raise ArmError(
                409,
                "RoleAssignmentExists",
                "The role assignment already exists. The ID of the existing role assignment is "
                f"{armids.guid_hex(other.name)}.",
            )
    subscription = armids.subscription_of(scope)
    in_subscription = sum(
        1
        for a in ctx.store.role_assignments.values()
        if armids.subscription_of(a.scope) == subscription
    )
    if subscription is not None and in_subscription >= ctx.settings.role_assignment_limit:
        raise ArmError(
            400,
            "RoleAssignmentLimitExceeded",
            "No more role assignments can be created (code: RoleAssignmentLimitExceeded).",
        )
    assignment = RoleAssignment(
        name=name.lower(),
        scope=scope,
        role_definition_id=definition.id_at(scope),
        principal_id=principal_id.lower(),
        principal_type=str(principal_type),
        created_at=ctx.now(),
        created_by=req.caller.object_id,
        description=description,
        condition=condition,
        condition_version=condition_version,
    )
    ctx.store.role_assignments[assignment.name] = assignment
    return web.json_response(assignment.to_json(), status=201)


def _require_assignment(req: ArmRequest) -> RoleAssignment:
    assignment = _find_assignment(req.ctx.store, _scope(req), req.param("name"))
    if assignment is None:
        raise ArmError(404, "RoleAssignmentNotFound", "The role assignment was not found.")
    return assignment


@_assignments(
    "GET", ASSIGNMENT, "roleAssignments/read", "Microsoft.Authorization/roleAssignments/read"
)
async def get_assignment(req: ArmRequest) -> web.Response:
    return web.json_response(_require_assignment(req).to_json())


@_assignments(
    "DELETE",
    ASSIGNMENT,
    "roleAssignments/delete",
    "Microsoft.Authorization/roleAssignments/delete",
    _delete_attributes,
)
async def delete_assignment(req: ArmRequest) -> web.Response:
    assignment = _find_assignment(req.ctx.store, _scope(req), req.param("name"))
    if assignment is None:
        return web.Response(status=204)
    del req.ctx.store.role_assignments[assignment.name]
    return web.json_response(assignment.to_json(), status=200)


@_assignments(
    "GET", ASSIGNMENTS, "roleAssignments/list", "Microsoft.Authorization/roleAssignments/read"
)
async def list_assignments(req: ArmRequest) -> web.Response:
    scope = _scope(req)
    require_scope_exists(req, scope)
    text = req.http.query.get("$filter", "")
    at_scope = "atscope()" in text.replace(" ", "").lower()
    principal = FILTER_PRINCIPAL.search(text)
    assigned_to = FILTER_ASSIGNED_TO.search(text)
    principals: set[str] | None = None
    if principal:
        principals = {principal.group("id").lower()}
    elif assigned_to:
        oid = assigned_to.group("id").lower()
        principals = {oid, *(g.lower() for g in req.ctx.store.groups_of(oid))}
    items = []
    for a in req.ctx.store.role_assignments.values():
        above = armids.is_within(scope, a.scope)
        below = armids.is_within(a.scope, scope)
        if not (above or (below and not at_scope)):
            continue
        if principals is not None and a.principal_id.lower() not in principals:
            continue
        items.append(a.to_json())
    return req.page(items)


# --- role definitions ---


def _definition_not_found(name: str) -> ArmError:
    return ArmError(
        404,
        "RoleDefinitionDoesNotExist",
        "The specified role definition with ID "
        f"'{armids.guid_hex(name) if armids.is_guid(name) else name}' "
        "does not exist.",
    )


def _visible_at(definition: RoleDefinition, scope: str, below: bool) -> bool:
    if definition.role_type == "BuiltInRole":
        return True
    return any(
        armids.is_within(scope, s) or (below and armids.is_within(s, scope))
        for s in definition.assignable_scopes
    )


@_definitions(
    "GET", DEFINITION, "roleDefinitions/read", "Microsoft.Authorization/roleDefinitions/read"
)
async def get_definition(req: ArmRequest) -> web.Response:
    definition = req.ctx.store.role_definition(req.param("name"))
    if definition is None:
        raise _definition_not_found(req.param("name"))
    return web.json_response(definition.to_json(_scope(req)))


@_definitions(
    "GET", DEFINITIONS, "roleDefinitions/list", "Microsoft.Authorization/roleDefinitions/read"
)
async def list_definitions(req: ArmRequest) -> web.Response:
    scope = _scope(req)
    text = req.http.query.get("$filter", "")
    by_name = FILTER_ROLE_NAME.search(text)
    by_type = FILTER_TYPE.search(text)
    below = "atscopeandbelow()" in text.replace(" ", "").lower()
    items = []
    for d in req.ctx.store.role_definitions.values():
        if by_name and d.role_name.lower() != by_name.group("name").replace("''", "'").lower():
            continue
        if by_type and d.role_type.lower() != by_type.group("type").lower():
            continue
        if _visible_at(d, scope, below):
            items.append(d.to_json(scope))
    return req.page(items)


@_definitions(
    "PUT", DEFINITION, "roleDefinitions/write", "Microsoft.Authorization/roleDefinitions/write"
)
async def put_definition(req: ArmRequest) -> web.Response:
    ctx, name = req.ctx, req.param("name")
    if not armids.is_guid(name):
        raise ArmError(
            400,
            "InvalidRoleDefinitionId",
            f"The role definition ID '{name}' is not valid. It must be a GUID.",
        )
    props = require_body_object(require_body_object(req.body).get("properties"))
    role_name = props.get("roleName")
    if not isinstance(role_name, str) or not role_name.strip():
        raise ArmError(
            400,
            "RoleDefinitionNameNullOrEmpty",
            "The role definition name cannot be null or empty.",
        )
    if props.get("type", "CustomRole") != "CustomRole":
        raise ArmError(
            400,
            "InvalidRoleDefinitionType",
            "Only custom roles (type CustomRole) can be created or updated.",
        )
    scopes = props.get("assignableScopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise ArmError(
            400,
            "MissingAssignableScopes",
            "Assignable scopes must be provided for the role definition.",
        )
    permissions = props.get("permissions")
    if not isinstance(permissions, list) or not all(isinstance(p, dict) for p in permissions):
        raise ArmError(
            400, "InvalidPermissions", "properties.permissions must be a list of permission blocks."
        )
    _check_operations(permissions)
    existing = ctx.store.role_definition(name)
    if existing is not None and existing.role_type == "BuiltInRole":
        raise ArmError(
            409,
            "RoleDefinitionExists",
            f"A built-in role definition with ID '{name}' already exists.",
        )
    for other in ctx.store.role_definitions.values():
        if other.role_name.lower() == role_name.strip().lower() and other.name != name.lower():
            raise ArmError(
                409,
                "RoleDefinitionWithSameNameExists",
                "A custom role with the same name already exists in this directory. Use a "
                "different name."
                if other.role_type == "CustomRole"
                else "A role definition cannot be created with the name of a built-in role.",
            )
    for index, scope in enumerate(scopes):
        try:
            require_scope_exists(req, scope)
        except ArmError:
            raise ArmError(
                400,
                "LinkedInvalidPropertyId",
                f"Property id '{scope}' at path 'properties.assignableScopes[{index}]' is invalid.",
            ) from None
    denied = [
        s for s in scopes if not req.allowed("Microsoft.Authorization/roleDefinitions/write", s)
    ]
    if denied:
        raise ArmError(
            403,
            "LinkedAuthorizationFailed",
            f"The client '{req.caller.app_id}' with object id '{req.caller.object_id}' has "
            "permission to perform action 'Microsoft.Authorization/roleDefinitions/write' on "
            f"scope '{req.path}'; however, it does not have permission to perform action "
            "'Microsoft.Authorization/roleDefinitions/write' on the linked scope(s)"
            f"'{','.join(denied)}' or the linked scope(s)are invalid",
        )
    definition = RoleDefinition(
        name=name.lower(),
        role_name=role_name.strip(),
        description=str(props.get("description") or ""),
        role_type="CustomRole",
        permissions=[
            {
                key: list(p.get(key) or [])
                for key in ("actions", "notActions", "dataActions", "notDataActions")
            }
            for p in permissions
        ],
        assignable_scopes=list(scopes),
        created_at=existing.created_at if existing else ctx.now(),
    )
    ctx.store.role_definitions[definition.name] = definition
    # The spec allows only 201 for PUT, creates and updates alike.
    return web.json_response(definition.to_json(_scope(req)), status=201)


def _check_operations(permissions: list[dict[str, Any]]) -> None:
    """Azure refuses a role whose patterns name no resource provider, or name operations a
    provider does not have (the first such pattern is reported). Providers outside the
    catalog pass: azlocal knows their names, not their operations."""
    for block in permissions:
        lists = {}
        for key in ("actions", "notActions", "dataActions", "notDataActions"):
            value = block.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ArmError(
                    400, "InvalidPermissions", f"properties.permissions.{key} must be strings."
                )
            lists[key] = value
        findings = catalog().check_all(
            actions=lists["actions"],
            not_actions=lists["notActions"],
            data_actions=lists["dataActions"],
            not_data_actions=lists["notDataActions"],
        )
        if findings:
            _, _, finding = findings[0]
            raise ArmError(400, finding.code, _refusal(finding))


def _refusal(finding: Finding) -> str:
    """Azure's texts: Azure/azure-powershell#9800 and F5Networks/f5-azure-arm-templates-v2
    #26 (unknown provider), hashicorp/terraform-provider-azuread#152 and
    MicrosoftDocs/azure-docs#102571 (no match; data actions say "actions" too,
    hashicorp/terraform-provider-azurerm#24576), MicrosoftDocs/azure-docs#74428 (two
    wildcards), azure-powershell's RoleDefinitionTests (no data operations)."""
    match finding.problem:
        case Problem.UNKNOWN_PROVIDER:
            return (
                f"The resource provider referenced in the action '{finding.expression}' is not "
                "returned in the list of providers from Azure Resource Manager."
            )
        case Problem.MULTIPLE_WILDCARDS:
            return f"'{finding.expression}' contains multiple wildcards. Only one is allowed."
        case Problem.NO_DATA_OPERATIONS:
            return (
                f"The resource provider referenced in the action '{finding.expression}' has not "
                "published any data operations."
            )
        case _:
            return (
                f"'{finding.expression}' does not match any of the actions supported by the "
                "providers."
            )


@_definitions(
    "DELETE", DEFINITION, "roleDefinitions/delete", "Microsoft.Authorization/roleDefinitions/delete"
)
async def delete_definition(req: ArmRequest) -> web.Response:
    definition = req.ctx.store.role_definition(req.param("name"))
    if definition is None:
        return web.Response(status=204)
    if definition.role_type == "BuiltInRole":
        raise ArmError(400, "InvalidRoleDefinitionType", "Built-in roles cannot be deleted.")
    in_use = [
        a
        for a in req.ctx.store.role_assignments.values()
        if armids.last_segment(a.role_definition_id).lower() == definition.name
    ]
    if in_use:
        raise ArmError(
            409,
            "RoleDefinitionHasAssignments",
            "There are existing role assignments referencing role "
            "(code: RoleDefinitionHasAssignments).",
        )
    del req.ctx.store.role_definitions[definition.name]
    return web.json_response(definition.to_json(_scope(req)), status=200)
