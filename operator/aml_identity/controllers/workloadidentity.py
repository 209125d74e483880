"""WorkloadIdentity (managed-identity form): the identity, its federated credentials,
and the annotations on the service accounts it trusts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aml_identity.api.common import ManagementPolicy, Reason
from aml_identity.api.observed import FederatedCredential, Identity
from aml_identity.api.workloadidentity import WorkloadIdentity
from aml_identity.azure.errors import AzureFailure, gone, nothing_to_find
from aml_identity.controllers import grants, serviceprincipal
from aml_identity.controllers.guard import removed_credential, revoked, with_verdict
from aml_identity.controllers.outcome import Deps, Event, Outcome, Progress, kept_on_delete
from aml_identity.kube.cluster import TRIGGER_ANNOTATION, KubeError, ServiceAccountTaken
from aml_identity.metrics import DRIFT_CORRECTIONS
from aml_identity.reconcile.conditions import is_ready
from aml_identity.reconcile.identity import (
    DesiredIdentity,
    IdentityPlan,
    Owner,
    SpecError,
    created_by,
    desired_identity,
    plan_identity,
)
from aml_identity.reconcile.names import ADOPT_ANNOTATION, ADOPTABLE_TAG, TAG_PREFIX
from aml_identity.reconcile.policy import (
    EXCLUSIVE_GRANTS,
    FederationRef,
    IdentityRequest,
    Verdict,
    check_identity,
)

KIND = "WorkloadIdentity"


def owner_of(body: dict[str, Any], cluster_id: str) -> Owner:
    meta = body["metadata"]
    return Owner(meta["namespace"], meta["name"], meta["uid"], cluster_id)


def _desired(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    excluded: frozenset[str] = frozenset(),
) -> DesiredIdentity:
    return desired_identity(
        resource.spec,
        owner,
        default_subscription=deps.settings.subscription_id,
        issuer=deps.issuer,
        excluded=excluded,
    )


def adoption_requested(body: dict[str, Any]) -> bool:
    return (body["metadata"].get("annotations") or {}).get(ADOPT_ANNOTATION) == "true"


def identity_request(
    resource: WorkloadIdentity, namespace: str, name: str, default_subscription: str, adopt: bool
) -> IdentityRequest:
    """What the resource asks of the policies: where, which credential, which federations
    (its serviceAccounts are its own namespace's and always allowed)."""
    spec = resource.spec
    mi = spec.managed_identity
    sp = spec.service_principal
    credential = sp.credential if sp is not None else None
    kind: str | None = None
    duration: str | None = None
    vault: str | None = None
    if credential is not None and credential.certificate is not None:
        kind, duration = "Certificate", credential.certificate.duration
        if credential.certificate.key_vault is not None:
            vault = credential.certificate.key_vault.vault_url
    elif credential is not None and credential.client_secret is not None:
        kind, duration = "ClientSecret", credential.client_secret.duration
    return IdentityRequest(
        namespace=namespace,
        name=name,
        managed_identity=(
            (mi.subscription_id or default_subscription, mi.resource_group, mi.location)
            if mi is not None
            else None
        ),
        service_principal=sp is not None,
        credential_kind=kind,
        credential_duration=duration,
        key_vault_url=vault,
        federated=tuple(
            FederationRef(f.name, f.issuer, f.subject, tuple(f.audiences))
            for f in spec.federated_credentials
        ),
        adopt=adopt and mi is not None,
        exclusive_grants=spec.exclusive_grants,
    )


async def verdict_for(deps: Deps, resource: WorkloadIdentity, body: dict[str, Any]) -> Verdict:
    meta = body["metadata"]
    request = identity_request(
        resource,
        meta["namespace"],
        meta["name"],
        deps.settings.subscription_id,
        adoption_requested(body),
    )
    return check_identity(
        await deps.policy_set(meta["namespace"]),
        request,
        cluster_issuer=deps.issuer,
        vault_hosts=deps.settings.key_vault_hosts,
    )


def denied_federations(verdict: Verdict) -> frozenset[str]:
    prefix = "federatedCredentials["
    return frozenset(
        d.part[len(prefix) : -1] for d in verdict.enforced if d.part.startswith(prefix)
    )


async def reconcile(deps: Deps, body: dict[str, Any]) -> Outcome:
    resource = WorkloadIdentity.model_validate(body)
    owner = owner_of(body, deps.settings.cluster_id)
    verdict = await verdict_for(deps, resource, body)
    if verdict.denies("identity"):
        return with_verdict(
            await revoke(deps, resource, owner), verdict, KIND, owner.namespace, owner.name
        )
    excluded = denied_federations(verdict)
    revoked: Outcome | None = None
    if excluded and resource.spec.management_policy == ManagementPolicy.OBSERVE:
        # Observe writes nothing, except that it does not shelter a revoked federation.
        revoked = await revoke(deps, resource, owner, only=excluded)
    outcome = await _reconcile(deps, resource, owner, body, excluded)
    if revoked is not None:
        outcome.events = revoked.events + outcome.events
        outcome.azure_writes += revoked.azure_writes
    if outcome.reason in (Reason.RECONCILED, Reason.DRIFT_DETECTED):
        await _compare_grants(deps, resource, owner, outcome, verdict)
    # A denied spec.exclusiveGrants withholds only the removal, which the UndeclaredGrants
    # condition reports: the identity (and the bindings waiting for it) stays Ready.
    about_identity = replace(
        verdict, denials=tuple(d for d in verdict.denials if d.part != EXCLUSIVE_GRANTS)
    )
    return with_verdict(outcome, about_identity, KIND, owner.namespace, owner.name)


async def _compare_grants(
    deps: Deps, resource: WorkloadIdentity, owner: Owner, outcome: Outcome, verdict: Verdict
) -> None:
    """Undeclared grants, once the identity exists (controllers/grants.py)."""
    principal = outcome.status.get("principalId") or (
        resource.status.principal_id if resource.status else None
    )
    if not principal:
        return
    kept_because: str | None = None
    if resource.spec.exclusive_grants:
        if verdict.denies(EXCLUSIVE_GRANTS):
            kept_because = (
                "no MLAccessPolicy selecting the namespace sets spec.identities.exclusiveGrants"
            )
        elif resource.spec.management_policy == ManagementPolicy.OBSERVE:
            kept_because = "managementPolicy is Observe"
        elif not deps.manage:
            kept_because = "planning only"
    scan, done = await grants.compare(
        deps,
        namespace=owner.namespace,
        name=owner.name,
        uid=owner.uid,
        principal_id=str(principal),
        reported=[g.name for g in resource.status.undeclared_grants] if resource.status else [],
        remove=resource.spec.exclusive_grants and kept_because is None,
        kept_because=kept_because,
    )
    grants.apply(outcome, scan, done)


async def _reconcile(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    body: dict[str, Any],
    excluded: frozenset[str],
) -> Outcome:
    if resource.spec.service_principal is not None:
        outcome = await serviceprincipal.reconcile(deps, resource, owner, excluded=excluded)
        if outcome.reason is Reason.RECONCILED and outcome.status.get("clientId"):
            client_id = str(outcome.status["clientId"])
            return await _with_service_accounts(
                deps, resource, owner, outcome, client_id, deps.settings.tenant_id
            )
        return outcome
    try:
        desired = _desired(deps, resource, owner, excluded)
    except SpecError as error:
        return Outcome(Reason.INVALID_SPEC, str(error))
    try:
        observed, credentials = await _observe(deps, resource, body, desired)
    except AzureFailure as failure:
        return Outcome.from_failure(failure, f"reading managed identity {desired.name}")
    adopted = _adopted_credentials(resource, observed, credentials, desired)
    outcome = await _converge(deps, resource, owner, body, desired, observed, credentials, excluded)
    if outcome.status.get("federatedCredentials") is not None and observed is not None:
        if _adopted(resource, observed):
            outcome.status["adopted"] = True
        if adopted is not None:
            outcome.status["adoptedFederatedCredentials"] = adopted
    return outcome


async def _converge(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    body: dict[str, Any],
    desired: DesiredIdentity,
    observed: Identity | None,
    credentials: list[FederatedCredential] | None,
    excluded: frozenset[str],
) -> Outcome:
    """Plan and, unless observing only, write: the identity and its credentials."""
    known_principal = resource.status.principal_id if resource.status else None
    plan = plan_identity(
        desired,
        observed,
        credentials,
        owner_uid=owner.uid,
        adopt=adoption_requested(body),
        consent=f"{owner.namespace}/{owner.name}",
        known_principal=known_principal,
        made_credentials=_made_credentials(resource),
        adopted=bool(resource.status and resource.status.adopted),
    )
    if plan.blocked:
        reason, message = plan.blocked
        return Outcome(reason, message, events=[Event("Warning", reason.value, message)])
    if resource.spec.management_policy == ManagementPolicy.OBSERVE or not deps.manage:
        if plan.empty and observed is not None:
            return _ready(
                deps, resource, observed, desired, "Azure matches the spec (observe only)"
            )
        return Outcome(
            Reason.DRIFT_DETECTED,
            f"{len(plan.changes)} change(s) pending; managementPolicy is Observe",
            pending_changes=list(plan.changes),
        )
    written = await _write(deps, desired, observed, plan, excluded)
    if isinstance(written, Outcome):
        return written
    identity, done = written
    outcome = _ready(
        deps, resource, identity, desired, "identity and federated credentials match the spec"
    )
    outcome.events, outcome.azure_writes = done.events, done.writes
    return await _after_writes(deps, resource, owner, plan, identity, outcome, known_principal)


async def _observe(
    deps: Deps, resource: WorkloadIdentity, body: dict[str, Any], desired: DesiredIdentity
) -> tuple[Identity | None, list[FederatedCredential] | None]:
    """The identity, and its federated credentials unless this resync skips them (None)."""
    gateway = deps.gateway
    sub, group, name = desired.subscription, desired.resource_group, desired.name
    observed = await gateway.get_identity(sub, group, name)
    if observed is None:
        return None, []
    if deps.observe_federation or not _settled(resource, body, desired):
        return observed, await gateway.list_federated_credentials(sub, group, name)
    return observed, None  # this resync compares the identity only


async def _write(
    deps: Deps,
    desired: DesiredIdentity,
    observed: Identity | None,
    plan: IdentityPlan,
    excluded: frozenset[str],
) -> tuple[Identity, Progress] | Outcome:
    """Apply the plan: the identity, then its federated credentials (one writer per
    identity at a time). Returns the identity as written and what was done, or the
    failure's outcome."""
    gateway = deps.gateway
    sub, group, name = desired.subscription, desired.resource_group, desired.name
    done = Progress()
    try:
        if plan.create:
            observed = await gateway.create_identity(
                sub, group, name, desired.location, desired.tags
            )
            done.wrote(Event("Normal", "Created", f"Created managed identity {observed.id}"))
        elif plan.tags is not None:
            observed = await gateway.update_tags(sub, group, name, plan.tags)
            done.wrote(Event("Normal", "Updated", f"Updated the tags of {name}"))
        assert observed is not None
        async with gateway.identity_lock(observed.id):
            for credential in plan.put_credentials:
                await gateway.put_federated_credential(sub, group, name, credential)
                done.wrote(
                    Event(
                        "Normal",
                        "FederatedCredential",
                        f"Federated {credential.subject} ({credential.name})",
                    )
                )
            for stale in plan.delete_credentials:
                await gateway.delete_federated_credential(sub, group, name, stale)
                done.wrote(removed_credential(stale, excluded))
    except AzureFailure as failure:
        return done.failed(failure, f"writing managed identity {name}")
    return observed, done


async def _after_writes(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    plan: IdentityPlan,
    observed: Identity,
    outcome: Outcome,
    known_principal: str | None,
) -> Outcome:
    """Record what was written, tell the bindings of a recreated identity, and bind the
    service accounts."""
    if outcome.azure_writes and known_principal is not None and not plan.create:
        DRIFT_CORRECTIONS.labels(KIND).inc()
    if plan.create and known_principal is not None:
        DRIFT_CORRECTIONS.labels(KIND).inc()
        outcome.events.append(
            Event(
                "Warning",
                "Recreated",
                f"Managed identity {observed.name} was missing in Azure and was created "
                f"again; its principal id changed from {known_principal} to "
                f"{observed.principal_id}",
            )
        )
        try:
            await poke_bindings(deps, owner, observed.principal_id)
        except KubeError as error:
            return _kube_refused(outcome, error, "waking the bindings of the new principal")
    return await _with_service_accounts(
        deps, resource, owner, outcome, observed.client_id, observed.tenant_id
    )


def _kube_refused(done: Outcome, error: KubeError, doing: str) -> Outcome:
    """A Kubernetes refusal after Azure was written: the status and events still say
    what was written, so nothing done goes unrecorded; the error table says when to retry."""
    failed = Outcome.from_kube_error(error, doing)
    failed.status = done.status
    failed.events = done.events + failed.events
    failed.azure_writes = done.azure_writes
    return failed


async def _with_service_accounts(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    outcome: Outcome,
    client_id: str,
    tenant_id: str,
) -> Outcome:
    """`outcome` (the identity is Ready) once its service accounts are bound too."""
    try:
        events, taken = await _sync_service_accounts(deps, resource, owner, client_id, tenant_id)
    except KubeError as error:
        return _kube_refused(outcome, error, "annotating service accounts")
    outcome.events += events
    if taken:
        message = "; ".join(taken)
        outcome.reason, outcome.message = Reason.CONFLICT, message
        outcome.events.append(Event("Warning", Reason.CONFLICT.value, message))
    return outcome


def _ours(observed: Identity, resource: WorkloadIdentity, owner: Owner) -> bool:
    known = resource.status.principal_id if resource.status else None
    return created_by(observed, owner.uid, known)


async def _remove_credentials(
    deps: Deps,
    desired: DesiredIdentity,
    observed: Identity,
    which: Callable[[FederatedCredential], bool],
    removed: Callable[[FederatedCredential], None],
) -> None:
    """Delete the identity's federated credentials that `which` selects (serialized with
    every other credential write to it), calling `removed` after each: a failure part
    way still reports what was done."""
    gateway = deps.gateway
    sub, group, name = desired.subscription, desired.resource_group, desired.name
    async with gateway.identity_lock(observed.id):
        for credential in await gateway.list_federated_credentials(sub, group, name):
            if which(credential):
                await gateway.delete_federated_credential(sub, group, name, credential.name)
                removed(credential)


def _settled(resource: WorkloadIdentity, body: dict[str, Any], desired: DesiredIdentity) -> bool:
    """Ready for this generation with exactly the desired federated credentials made:
    a resync may then skip reading them."""
    status = resource.status
    return (
        status is not None
        and is_ready(status.conditions, body["metadata"].get("generation"))
        and sorted(status.federated_credentials)
        == sorted(c.name for c in desired.federated_credentials)
    )


def _made_credentials(resource: WorkloadIdentity) -> frozenset[str]:
    """The federated credentials this resource made: the ones it keeps, but those an
    adopted identity already had."""
    status = resource.status
    if status is None:
        return frozenset()
    return frozenset(status.federated_credentials) - set(status.adopted_federated_credentials or ())


def _adopted(resource: WorkloadIdentity, observed: Identity) -> bool:
    """Someone else's identity this resource took over: recorded once adopted (so that
    withdrawing consent, removing the tag, does not make it look like ours), or carrying
    the owner's consent tag without our ownership tags."""
    if resource.status is not None and resource.status.adopted:
        return True
    return ADOPTABLE_TAG in observed.tags and f"{TAG_PREFIX}.uid" not in observed.tags


def _adopted_credentials(
    resource: WorkloadIdentity,
    observed: Identity | None,
    credentials: list[FederatedCredential] | None,
    desired: DesiredIdentity,
) -> list[str] | None:
    """The desired credentials an adopted identity had that this resource did not make
    (recorded so that they are never removed); None: nothing to record this time (not
    adopted, or the credentials were not read)."""
    if observed is None or credentials is None:
        return None
    status = resource.status
    legacy = status is not None and status.adopted_federated_credentials is None
    if not (_adopted(resource, observed) or (legacy and ADOPTABLE_TAG in observed.tags)):
        return None
    wanted = {c.name for c in desired.federated_credentials}
    if legacy and status is not None and status.principal_id:
        # Adopted by a version that recorded none: its status lists the owner's and its
        # own alike. The operator names its own k8s-<service account>; the rest were
        # there (erring towards keeping: a credential kept is not a credential lost).
        return sorted(
            c.name for c in credentials if c.name in wanted and not c.name.startswith("k8s-")
        )
    made = _made_credentials(resource)
    return sorted(c.name for c in credentials if c.name in wanted and c.name not in made)


def _ready(
    deps: Deps, resource: WorkloadIdentity, observed: Any, desired: DesiredIdentity, message: str
) -> Outcome:
    return Outcome(
        Reason.RECONCILED,
        message,
        status={
            "clientId": observed.client_id,
            "principalId": observed.principal_id,
            "tenantId": observed.tenant_id,
            "resourceId": observed.id,
            "federatedCredentials": [c.name for c in desired.federated_credentials],
            "serviceAccounts": [a.name for a in resource.spec.service_accounts],
        },
    )


async def _sync_service_accounts(
    deps: Deps, resource: WorkloadIdentity, owner: Owner, client_id: str, tenant_id: str
) -> tuple[list[Event], list[str]]:
    """Annotate the listed service accounts; release those dropped from the spec. Returns
    the events, and why each account held by another WorkloadIdentity was left alone."""
    events, taken = await _bind_service_accounts(deps, resource, owner, client_id, tenant_id)
    wanted = {a.name for a in resource.spec.service_accounts}
    for dropped in resource.status.service_accounts if resource.status else []:
        if dropped not in wanted:
            await deps.cluster.release_service_account(
                owner.namespace, dropped, owner.name, owner.uid
            )
            events.append(Event("Normal", "ServiceAccount", f"Released service account {dropped}"))
    return events, taken


async def _bind_service_accounts(
    deps: Deps, resource: WorkloadIdentity, owner: Owner, client_id: str, tenant_id: str
) -> tuple[list[Event], list[str]]:
    events: list[Event] = []
    taken: list[str] = []
    for account in resource.spec.service_accounts:
        try:
            result = await deps.cluster.bind_service_account(
                owner.namespace,
                account.name,
                create=account.create,
                client_id=client_id,
                tenant_id=tenant_id,
                owner=owner.name,
                owner_uid=owner.uid,
            )
        except ServiceAccountTaken as refused:
            taken.append(str(refused))
            continue
        if result == "created":
            events.append(
                Event("Normal", "ServiceAccount", f"Created service account {account.name}")
            )
        elif result == "annotated":
            events.append(
                Event("Normal", "ServiceAccount", f"Annotated service account {account.name}")
            )
        elif result == "missing":
            events.append(
                Event(
                    "Warning",
                    "ServiceAccountMissing",
                    f"Service account {account.name} does not exist "
                    "(set create: true to create it)",
                )
            )
    return events, taken


async def poke_bindings(deps: Deps, owner: Owner, principal_id: str) -> None:
    """Make every binding that names this identity reconcile now: its principal changed.
    The annotation carries the new principal id, so each change is a new update."""
    for binding in await deps.cluster.list_custom("mlrolebindings", owner.namespace):
        subjects = binding.get("spec", {}).get("subjects", [])
        if any(s.get("workloadIdentity") == owner.name for s in subjects):
            await deps.cluster.annotate_custom(
                "mlrolebindings",
                owner.namespace,
                binding["metadata"]["name"],
                {TRIGGER_ANNOTATION: principal_id},
            )


async def revoke(
    deps: Deps, resource: WorkloadIdentity, owner: Owner, only: frozenset[str] | None = None
) -> Outcome:
    """The identity is not allowed (any more): create nothing, and remove the federated
    credentials this resource made (or only those named in `only`), so no workload can
    sign in as it through the operator. managementPolicy Observe does not stop this. The
    identity itself stays (deleting it loses its principal id for good); its bindings
    are revoked by their own checks."""
    if not deps.manage:
        return Outcome(Reason.RECONCILED, "planning only: nothing revoked")
    if resource.spec.service_principal is not None:
        return await serviceprincipal.revoke(deps, resource, owner, only)
    try:
        desired = _desired(deps, resource, owner)
    except SpecError as error:
        return Outcome(Reason.INVALID_SPEC, str(error))
    sub, group, name = desired.subscription, desired.resource_group, desired.name
    gateway = deps.gateway
    events: list[Event] = []
    try:
        observed = await gateway.get_identity(sub, group, name)
        if observed is None or not _ours(observed, resource, owner):
            return Outcome(Reason.RECONCILED, "no managed identity was created")
        adopted = _adopted(resource, observed)
        made = _made_credentials(resource)

        def revoking(credential: FederatedCredential) -> bool:
            return (not adopted or credential.name in made) and (
                only is None or credential.name in only
            )

        def report(credential: FederatedCredential) -> None:
            what = f"{credential.name} ({credential.issuer}, {credential.subject})"
            events.append(revoked(f"federated credential {what}"))

        await _remove_credentials(deps, desired, observed, revoking, report)
    except AzureFailure as failure:
        outcome = Outcome.from_failure(failure, f"revoking managed identity {name}")
        outcome.events = events + outcome.events
        outcome.azure_writes = len(events)
        return outcome
    return Outcome(
        Reason.RECONCILED,
        f"federated credentials of {name} removed" if events else "nothing to revoke",
        status={} if only is not None else {"federatedCredentials": []},
        events=events,
        azure_writes=len(events),
    )


async def delete(deps: Deps, body: dict[str, Any]) -> Outcome:
    """Remove what this resource created; 404 counts as gone."""
    resource = WorkloadIdentity.model_validate(body)
    owner = owner_of(body, deps.settings.cluster_id)
    try:
        for account in resource.spec.service_accounts:
            await deps.cluster.release_service_account(
                owner.namespace, account.name, owner.name, owner.uid
            )
    except KubeError as error:
        outcome = Outcome.from_kube_error(error, "releasing service accounts")
        outcome.reason = Reason.DELETION_BLOCKED
        return outcome
    if resource.spec.service_principal is not None:
        return await serviceprincipal.delete(deps, resource, owner)
    if resource.spec.managed_identity is None:
        return Outcome(Reason.DELETING, "the spec describes no Azure identity")
    spec = resource.spec
    kept = kept_on_delete(spec.deletion_policy, spec.management_policy, "the managed identity")
    if kept is not None:
        return kept
    try:
        desired = _desired(deps, resource, owner)
    except SpecError:
        return Outcome(Reason.DELETING, "the spec never described an Azure identity")
    gateway = deps.gateway
    try:
        observed = await gateway.get_identity(
            desired.subscription, desired.resource_group, desired.name
        )
        if observed is None:
            return Outcome(Reason.DELETING, "managed identity already gone")
        if not _ours(observed, resource, owner):
            return Outcome(Reason.DELETING, f"{observed.id} is not ours: left in place")
        if _adopted(resource, observed) and resource.spec.deletion_policy is None:
            return await _release(deps, resource, owner, desired, observed)
        await gateway.delete_identity(desired.subscription, desired.resource_group, desired.name)
    except AzureFailure as failure:
        where = f"{desired.subscription}/{desired.resource_group}"
        if gone(failure):
            return Outcome(Reason.DELETING, f"{where} is gone, and the managed identity with it")
        if not _recorded(resource) and nothing_to_find(failure):
            message = (
                f"nothing was recorded as created, and Azure refuses to show {where} "
                f"({failure.code or failure.reason.value}): nothing to delete"
            )
            return Outcome(
                Reason.DELETING, message, events=[Event("Warning", "NothingToDelete", message)]
            )
        outcome = Outcome.from_failure(failure, f"deleting managed identity {desired.name}")
        outcome.reason = Reason.DELETION_BLOCKED
        return outcome
    return Outcome(
        Reason.DELETING,
        f"deleted managed identity {observed.id}",
        events=[Event("Normal", "Deleted", f"Deleted managed identity {observed.id}")],
        azure_writes=1,
    )


def _recorded(resource: WorkloadIdentity) -> bool:
    """Whether the status shows an Azure identity was ever seen for this resource."""
    status = resource.status
    return status is not None and bool(
        status.principal_id or status.client_id or status.resource_id
    )


async def _release(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    desired: DesiredIdentity,
    observed: Identity,
) -> Outcome:
    """An adopted identity outlives its WorkloadIdentity (deletionPolicy defaults to
    Orphan for it): remove only the federated credentials this resource made and its
    ownership tags, and leave the identity to its owner."""
    made = _made_credentials(resource)
    removed: list[FederatedCredential] = []
    await _remove_credentials(deps, desired, observed, lambda c: c.name in made, removed.append)
    writes = len(removed)
    # Only the operator's own tags go: the owner's (and their consent tag) stay.
    theirs = {
        k: v
        for k, v in observed.tags.items()
        if not k.startswith(f"{TAG_PREFIX}.") or k == ADOPTABLE_TAG
    }
    if theirs != observed.tags:
        await deps.gateway.update_tags(
            desired.subscription, desired.resource_group, desired.name, theirs
        )
        writes += 1
    message = f"released adopted managed identity {observed.id} to its owner"
    return Outcome(
        Reason.DELETING,
        message,
        events=[Event("Normal", "Released", message.capitalize())],
        azure_writes=writes,
    )
