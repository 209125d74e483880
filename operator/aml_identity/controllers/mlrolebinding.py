"""MLRoleBinding: resolve role, scope and subjects; plan and apply role assignments."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any

from aml_identity.api.common import ManagementPolicy, Reason
from aml_identity.api.mlrole import MLRoleSpec
from aml_identity.api.mlrolebinding import MLRoleBinding, Subject
from aml_identity.api.observed import RoleAssignment, RoleDefinition
from aml_identity.azure.errors import AzureFailure
from aml_identity.controllers.guard import revoked, with_verdict
from aml_identity.controllers.outcome import Deps, Event, Outcome
from aml_identity.controllers.waiters import Key
from aml_identity.reconcile.binding import (
    Create,
    Owned,
    Principal,
    plan_binding,
    role_definition_id,
    scope_id,
)
from aml_identity.reconcile.conditions import object_ready
from aml_identity.reconcile.names import definition_guid
from aml_identity.reconcile.policy import RoleFacts, SubjectRef, check_binding, privileged_reason

KIND = "MLRoleBinding"


class Waiting(Exception):
    """A dependency is not ready: Ready=Unknown, WaitingForDependency. Not retried on a
    timer: the dependency's becoming Ready wakes the binding (controllers.waiters)."""


class Invalid(Exception):
    """The spec refers to something that cannot work: Ready=False, InvalidSpec."""


def _within(scope: str, ancestor: str) -> bool:
    s, a = scope.lower().rstrip("/"), ancestor.lower().rstrip("/")
    return s == a or s.startswith(a + "/")


@dataclass(frozen=True)
class ResolvedRole:
    definition_id: str
    name: str
    facts: RoleFacts


def _definition_facts(found: RoleDefinition, definition_id: str) -> RoleFacts:
    built_in = found.role_type == "BuiltInRole"
    return RoleFacts(
        guid=definition_guid(definition_id),
        name=found.role_name,
        built_in=built_in,
        privileged=privileged_reason(
            guid=definition_guid(definition_id),
            actions=found.actions,
            not_actions=found.not_actions,
            custom=not built_in,
        ),
    )


def ml_role_facts(name: str, ml_role: dict[str, Any], guid: str) -> RoleFacts:
    """An MLRole's facts from its spec: privileged when it says so or its actions are."""
    spec = MLRoleSpec.model_validate(ml_role["spec"])
    why = privileged_reason(
        guid=guid,
        actions=spec.permissions.actions,
        not_actions=spec.permissions.not_actions,
        custom=True,
    )
    if why is None and spec.privileged:
        why = "the MLRole says privileged: true"
    return RoleFacts(guid=guid, name=spec.role_name, built_in=False, ml_role=name, privileged=why)


async def _ready_dependency(
    deps: Deps, dependent: Key | None, plural: str, namespace: str | None, name: str
) -> dict[str, Any]:
    """The dependency, Ready; otherwise raises Waiting, and `dependent` is woken when it
    becomes Ready. Registered before the read, so a Ready that lands meanwhile still
    wakes it."""
    dependency: Key = (plural, namespace, name)
    if dependent is not None:
        deps.waiters.watch(dependency, dependent)
    found = await deps.cluster.get_custom(plural, namespace, name)
    what = "MLRole" if plural == "mlroles" else "WorkloadIdentity"
    if found is None:
        where = f" in {namespace}" if namespace else ""
        raise Waiting(f"{what} {name} does not exist{where}")
    if not object_ready(found):
        raise Waiting(f"{what} {name} is not Ready")
    if dependent is not None:
        deps.waiters.unwatch(dependency, dependent)
    return found


