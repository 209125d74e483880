"""Admission: the reconcile's policy decision, given at `kubectl apply`.

The same pure functions (reconcile/policy.py) decide; this module only gathers the facts
for them without waiting on anything. Where a fact cannot be read now (an MLRole not yet
created, Azure unreachable), admission decides on what the spec says and the reconcile,
which is authoritative, decides again with every fact before any Azure write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aml_identity.api.mlrole import MLRole
from aml_identity.api.mlrolebinding import MLRoleBinding
from aml_identity.api.workloadidentity import WorkloadIdentity
from aml_identity.azure.errors import AzureFailure
from aml_identity.controllers.mlrolebinding import (
    Invalid,
    Waiting,
    ml_role_facts,
    resolve_role,
    subject_refs,
)
from aml_identity.controllers.outcome import Deps
from aml_identity.controllers.workloadidentity import verdict_for
from aml_identity.reconcile.binding import scope_id
from aml_identity.reconcile.names import ADOPT_ANNOTATION, definition_guid, role_definition_name
from aml_identity.reconcile.policy import (
    PRIVILEGED_BUILT_IN,
    RoleFacts,
    Verdict,
    built_in_privilege,
    check_binding,
    ml_role_problem,
)
from aml_identity.reconcile.role import check_operations, patterns
from azure_operations import catalog


@dataclass
class Review:
    """`denied`: why the request is refused (None: admitted), with the HTTP `code`
    (403: a policy refuses it, 422: the spec is invalid); `warnings` go to kubectl."""

    denied: str | None = None
    warnings: list[str] = field(default_factory=list)
    code: int = 403


def _unchanged(body: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Updates that change neither the spec nor the adoption request are not requests to
    the operator (its own status, finalizer and annotation writes among them)."""
    if old is None:
        return False

    def adopt(obj: dict[str, Any]) -> str | None:
        return ((obj.get("metadata") or {}).get("annotations") or {}).get(ADOPT_ANNOTATION)

    return body.get("spec") == old.get("spec") and adopt(body) == adopt(old)


def _from_verdict(verdict: Verdict) -> Review:
    denied = verdict.enforced
    reported = [d.message for d in verdict.denials if d not in denied]
    return Review(
        denied="; ".join(d.message for d in denied) or None,
        warnings=[f"MLAccessPolicy (Audit): {m}" for m in reported],
    )


async def review(
    deps: Deps, plural: str, body: dict[str, Any], old: dict[str, Any] | None
) -> Review:
    if (body.get("metadata") or {}).get("deletionTimestamp") or _unchanged(body, old):
        return Review()
    if plural == "mlroles":
        spec = MLRole.model_validate(body).spec
        # What the object already had was admitted before (by an older catalog,
        # perhaps): an update is checked for what it adds.
        before = MLRole.model_validate(old).spec.permissions if old else None
        checked = check_operations(spec, catalog(), patterns(before))
        if checked.refused is not None and deps.settings.check_role_operations:
            return Review(denied=checked.refused, warnings=checked.warnings, code=422)
        return Review(denied=ml_role_problem(spec), warnings=checked.warnings)
    if plural == "workloadidentities":
        resource = WorkloadIdentity.model_validate(body)
        return _from_verdict(await verdict_for(deps, resource, body))
    if plural == "mlrolebindings":
        binding = MLRoleBinding.model_validate(body)
        namespace = body["metadata"]["namespace"]
        scope = scope_id(binding.spec.scope, deps.settings.subscription_id)
        try:
            facts = await _role_facts(deps, binding, scope)
        except Invalid as invalid:
            # A role that does not exist grants nothing: the reconcile reports
            # InvalidSpec (and decides again if it ever appears).
            return Review(warnings=[f"{invalid}: the operator will report InvalidSpec"])
        verdict = check_binding(
            await deps.policy_set(namespace), facts, scope, subject_refs(binding)
        )
        return _from_verdict(verdict)
    return Review()


def _static_facts(guid: str, name: str, built_in: bool) -> RoleFacts:
    """What is known without Azure: the privileged built-in roles by GUID or name."""
    key, why = built_in_privilege(guid, name)
    known = PRIVILEGED_BUILT_IN.get(key)
    return RoleFacts(
        guid=key, name=known or name, built_in=built_in or known is not None, privileged=why
    )


async def _role_facts(deps: Deps, binding: MLRoleBinding, scope: str) -> RoleFacts:
    """Raises Invalid for a role that does not exist."""
    role = binding.spec.role
    if role.ml_role is not None:
        # The MLRole may be applied in the same sync and not be Ready yet: its spec says
        # whether it is privileged.
        ml_role = await deps.cluster.get_custom("mlroles", None, role.ml_role)
        guid = role_definition_name(deps.settings.cluster_id, role.ml_role)
        if ml_role is None:
            return RoleFacts(guid=guid, name=role.ml_role, built_in=False, ml_role=role.ml_role)
        return ml_role_facts(role.ml_role, ml_role, guid)
    try:
        return (await resolve_role(deps, binding, scope)).facts
    except (Waiting, AzureFailure):
        if role.built_in is not None:
            return _static_facts("", role.built_in, True)
        assert role.role_definition_id is not None
        guid = definition_guid(role.role_definition_id)
        return _static_facts(guid, guid, False)
