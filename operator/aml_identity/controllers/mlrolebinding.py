"""MLRoleBinding: resolve role, scope and subjects; plan and apply role assignments."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from aml_identity.api.common import ManagementPolicy, Reason, scope_within
from aml_identity.api.mlrole import MLRoleSpec
from aml_identity.api.mlrolebinding import AssignmentStatus, MLRoleBinding, Subject
from aml_identity.api.observed import RoleAssignment, RoleDefinition
from aml_identity.azure.errors import FAST, AzureFailure, gone, nothing_to_find
from aml_identity.controllers.guard import revoked, with_verdict
from aml_identity.controllers.outcome import Deps, Event, Outcome, Progress, kept_on_delete
from aml_identity.controllers.waiters import Key
from aml_identity.kube.cluster import DEPENDENCY_ANNOTATION, KubeError
from aml_identity.reconcile.binding import (
    BindingPlan,
    Create,
    Owned,
    Principal,
    made_by,
    plan_binding,
    role_definition_id,
    scope_id,
)
from aml_identity.reconcile.conditions import object_ready
from aml_identity.reconcile.names import (
    AssignmentOwner,
    assignment_description,
    assignment_owner,
    definition_guid,
)
from aml_identity.reconcile.policy import (
    RoleFacts,
    SubjectRef,
    check_binding,
    ml_role_privilege,
    privileged_reason,
)

KIND = "MLRoleBinding"


class Waiting(Exception):
    """A dependency is not ready: Ready=Unknown, WaitingForDependency. Not retried on a
    timer: the dependency's becoming Ready wakes the binding (controllers.waiters)."""


class Invalid(Exception):
    """The spec refers to something that cannot work: Ready=False, InvalidSpec."""


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
    why = ml_role_privilege(spec, guid)
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
        if not any(scope_within(scope, s) for s in scopes):
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
        Owned(a.name, a.scope, a.principal_id, a.role_definition_id, a.created, a.owned_by)
        for a in binding.status.assignments
    ]


def binding_owner(body: dict[str, Any]) -> AssignmentOwner:
    """How the assignments a binding creates name it."""
    meta = body["metadata"]
    return AssignmentOwner(meta["namespace"], meta["name"], meta["uid"])


class Released(enum.Enum):
    DELETED = "deleted"
    HANDED_OVER = "handed over"  # another binding that records it owns it now
    NOT_OURS = "not ours"  # another binding's, or made outside the operator: left
    GONE = "gone"


async def release_assignment(
    deps: Deps, binding: AssignmentOwner, scope: str, name: str, *, recorded_created: bool
) -> Released:
    """Give up one role assignment: delete it if `binding` made it and no other binding
    records it; hand it over to one that does (the grant never lapses); leave it when it is
    not the binding's. Ownership is read from the assignment itself (its description), so
    a status that is stale, lost or wrong cannot make the binding delete another's grant."""
    try:
        return await _release(deps, binding, scope, name, recorded_created=recorded_created)
    except AzureFailure as failure:
        if gone(failure):  # the scope is gone, and its assignments with it
            return Released.GONE
        raise


async def _release(
    deps: Deps, binding: AssignmentOwner, scope: str, name: str, *, recorded_created: bool
) -> Released:
    listed = await deps.gateway.assignments_at(scope)
    found = next((a for a in listed if a.name.lower() == name.lower()), None)
    if found is None and recorded_created:
        # Recorded as made here but not in the (shared, possibly older) listing: read it
        # fresh, as it may since have been handed over to another binding.
        found = await deps.gateway.get_assignment(scope, name)
    if found is None:
        return Released.GONE
    if not made_by(found, binding, recorded_created):
        return Released.NOT_OURS
    heir = await _heir(deps, binding, name)
    if heir is None:
        await deps.gateway.delete_assignment(scope, name)
        return Released.DELETED
    await deps.gateway.create_assignment(
        scope,
        name,
        role_definition_id=found.role_definition_id,
        principal_id=found.principal_id,
        principal_type=found.principal_type,
        description=assignment_description(None, heir),
        condition=found.condition,
    )
    # The heir records itself as the creator at its next reconcile: now, not at its
    # resync. If the poke fails, Azure already names the heir; only its status lags.
    with contextlib.suppress(KubeError):
        await deps.cluster.annotate_custom(
            "mlrolebindings",
            heir.namespace,
            heir.name,
            {DEPENDENCY_ANNOTATION: f"handover/{name}@{binding.uid}"},
        )
    return Released.HANDED_OVER