async def resolve_role(
    deps: Deps, binding: MLRoleBinding, scope: str, dependent: Key | None = None
) -> ResolvedRole:
    role = binding.spec.role
    sub = deps.settings.subscription_id
    if role.built_in is not None:
        found = await deps.gateway.role_definition_by_name(scope, role.built_in)
        if found is None or found.role_type != "BuiltInRole":
            raise Invalid(f"there is no built-in role named '{role.built_in}'")
        full = role_definition_id(found.name, scope, sub)
        return ResolvedRole(full, found.role_name, _definition_facts(found, full))
    if role.ml_role is not None:
        ml_role = await _ready_dependency(deps, dependent, "mlroles", None, role.ml_role)
        scopes = ml_role["spec"].get("assignableScopes", [])
        if not any(_within(scope, s) for s in scopes):
            raise Invalid(
                f"scope {scope} is outside the assignable scopes of MLRole {role.ml_role} "
                f"({', '.join(scopes)})"
            )
        full = str(ml_role["status"]["roleDefinitionId"])
        facts = ml_role_facts(role.ml_role, ml_role, definition_guid(full))
        return ResolvedRole(full, facts.name, facts)
    assert role.role_definition_id is not None
    full = role_definition_id(role.role_definition_id, scope, sub)
    found = await deps.gateway.get_role_definition(scope, definition_guid(full))
    if found is None:
        raise Invalid(f"role definition {role.role_definition_id} does not exist")
    return ResolvedRole(full, found.role_name, _definition_facts(found, full))


def subject_refs(binding: MLRoleBinding) -> list[SubjectRef]:
    return [
        SubjectRef(
            part=f"subjects[{i}]",
            workload_identity=s.workload_identity,
            principal_id=s.principal_id,
            principal_type=s.principal_type,
            system_assigned_identity_of=s.system_assigned_identity_of,
        )
        for i, s in enumerate(binding.spec.subjects)
    ]


def subject_label(subject: Subject) -> str:
    """How status names a subject (its records' `subject`), known without resolving it."""
    if subject.workload_identity is not None:
        return f"workloadIdentity {subject.workload_identity}"
    if subject.principal_id is not None:
        return f"{subject.principal_type} {subject.principal_id}"
    return f"system-assigned identity of {subject.system_assigned_identity_of}"


async def _principal(deps: Deps, dependent: Key, subject: Subject) -> Principal:
    namespace = str(dependent[1])
    label = subject_label(subject)
    if subject.workload_identity is not None:
        name = subject.workload_identity
        identity = await _ready_dependency(deps, dependent, "workloadidentities", namespace, name)
        principal = (identity.get("status") or {}).get("principalId")
        if not principal:
            raise Waiting(f"WorkloadIdentity {name} is not Ready")
        return Principal(label, principal, "ServicePrincipal")
    if subject.principal_id is not None:
        return Principal(label, subject.principal_id, str(subject.principal_type))
    assert subject.system_assigned_identity_of is not None
    resource = subject.system_assigned_identity_of
    principal_id = await deps.gateway.system_assigned_principal(resource)
    if principal_id is None:
        raise Invalid(f"{resource} has no system-assigned identity")
    return Principal(label, principal_id, "ServicePrincipal")


def _owned(binding: MLRoleBinding) -> list[Owned]:
    if binding.status is None:
        return []
    return [
        Owned(a.name, a.scope, a.principal_id, a.role_definition_id, a.created)
        for a in binding.status.assignments
    ]


async def reconcile(deps: Deps, body: dict[str, Any]) -> Outcome:
    binding = MLRoleBinding.model_validate(body)
    namespace = body["metadata"]["namespace"]
    scope = scope_id(binding.spec.scope, deps.settings.subscription_id)
    name = body["metadata"]["name"]
    dependent: Key = ("mlrolebindings", namespace, name)
    try:
        role = await resolve_role(deps, binding, scope, dependent)
    except (Waiting, Invalid) as stuck:
        # Subjects the spec no longer names lose the role now, not when the rest resolves.
        outcome = _stuck(stuck)
        await _release_early(deps, binding, [], outcome)
        return outcome
    except AzureFailure as failure:
        return Outcome.from_failure(failure, "reading the role definition")
    # The policy decides before any subject is resolved or any assignment written.
    verdict = check_binding(
        await deps.policy_set(namespace), role.facts, scope, subject_refs(binding)
    )
    denied_all = verdict.denies("role")
    allowed: list[Subject] = []
    denied: list[Subject] = []
    for i, subject in enumerate(binding.spec.subjects):
        refused = denied_all or verdict.denies(f"subjects[{i}]")
        (denied if refused else allowed).append(subject)
    try:
        principals = [await _principal(deps, dependent, s) for s in allowed]
        observed = {
            p.principal_id: await deps.gateway.assignments_for(scope, p.principal_id)
            for p in principals
        }
    except (Waiting, Invalid) as stuck:
        # Waiting for (or unable to use) an allowed subject must not delay revoking the
        # denied ones, nor releasing subjects the spec no longer names: a new subject that
        # never resolves would otherwise keep them.
        outcome = _stuck(stuck)
        await _release_early(deps, binding, denied if verdict.enforced else [], outcome)
        return with_verdict(outcome, verdict, KIND, namespace, name)
    except AzureFailure as failure:
        return Outcome.from_failure(failure, "reading role assignments")
    revoking = bool(verdict.enforced)
    outcome = await _apply(deps, binding, scope, role, principals, observed, revoking=revoking)
    return with_verdict(outcome, verdict, KIND, namespace, name)


