"""MLRole: one custom role definition, created at its first assignable scope."""

from __future__ import annotations

from typing import Any

from aml_identity.api.common import ManagementPolicy, Reason
from aml_identity.api.mlrole import MLRole
from aml_identity.azure.errors import AzureFailure, gone, nothing_to_find
from aml_identity.controllers.outcome import Deps, Event, Outcome, kept_on_delete
from aml_identity.metrics import POLICY_DENIALS
from aml_identity.reconcile.names import ADOPT_ANNOTATION, role_definition_name
from aml_identity.reconcile.policy import ml_role_problem
from aml_identity.reconcile.role import (
    check_operations,
    definition_body,
    explain_spec,
    patterns,
    plan_role,
)
from azure_operations import catalog


def _guid(deps: Deps, role: MLRole, body: dict[str, Any]) -> str:
    if role.status is not None and role.status.role_definition_name:
        return role.status.role_definition_name
    return role_definition_name(deps.settings.cluster_id, body["metadata"]["name"])


async def reconcile(deps: Deps, body: dict[str, Any]) -> Outcome:
    role = MLRole.model_validate(body)
    problem = ml_role_problem(role.spec)
    if problem is not None:
        # Nothing is written: an existing definition keeps its last allowed permissions.
        POLICY_DENIALS.labels("MLRole", "reconcile").inc()
        return Outcome(
            Reason.POLICY_DENIED, problem, events=[Event("Warning", "PolicyDenied", problem)]
        )
    scope = role.spec.assignable_scopes[0]
    guid = _guid(deps, role, body)
    try:
        observed = await deps.gateway.get_role_definition(scope, guid)
        same_name = (
            await deps.gateway.role_definition_by_name(scope, role.spec.role_name)
            if observed is None
            else None
        )
    except AzureFailure as failure:
        return Outcome.from_failure(failure, "reading role definitions")
    if deps.settings.check_role_operations:
        accepted = patterns(observed or same_name)
        unknown = check_operations(role.spec, catalog(), accepted).refused
        if unknown is not None:
            # Azure would refuse the whole definition (InvalidActionOrNotAction); an
            # existing one keeps its last permissions.
            return Outcome(
                Reason.INVALID_SPEC, unknown, events=[Event("Warning", "InvalidSpec", unknown)]
            )
    operations = explain_spec(role.spec, catalog()).summary()
    adopt = body["metadata"].get("annotations", {}).get(ADOPT_ANNOTATION) == "true"
    # A role recorded under another GUID than the one this MLRole creates was adopted.
    adopted = guid != role_definition_name(deps.settings.cluster_id, body["metadata"]["name"])
    plan = plan_role(role.spec, guid, observed, same_name, adopt=adopt, adopted=adopted)
    if plan.blocked:
        reason, message = plan.blocked
        return Outcome(reason, message, events=[Event("Warning", reason.value, message)])
    definition_id = (
        observed.id
        if observed
        else f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{plan.guid}"
    )
    if not plan.put:
        return Outcome(
            Reason.RECONCILED,
            f"custom role '{role.spec.role_name}' matches the spec",
            status={
                "roleDefinitionId": definition_id,
                "roleDefinitionName": plan.guid,
                "operations": operations,
            },
        )
    if role.spec.management_policy == ManagementPolicy.OBSERVE or not deps.manage:
        return Outcome(
            Reason.DRIFT_DETECTED,
            "1 change pending; managementPolicy is Observe",
            pending_changes=[plan.change or "update custom role"],
        )
    try:
        written = await deps.gateway.put_role_definition(
            scope, plan.guid, definition_body(role.spec, marked=plan.marked)
        )
    except AzureFailure as failure:
        return Outcome.from_failure(failure, f"writing custom role '{role.spec.role_name}'")
    return Outcome(
        Reason.RECONCILED,
        f"custom role '{role.spec.role_name}' matches the spec",
        status={
            "roleDefinitionId": written.id,
            "roleDefinitionName": written.name,
            "operations": operations,
        },
        events=[
            Event(
                "Normal",
                "Written",
                f"{(plan.change or 'wrote custom role').capitalize()} ({written.id})",
            )
        ],
        azure_writes=1,
    )


async def delete(deps: Deps, body: dict[str, Any]) -> Outcome:
    role = MLRole.model_validate(body)
    kept = kept_on_delete(role.spec.deletion_policy, role.spec.management_policy, "custom role")
    if kept is not None:
        return kept
    scope = role.spec.assignable_scopes[0]
    try:
        if role.status is None or not role.status.role_definition_name:
            # No name in status: the operator may have stopped between writing the role
            # and recording it. The name it would have written is derived from this
            # resource, so a role there is this resource's (an adopted one has its own
            # name and is left alone).
            guid = role_definition_name(deps.settings.cluster_id, body["metadata"]["name"])
            try:
                found = await deps.gateway.get_role_definition(scope, guid)
            except AzureFailure as failure:
                if not nothing_to_find(failure):
                    raise
                # Not readable there (forbidden, or the scope is gone): then it was not
                # writable either, and there is nothing to delete.
                found = None
            if found is None or found.role_type != "CustomRole":
                return Outcome(Reason.DELETING, "no custom role was created")
        else:
            guid = role.status.role_definition_name
            derived = role_definition_name(deps.settings.cluster_id, body["metadata"]["name"])
            if guid.lower() != derived.lower():
                # Adopted: someone else made it, and deleting removes only what the
                # operator created. It goes back to its owner as it is now.
                message = f"custom role '{role.spec.role_name}' was adopted: left to its owner"
                return Outcome(
                    Reason.DELETING, message, events=[Event("Normal", "Released", message)]
                )
        await deps.gateway.delete_role_definition(scope, guid)
    except AzureFailure as failure:
        if gone(failure):
            return Outcome(Reason.DELETING, f"{scope} is gone, and the custom role with it")
        outcome = Outcome.from_failure(failure, f"deleting custom role '{role.spec.role_name}'")
        outcome.reason = Reason.DELETION_BLOCKED
        return outcome
    return Outcome(Reason.DELETING, "deleted the custom role", azure_writes=1)