async def _heir(deps: Deps, binding: AssignmentOwner, name: str) -> AssignmentOwner | None:
    """Another binding that records the assignment and stays: read from the API server,
    as the watch may not have shown yet that it is being deleted too."""
    for holder in deps.assignment_holders.get(name):
        if holder.uid == binding.uid:
            continue
        found = await deps.cluster.get_custom("mlrolebindings", holder.namespace, holder.name)
        meta = (found or {}).get("metadata") or {}
        if meta.get("uid") == holder.uid and not meta.get("deletionTimestamp"):
            return holder
    return None


async def _give_up(
    deps: Deps,
    owner: AssignmentOwner,
    record: Owned | AssignmentStatus,
    progress: Progress,
    *,
    revoking: bool,
    why: str = "",
) -> None:
    """Release one recorded assignment, and report what that did."""
    result = await release_assignment(
        deps, owner, record.scope, record.name, recorded_created=record.created
    )
    what = f"role assignment {record.name} ({record.principal_id}) at {record.scope}"
    if result is Released.HANDED_OVER:
        message = f"Kept {what}: another MLRoleBinding grants it too and now owns it"
        progress.wrote(Event("Normal", "HandedOver", message))
    elif result is Released.DELETED:
        progress.wrote(
            revoked(what) if revoking else Event("Normal", "Unassigned", f"Removed {what}{why}")
        )


async def reconcile(deps: Deps, body: dict[str, Any]) -> Outcome:
    binding = MLRoleBinding.model_validate(body)
    owner = binding_owner(body)
    scope = scope_id(binding.spec.scope, deps.settings.subscription_id)
    dependent: Key = ("mlrolebindings", owner.namespace, owner.name)
    try:
        role = await resolve_role(deps, binding, scope, dependent)
    except (Waiting, Invalid) as stuck:
        # Subjects the spec no longer names lose the role now, not when the rest resolves.
        outcome = _stuck(stuck)
        await _release_early(deps, owner, binding, [], outcome)
        return outcome
    except AzureFailure as failure:
        return Outcome.from_failure(failure, "reading the role definition")
    # The policy decides before any subject is resolved or any assignment written.
    verdict = check_binding(
        await deps.policy_set(owner.namespace), role.facts, scope, subject_refs(binding)
    )
    denied_all = verdict.denies("role")
    allowed: list[Subject] = []
    denied: list[Subject] = []
    for i, subject in enumerate(binding.spec.subjects):
        refused = denied_all or verdict.denies(f"subjects[{i}]")
        (denied if refused else allowed).append(subject)
    try:
        principals = [await _principal(deps, dependent, s) for s in allowed]
    except (Waiting, Invalid) as stuck:
        # Waiting for (or unable to use) an allowed subject must not delay revoking the
        # denied ones, nor releasing subjects the spec no longer names: a new subject that
        # never resolves would otherwise keep them.
        outcome = _stuck(stuck)
        await _release_early(deps, owner, binding, denied if verdict.enforced else [], outcome)
        return with_verdict(outcome, verdict, KIND, owner.namespace, owner.name)
    except AzureFailure as failure:
        return Outcome.from_failure(failure, "resolving subjects")
    # Look, plan and write with every principal concerned to itself: another binding of
    # the same principal (sharing one of its grants, or letting one go) waits its turn.
    owned = _owned(binding)
    concerned = [p.principal_id for p in principals] + [o.principal_id for o in owned]
    async with principal_locks(deps, concerned):
        try:
            observed = {
                p.principal_id: await deps.gateway.assignments_for(scope, p.principal_id)
                for p in principals
            }
        except AzureFailure as failure:
            return Outcome.from_failure(failure, "reading role assignments")
        plan = plan_binding(
            scope=scope,
            role_definition=role.definition_id,
            principals=principals,
            observed=observed,
            owned=owned,
            binding=owner,
            condition=binding.spec.condition,
            description=binding.spec.description,
        )
        outcome = await _apply(
            deps, owner, binding, role, plan, principals, revoking=bool(verdict.enforced)
        )
    return with_verdict(outcome, verdict, KIND, owner.namespace, owner.name)