def _stuck(stuck: Waiting | Invalid) -> Outcome:
    if isinstance(stuck, Waiting):
        return Outcome(Reason.WAITING_FOR_DEPENDENCY, str(stuck))
    return _invalid(str(stuck))


async def _release_early(
    deps: Deps, binding: MLRoleBinding, denied: list[Subject], outcome: Outcome
) -> None:
    """Before the spec is fully resolved: delete the assignments this binding made (as
    recorded in its status) for subjects a policy denies (`denied`: a revocation) or the
    spec no longer names, without resolving anything else. The outcome records what was
    done. Changes of role or scope wait for the new assignments (additive)."""
    if not deps.manage or binding.status is None:
        return
    denied_ids = {s.principal_id.lower() for s in denied if s.principal_id}
    for subject in denied:
        if subject.system_assigned_identity_of is not None:
            with contextlib.suppress(AzureFailure):
                found = await deps.gateway.system_assigned_principal(
                    subject.system_assigned_identity_of
                )
                if found:
                    denied_ids.add(found.lower())
    observe_only = binding.spec.management_policy == ManagementPolicy.OBSERVE
    named = {subject_label(s) for s in binding.spec.subjects}
    # A principal still named another way (a WorkloadIdentity's principal now listed by
    # its id) keeps its assignment until the plan decides.
    named_ids = {s.principal_id.lower() for s in binding.spec.subjects if s.principal_id}
    kept = []
    for record in binding.status.assignments:
        revoking = record.principal_id.lower() in denied_ids
        # Observe never removes on its own; only a policy's revocation reaches it.
        removed = (
            not observe_only
            and record.subject is not None
            and record.subject not in named
            and record.principal_id.lower() not in named_ids
        )
        if not (record.created and (revoking or removed)):
            kept.append(record.model_dump(by_alias=True, mode="json"))
            continue
        try:
            await deps.gateway.delete_assignment(record.scope, record.name)
        except AzureFailure as failure:
            kept.append(record.model_dump(by_alias=True, mode="json"))
            outcome.events.append(Event("Warning", failure.reason.value, str(failure)))
            continue
        outcome.azure_writes += 1
        what = f"role assignment {record.name} ({record.principal_id}) at {record.scope}"
        outcome.events.append(
            revoked(what)
            if revoking
            else Event(
                "Normal", "Unassigned", f"Removed {what}: {record.subject} is no longer a subject"
            )
        )
    outcome.status["assignments"] = kept


def _invalid(message: str) -> Outcome:
    return Outcome(Reason.INVALID_SPEC, message, events=[Event("Warning", "InvalidSpec", message)])