@contextlib.asynccontextmanager
async def principal_locks(deps: Deps, principal_ids: list[str]) -> AsyncIterator[None]:
    """The assignment locks of these principals, taken in one order (no deadlock)."""
    async with contextlib.AsyncExitStack() as stack:
        for principal_id in sorted({p.lower() for p in principal_ids}):
            await stack.enter_async_context(deps.gateway.assignment_lock(principal_id))
        yield


def _stuck(stuck: Waiting | Invalid) -> Outcome:
    if isinstance(stuck, Waiting):
        return Outcome(Reason.WAITING_FOR_DEPENDENCY, str(stuck))
    return _invalid(str(stuck))


async def _release_early(
    deps: Deps,
    owner: AssignmentOwner,
    binding: MLRoleBinding,
    denied: list[Subject],
    outcome: Outcome,
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
    concerned = [r.principal_id for r in binding.status.assignments]
    async with principal_locks(deps, concerned):
        await _release_records(deps, owner, binding, denied_ids, observe_only, outcome)


async def _release_records(
    deps: Deps,
    owner: AssignmentOwner,
    binding: MLRoleBinding,
    denied_ids: set[str],
    observe_only: bool,
    outcome: Outcome,
) -> None:
    assert binding.status is not None
    named = {subject_label(s) for s in binding.spec.subjects}
    # A principal still named another way (a WorkloadIdentity's principal now listed by
    # its id) keeps its assignment until the plan decides.
    named_ids = {s.principal_id.lower() for s in binding.spec.subjects if s.principal_id}
    kept = []
    progress = Progress()
    for record in binding.status.assignments:
        revoking = record.principal_id.lower() in denied_ids
        # Observe never removes on its own; only a policy's revocation reaches it.
        removed = (
            not observe_only
            and record.subject is not None
            and record.subject not in named
            and record.principal_id.lower() not in named_ids
        )
        as_stored = record.model_dump(by_alias=True, mode="json", exclude_none=True)
        if not ((record.created or record.owned_by) and (revoking or removed)):
            kept.append(as_stored)
            continue
        why = f": {record.subject} is no longer a subject"
        try:
            await _give_up(deps, owner, record, progress, revoking=revoking, why=why)
        except AzureFailure as failure:
            kept.append(as_stored)
            progress.note(failure.reason.value, str(failure), warning=True)
    outcome.events += progress.events
    outcome.azure_writes += progress.writes
    outcome.status["assignments"] = kept


def _invalid(message: str) -> Outcome:
    return Outcome(Reason.INVALID_SPEC, message, events=[Event("Warning", "InvalidSpec", message)])


async def _apply(
    deps: Deps,
    owner: AssignmentOwner,
    binding: MLRoleBinding,
    role: ResolvedRole,
    plan: BindingPlan,
    principals: list[Principal],
    *,
    revoking: bool,
) -> Outcome:
    """Write the plan. With `revoking`, assignments of denied subjects or of a denied role
    are missing from `principals`, so their removal is a revocation."""
    scope, role_id, role_name = plan.scope, role.definition_id, role.name
    status_base = {"roleName": role_name, "roleDefinitionId": role_id, "scope": scope}
    observe_only = binding.spec.management_policy == ManagementPolicy.OBSERVE
    if observe_only and revoking and deps.manage:
        # Observe never creates, but it does not shelter a grant a policy revoked.
        plan = replace(plan, creates=())
    elif observe_only or not deps.manage:
        return _observed_only(plan, status_base)
    done = Progress(events=_shared_events(plan, binding))
    records = [_record(k, principals) for k in plan.keep]
    deps.assignment_holders.rely(owner, [k.name for k in plan.shared])
    try:
        await _write(deps, owner, binding, role, plan, principals, done, records, revoking=revoking)
        lost = await _lost_shares(deps, plan)
    except AzureFailure as failure:
        outcome = done.failed(failure, "writing role assignments")
        # Keep what exists recorded, so the next attempt neither repeats nor forgets it.
        kept = {r["name"] for r in records}
        leftovers = [_record(o, principals) for o in plan.deletes if o.name not in kept]
        outcome.status = {**status_base, "assignments": records + leftovers}
        return outcome
    status = {**status_base, "assignments": records}
    if lost:
        # Its owner let it go between this binding's look and now (before it knew this
        # binding relies on it): look again soon, and make this binding's own.
        message = (
            f"shared role assignment {', '.join(lost)} was removed by its owner meanwhile; "
            "looking again"
        )
        return Outcome(
            Reason.RECONCILING,
            message,
            status=status,
            events=done.events,
            retry_after=FAST,
            azure_writes=done.writes,
        )
    if plan.conflicts:
        message = "; ".join(c.message for c in plan.conflicts)
        return Outcome(
            Reason.CONFLICT,
            message,
            status=status,
            events=[*done.events, Event("Warning", Reason.CONFLICT.value, message)],
            azure_writes=done.writes,
        )
    count = len(records)
    message = f"{role_name} granted at {scope} to {count} principal{'s' if count != 1 else ''}"
    if plan.shared:
        shared = ", ".join(f"{k.name} of MLRoleBinding {k.owner}" for k in plan.shared)
        message += f"; shares role assignment {shared}"
    return Outcome(
        Reason.RECONCILED, message, status=status, events=done.events, azure_writes=done.writes
    )


async def _lost_shares(deps: Deps, plan: BindingPlan) -> list[str]:
    """Shared assignments the plan kept that are gone now (the listing follows this
    process's own deletes)."""
    if not plan.shared:
        return []
    present = {a.name.lower() for a in await deps.gateway.assignments_at(plan.scope)}
    return [k.name for k in plan.shared if k.name.lower() not in present]


async def _write(
    deps: Deps,
    owner: AssignmentOwner,
    binding: MLRoleBinding,
    role: ResolvedRole,
    plan: BindingPlan,
    principals: list[Principal],
    done: Progress,
    records: list[dict[str, Any]],
    *,
    revoking: bool,
) -> None:
    """New assignments first, old ones after: a change of role, scope or subject never
    leaves the principal without access in between. `records` gains each one made."""
    scope, role_id = plan.scope, role.definition_id

    async def put(wanted: Create) -> RoleAssignment:
        """One of this binding's assignments, as the spec says (a new one, or the same
        one written again)."""
        return await deps.gateway.create_assignment(
            scope,
            wanted.name,
            role_definition_id=role_id,
            principal_id=wanted.principal.principal_id,
            principal_type=wanted.principal.principal_type,
            description=assignment_description(binding.spec.description, owner),
            condition=binding.spec.condition,
        )

    for create in plan.creates:
        made = await put(create)
        records.append(
            _record(Owned(made.name, scope, made.principal_id, role_id, True), principals)
        )
        done.wrote(
            Event(
                "Normal",
                "Assigned",
                f"Assigned {role.name} to {create.principal.subject} at {scope}",
            )
        )
    for update in plan.updates:
        # The same assignment written again: its condition is replaced in place, so the
        # grant never lapses and never widens in between.
        await put(Create(update.name, update.principal))
        done.writes += 1
        if update.condition_changed:
            condition = "the spec's condition" if binding.spec.condition else "no condition"
            done.events.append(
                Event(
                    "Normal",
                    "ConditionUpdated",
                    f"Role assignment {update.name} of {update.principal.subject} now has "
                    f"{condition}",
                )
            )
    for stale in plan.deletes:
        await _give_up(deps, owner, stale, done, revoking=revoking)


def _observed_only(plan: BindingPlan, status: dict[str, Any]) -> Outcome:
    """Observe mode (or `aml-identity plan`): what would change, nothing written."""
    pending = [*plan.changes, *(c.message for c in plan.conflicts)]
    if not pending:
        return Outcome(Reason.RECONCILED, "Azure matches the spec (observe only)", status=status)
    return Outcome(
        Reason.DRIFT_DETECTED,
        f"{len(pending)} change(s) pending; managementPolicy is Observe",
        status=status,
        pending_changes=pending,
    )


def _shared_events(plan: BindingPlan, binding: MLRoleBinding) -> list[Event]:
    """One event when a grant starts to be shared with another binding (not every resync)."""
    before = {
        a.name.lower(): a.owned_by for a in (binding.status.assignments if binding.status else [])
    }
    return [
        Event(
            "Normal",
            "Shared",
            f"Role assignment {k.name} ({k.principal_id}) already grants this role; it "
            f"belongs to MLRoleBinding {k.owner}, which decides when it is removed",
        )
        for k in plan.shared
        if before.get(k.name.lower()) != k.owner
    ]


def _record(owned: Owned, principals: list[Principal]) -> dict[str, Any]:
    principal = next((p for p in principals if p.principal_id == owned.principal_id), None)
    record = {
        "name": owned.name,
        "scope": owned.scope,
        "roleDefinitionId": owned.role_definition_id,
        "principalId": owned.principal_id,
        "principalType": principal.principal_type if principal else None,
        "subject": principal.subject if principal else None,
        "created": owned.created,
    }
    if owned.owner:
        # Only when shared: the API server drops a null, and a record that differs from
        # the stored one on every look would be written again at every resync.
        record["ownedBy"] = owned.owner
    return record


async def delete(deps: Deps, body: dict[str, Any]) -> Outcome:
    binding = MLRoleBinding.model_validate(body)
    spec = binding.spec
    kept = kept_on_delete(spec.deletion_policy, spec.management_policy, "role assignments")
    if kept is not None:
        return kept
    owner = binding_owner(body)
    progress = Progress()
    try:
        candidates = await _deletion_candidates(deps, owner, binding)
        async with principal_locks(deps, [c.principal_id for c in candidates]):
            for record in candidates:
                await _give_up(deps, owner, record, progress, revoking=False)
    except AzureFailure as failure:
        outcome = progress.failed(failure, "deleting role assignments")
        outcome.reason = Reason.DELETION_BLOCKED
        return outcome
    deps.assignment_holders.forget(owner.uid)  # gone: it can inherit nothing now
    return Outcome(
        Reason.DELETING,
        f"released {progress.writes} role assignment(s)",
        events=progress.events,
        azure_writes=progress.writes,
    )


async def _deletion_candidates(
    deps: Deps, owner: AssignmentOwner, binding: MLRoleBinding
) -> list[Owned]:
    """What the binding may hold: its status records, and every assignment at its scope
    whose description names it (a crash between the write and the status patch, or a
    status lost in a restore, leaves no record)."""
    owned = _owned(binding)
    candidates = {(o.scope.lower(), o.name.lower()): o for o in owned}
    scopes = {scope_id(binding.spec.scope, deps.settings.subscription_id)}
    if binding.status is not None and binding.status.scope:
        scopes.add(binding.status.scope)
    recorded = any(o.created for o in owned)
    for scope in scopes:
        try:
            listed = await deps.gateway.assignments_at(scope)
        except AzureFailure as failure:
            # The scope is gone (and its assignments with it), or, with nothing recorded,
            # Azure will not show it: the binding could not have assigned there either.
            if gone(failure) or (not recorded and nothing_to_find(failure)):
                continue
            raise
        for found in listed:
            named = assignment_owner(found.description)
            if named is not None and named.uid == owner.uid:
                key = (scope.lower(), found.name.lower())
                candidates.setdefault(
                    key,
                    Owned(found.name, scope, found.principal_id, found.role_definition_id, True),
                )
    return list(candidates.values())