async def _apply(
    deps: Deps,
    binding: MLRoleBinding,
    scope: str,
    role: ResolvedRole,
    principals: list[Principal],
    observed: dict[str, list[RoleAssignment]],
    *,
    revoking: bool,
) -> Outcome:
    """Plan and write. With `revoking`, assignments of denied subjects or of a denied role
    are missing from `principals`, so their removal is a revocation."""
    role_id, role_name = role.definition_id, role.name
    owned = _owned(binding)
    plan = plan_binding(
        scope=scope,
        role_definition=role_id,
        principals=principals,
        observed=observed,
        owned=owned,
        condition=binding.spec.condition,
    )
    status_base = {"roleName": role_name, "roleDefinitionId": role_id, "scope": scope}
    observe_only = binding.spec.management_policy == ManagementPolicy.OBSERVE
    if observe_only and revoking and deps.manage:
        # Observe never creates, but it does not shelter a grant a policy revoked.
        plan = replace(plan, creates=())
    elif observe_only or not deps.manage:
        pending = [*plan.changes, *(c.message for c in plan.conflicts)]
        if not pending:
            return Outcome(
                Reason.RECONCILED, "Azure matches the spec (observe only)", status=status_base
            )
        return Outcome(
            Reason.DRIFT_DETECTED,
            f"{len(pending)} change(s) pending; managementPolicy is Observe",
            status=status_base,
            pending_changes=pending,
        )
    events: list[Event] = []
    records = [_record(k, principals) for k in plan.keep]
    writes = 0

    async def put(wanted: Create) -> RoleAssignment:
        """One of this binding's assignments, as the spec says (a new one, or the same
        one written again)."""
        return await deps.gateway.create_assignment(
            scope,
            wanted.name,
            role_definition_id=role_id,
            principal_id=wanted.principal.principal_id,
            principal_type=wanted.principal.principal_type,
            description=binding.spec.description,
            condition=binding.spec.condition,
        )

    try:
        # New assignments first, old ones after: a change of role, scope or subject never
        # leaves the principal without access in between.
        for create in plan.creates:
            made = await put(create)
            writes += 1
            records.append(
                _record(Owned(made.name, scope, made.principal_id, role_id, True), principals)
            )
            events.append(
                Event(
                    "Normal",
                    "Assigned",
                    f"Assigned {role_name} to {create.principal.subject} at {scope}",
                )
            )
        for update in plan.updates:
            # The same assignment written again: its condition is replaced in place, so
            # the grant never lapses and never widens in between.
            await put(update)
            writes += 1
            condition = "the spec's condition" if binding.spec.condition else "no condition"
            events.append(
                Event(
                    "Normal",
                    "ConditionUpdated",
                    f"Role assignment {update.name} of {update.principal.subject} now has "
                    f"{condition}",
                )
            )
        for stale in plan.deletes:
            await deps.gateway.delete_assignment(stale.scope, stale.name)
            writes += 1
            if revoking:
                events.append(
                    revoked(f"role assignment {stale.name} ({stale.principal_id}) at {stale.scope}")
                )
            else:
                events.append(
                    Event(
                        "Normal",
                        "Unassigned",
                        f"Removed role assignment {stale.name} at {stale.scope}",
                    )
                )
    except AzureFailure as failure:
        outcome = Outcome.from_failure(failure, "writing role assignments")
        # Keep what exists recorded, so the next attempt neither repeats nor forgets it.
        kept = {r["name"] for r in records}
        leftovers = [_record(o, principals) for o in plan.deletes if o.name not in kept]
        outcome.status = {**status_base, "assignments": records + leftovers}
        outcome.events = events + outcome.events
        outcome.azure_writes = writes
        return outcome
    if plan.conflicts:
        message = "; ".join(c.message for c in plan.conflicts)
        return Outcome(
            Reason.CONFLICT,
            message,
            status={**status_base, "assignments": records},
            events=[*events, Event("Warning", Reason.CONFLICT.value, message)],
            azure_writes=writes,
        )
    count = len(records)
    return Outcome(
        Reason.RECONCILED,
        f"{role_name} granted at {scope} to {count} principal{'s' if count != 1 else ''}",
        status={**status_base, "assignments": records},
        events=events,
        azure_writes=writes,
    )


def _record(owned: Owned, principals: list[Principal]) -> dict[str, Any]:
    principal = next((p for p in principals if p.principal_id == owned.principal_id), None)
    return {
        "name": owned.name,
        "scope": owned.scope,
        "roleDefinitionId": owned.role_definition_id,
        "principalId": owned.principal_id,
        "principalType": principal.principal_type if principal else None,
        "subject": principal.subject if principal else None,
        "created": owned.created,
    }


async def delete(deps: Deps, body: dict[str, Any]) -> Outcome:
    binding = MLRoleBinding.model_validate(body)
    if (
        binding.spec.deletion_policy == "Orphan"
        or binding.spec.management_policy == ManagementPolicy.OBSERVE
    ):
        return Outcome(Reason.DELETING, "role assignments left in place")
    writes = 0
    try:
        for owned in _owned(binding):
            if owned.created:
                await deps.gateway.delete_assignment(owned.scope, owned.name)
                writes += 1
    except AzureFailure as failure:
        outcome = Outcome.from_failure(failure, "deleting role assignments")
        outcome.reason = Reason.DELETION_BLOCKED
        return outcome
    return Outcome(Reason.DELETING, f"removed {writes} role assignment(s)", azure_writes=writes)
