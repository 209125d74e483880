"""WorkloadIdentity (servicePrincipal form): an Entra application owned by the operator,
its service principal, federated credentials, and a certificate or client secret kept
in a Kubernetes Secret and rotated with overlap."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aml_identity.api.common import ManagementPolicy, Reason
from aml_identity.api.observed import Application, FederatedCredential, ServicePrincipal
from aml_identity.api.workloadidentity import WorkloadIdentity, WorkloadIdentityCredentialStatus
from aml_identity.azure.errors import AzureFailure
from aml_identity.controllers.credentialstores import (
    AppKeys,
    KeyListError,
    NotOwnedError,
    SecretStore,
    Store,
    VaultStore,
    View,
)
from aml_identity.controllers.guard import removed_credential, revoked
from aml_identity.controllers.outcome import (
    Deps,
    Event,
    Outcome,
    Progress,
    kept_on_delete,
    kube_failure,
)
from aml_identity.kube.cluster import KubeError
from aml_identity.metrics import CREDENTIAL_EXPIRY
from aml_identity.reconcile import secretstore
from aml_identity.reconcile.credentials import (
    Action,
    Alert,
    Key,
    RotationState,
    Step,
    alert,
    next_step,
    parse_duration,
    remove_key,
    renewal_time,
    validity_window,
)
from aml_identity.reconcile.identity import (
    Owner,
    SpecError,
    desired_federated_credentials,
    plan_federated_credentials,
)
from aml_identity.reconcile.names import (
    application_unique_name,
    owned_by_list,
    ownership_tag_list,
    ownership_tags,
)

KIND = "WorkloadIdentity"
MAX_STEPS = 4  # issue, remove a stray, remove the previous key: never more per pass
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def application_of(resource: WorkloadIdentity, owner: Owner) -> tuple[str, str, list[str], str]:
    sp = resource.spec.service_principal
    assert sp is not None
    unique = application_unique_name(owner.cluster_id, owner.namespace, owner.name, owner.uid)
    tags = ownership_tag_list(
        ownership_tags(owner.cluster_id, KIND, owner.namespace, owner.name, owner.uid)
    )
    notes = (
        f"Managed by aml-identity-operator for WorkloadIdentity {owner.namespace}/{owner.name} "
        f"in cluster {owner.cluster_id}. Changes made here are reverted."
    )
    return unique, sp.display_name, tags, notes


async def reconcile(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    clock: Clock = _now,
    excluded: frozenset[str] = frozenset(),
) -> Outcome:
    """`excluded`: federated credentials a policy denies (not made, removed if present)."""
    graph = deps.graph
    described = application_of(resource, owner)
    unique, display_name, tags, _ = described
    try:
        wanted_fics = desired_federated_credentials(resource.spec, owner, deps.issuer, excluded)
    except SpecError as error:
        return Outcome(Reason.INVALID_SPEC, str(error))
    progress = Progress()
    try:
        app = await graph.get_application(unique)
        if app is not None and not owned_by_list(app.tags, owner.uid):
            message = (
                f"application {app.app_id} has this resource's uniqueName but not its "
                "ownership tags; it was not created by this WorkloadIdentity"
            )
            return Outcome(
                Reason.NOT_OWNED, message, events=[Event("Warning", "NotOwned", message)]
            )
        observe_only = (
            resource.spec.management_policy == ManagementPolicy.OBSERVE or not deps.manage
        )
        if observe_only:
            return _observe(app, display_name, tags)
        app, principal = await _sync_application(
            deps, app, described, wanted_fics, excluded, progress
        )
    except AzureFailure as failure:
        return progress.failed(failure, "writing application " + display_name)
    identity = secretstore.Identity(
        client_id=app.app_id,
        tenant_id=deps.settings.tenant_id,
        authority_host=deps.settings.authority_host,
    )
    status: dict[str, object] = {
        "clientId": app.app_id,
        "principalId": principal.object_id,
        "tenantId": deps.settings.tenant_id,
        "applicationObjectId": app.object_id,
        "federatedCredentials": [f.name for f in wanted_fics],
        "serviceAccounts": [a.name for a in resource.spec.service_accounts],
    }
    credential = (
        resource.spec.service_principal.credential if resource.spec.service_principal else None
    )
    outcome: Outcome | None = None
    if credential is not None:
        outcome = await _rotate(deps, resource, owner, app, identity, progress, clock, status)
    elif resource.status is not None and resource.status.credential is not None:
        try:
            await _drop_credential(deps, resource, owner, app, identity, progress)
        except AzureFailure as failure:
            return progress.failed(failure, "removing the credential no longer in the spec")
        status["credential"] = None
    if outcome is None:
        message = "application, service principal and federated credentials match the spec"
        if credential is not None and credential.client_secret is not None:
            message += "; the credential is a client secret (discouraged: prefer a certificate)"
        outcome = Outcome(Reason.RECONCILED, message)
    outcome.status = {**status, **outcome.status}
    outcome.events = progress.events + outcome.events
    outcome.azure_writes = progress.writes
    return outcome


async def _sync_application(
    deps: Deps,
    app: Application | None,
    described: tuple[str, str, list[str], str],
    wanted_fics: tuple[FederatedCredential, ...],
    excluded: frozenset[str],
    progress: Progress,
) -> tuple[Application, ServicePrincipal]:
    """The application as described (uniqueName, name, tags, notes), its service
    principal, and its federated credentials."""
    graph = deps.graph
    unique, display_name, tags, notes = described
    if app is None or app.display_name != display_name or set(app.tags) != set(tags):
        created = app is None
        app = await graph.upsert_application(unique, display_name, tags, notes)
        progress.writes += 1
        verb = "Created" if created else "Updated"
        progress.note(verb, f"{verb} application {app.app_id} ({display_name})")
    principal = await graph.get_service_principal(app.app_id)
    if principal is None:
        principal = await graph.create_service_principal(app.app_id, tags)
        progress.writes += 1
        progress.note("Created", f"Created service principal {principal.object_id}")
    observed_fics = await graph.list_federated_credentials(app.object_id)
    put, delete = plan_federated_credentials(wanted_fics, observed_fics)
    existing = {f.name for f in observed_fics}
    for fic in put:
        await graph.put_federated_credential(app.object_id, fic, exists=fic.name in existing)
        progress.writes += 1
        progress.note("FederatedCredential", f"Federated {fic.subject} ({fic.name})")
    for name in delete:
        await graph.delete_federated_credential(app.object_id, name)
        progress.writes += 1
        progress.events.append(removed_credential(name, excluded))
    return app, principal


def _observe(app: Application | None, display_name: str, tags: list[str]) -> Outcome:
    if app is None:
        return Outcome(
            Reason.DRIFT_DETECTED,
            "1 change(s) pending; managementPolicy is Observe",
            pending_changes=[f"create application {display_name} and its service principal"],
        )
    if app.display_name == display_name and set(app.tags) == set(tags):
        return Outcome(Reason.RECONCILED, "Azure matches the spec (observe only)")
    return Outcome(
        Reason.DRIFT_DETECTED,
        "1 change(s) pending; managementPolicy is Observe",
        pending_changes=[f"update application {app.app_id}"],
    )


# --- the credential ---


def _store(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    app: Application,
    identity: secretstore.Identity,
) -> Store:
    sp = resource.spec.service_principal
    assert sp is not None
    assert sp.credential is not None
    certificate = sp.credential.certificate
    if certificate is not None and certificate.key_vault is not None:
        vault = certificate.key_vault
        return VaultStore(deps, owner, app, vault.vault_url, vault.certificate_name)
    spec = certificate or sp.credential.client_secret
    assert spec is not None
    name = spec.secret_name or f"{owner.name}-credentials"
    return SecretStore(deps, owner, app, name, identity, certificate=certificate is not None)


def _recorded_store(
    deps: Deps,
    owner: Owner,
    app: Application,
    identity: secretstore.Identity,
    recorded: WorkloadIdentityCredentialStatus,
) -> Store | None:
    """The store the status says the credential was put in (the spec no longer says)."""
    if recorded.vault_url and recorded.certificate_name:
        return VaultStore(deps, owner, app, recorded.vault_url, recorded.certificate_name)
    if recorded.secret_name:
        certificate = recorded.kind == "Certificate"
        return SecretStore(
            deps, owner, app, recorded.secret_name, identity, certificate=certificate
        )
    return None


async def _drop_credential(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    app: Application,
    identity: secretstore.Identity,
    progress: Progress,
) -> None:
    """`credential` was removed from the spec: the keys and secrets the operator issued
    stop working, and the store it wrote them to goes (federation, if any, stays)."""
    assert resource.status is not None
    assert resource.status.credential is not None
    store = _recorded_store(deps, owner, app, identity, resource.status.credential)
    if store is not None:
        removed = await store.delete()
        if removed:
            progress.note("CredentialRemoved", removed)
    removed_keys = await AppKeys(deps, app, list(app.keys)).remove_managed()
    if removed_keys:
        progress.writes += 1
        progress.note("CredentialRemoved", f"Removed {removed_keys} certificate(s) issued before")
    for password in app.passwords:
        if secretstore.is_managed_key(password.display_name):
            await deps.graph.remove_password(app.object_id, password.key_id)
            progress.writes += 1
            progress.note("CredentialRemoved", f"Removed client secret {password.key_id}")


async def _rotate(
    deps: Deps,
    resource: WorkloadIdentity,
    owner: Owner,
    app: Application,
    identity: secretstore.Identity,
    progress: Progress,
    clock: Clock,
    status: dict[str, object],
) -> Outcome | None:
    """Drive the credential towards: one served key, renewed in time, the previous key
    kept for `overlap` after a switch. Returns an outcome only when not Ready."""
    sp = resource.spec.service_principal
    assert sp is not None
    assert sp.credential is not None
    spec = sp.credential.certificate or sp.credential.client_secret
    assert spec is not None
    try:
        duration = parse_duration(spec.duration)
        overlap = parse_duration(spec.overlap)
        # cert-manager's default, from the spec's duration: renew with a third left. (From
        # the certificate's own window it would include the clock-skew backdating.)
        renew_before = parse_duration(spec.renew_before) if spec.renew_before else duration / 3
    except ValueError as error:
        return Outcome(Reason.INVALID_SPEC, str(error))
    store = _store(deps, resource, owner, app, identity)
    now = clock()
    view: View | None = None
    try:
        view = await store.read(now)
        for _ in range(MAX_STEPS):
            active = next((k for k in view.keys if k.key_id == view.active), None)
            if active is not None and active.not_after <= now:
                progress.note(
                    "CredentialExpired",
                    f"{store.kind} {active.key_id} in {store.where} expired at "
                    f"{_iso(active.not_after)} before it was renewed; issuing a new one",
                    warning=True,
                )
            step = next_step(
                RotationState(
                    view.keys, view.active, view.previous, view.switched_at, view.switchable
                ),
                now,
                renew_before=renew_before,
                overlap=overlap,
            )
            if step.action is Action.NOTHING:
                break
            await _take(step, store, view, now, duration, overlap, spec.overlap, progress)
            progress.writes += 1
            view = await store.read(now)  # only after a write: at rest, one read per resync
    except NotOwnedError as error:
        return Outcome(
            Reason.NOT_OWNED, str(error), events=[Event("Warning", "NotOwned", str(error))]
        )
    except AzureFailure as failure:
        return _credential_failure(view, failure, store.kind, now, renew_before)
    except KubeError as error:  # the credential's Secret: refused, or changed meanwhile
        return _credential_failure(view, kube_failure(error), store.kind, now, renew_before)
    except (KeyListError, ValueError) as error:  # never a silent drop of a key in use
        return Outcome(Reason.AZURE_ERROR, f"credential rotation stopped: {error}")
    status["credential"] = _credential_status(store.kind, view, renew_before) | store.location
    _export_expiry(owner, view)
    return None


async def _take(
    step: Step,
    store: Store,
    view: View,
    now: datetime,
    duration: timedelta,
    overlap: timedelta,
    overlap_text: str,
    progress: Progress,
) -> None:
    """One rotation step, as next_step decided it."""
    if step.action is Action.ISSUE:
        not_before, not_after = validity_window(now, duration)
        what = await store.issue(view, now, not_before, not_after)
        rotated = view.active is not None
        progress.note(
            "Rotated" if rotated else "Issued",
            f"Registered {what}, valid until {_iso(not_after)}, and put it in {store.where}"
            + (f"; the previous key stays valid for {overlap_text}" if rotated else ""),
        )
        return
    assert step.key_id is not None
    if step.action is Action.SWITCH:
        await store.switch(view, step.key_id, now)
        progress.note("Switched", f"{store.where} now serves key {step.key_id}")
        return
    remove_key(
        view.keys,
        step.key_id,
        active=view.active,
        previous=view.previous,
        switched_at=view.switched_at,
        now=now,
        overlap=overlap,
    )
    await store.remove(step.key_id)
    if step.key_id == view.previous:
        await store.forget_previous()
    progress.note("KeyRemoved", f"Removed {store.kind} key {step.key_id}: {step.reason}")


def _credential_failure(
    state: View | None,
    failure: AzureFailure,
    kind: str,
    now: datetime,
    renew_before: timedelta | None,
) -> Outcome:
    """A failed rotation; louder (CredentialExpiring/Expired) when expiry is near."""
    # The caller adds what this reconcile did (progress) to the events, once.
    outcome = Outcome.from_failure(failure, f"rotating the {kind.lower()}")
    if state is None:
        return outcome
    active = next((k for k in state.keys if k.key_id == state.active), None)
    if active is None:
        return outcome
    level = alert(
        now,
        active.not_after,
        renewal_time(active.not_before, active.not_after, renew_before),
        renewal_failing=True,
    )
    if level is Alert.NONE:
        return outcome
    reason = Reason.CREDENTIAL_EXPIRED if level is Alert.EXPIRED else Reason.CREDENTIAL_EXPIRING
    message = (
        f"{kind} {active.key_id} {'expired' if level is Alert.EXPIRED else 'expires'} at "
        f"{active.not_after:%Y-%m-%dT%H:%M:%SZ} and renewal is failing: {failure}"
    )
    outcome.reason = reason
    outcome.message = message
    outcome.events.append(Event("Warning", reason.value, message))
    return outcome


def _credential_status(
    kind: str, state: View | None, renew_before: timedelta | None
) -> dict[str, object]:
    status: dict[str, object] = {"kind": kind, "discouraged": kind == "ClientSecret"}
    if state is None:
        return status
    thumbs = state.thumbprints

    def facts(key: Key) -> dict[str, object]:
        return {
            "keyId": key.key_id,
            "thumbprint": thumbs.get(key.key_id) if kind == "Certificate" else None,
            "notBefore": _iso(key.not_before),
            "notAfter": _iso(key.not_after),
            "renewalTime": _iso(renewal_time(key.not_before, key.not_after, renew_before)),
        }

    active = next((k for k in state.keys if k.key_id == state.active), None)
    previous = next((k for k in state.keys if k.key_id == state.previous), None)
    if active is not None:
        status |= facts(active)
    status["previous"] = facts(previous) | {"renewalTime": None} if previous else None
    return status


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _export_expiry(owner: Owner, state: View | None) -> None:
    if state is None:
        return
    for slot, key_id in (("current", state.active), ("previous", state.previous)):
        key = next((k for k in state.keys if k.key_id == key_id), None)
        labels = (owner.namespace, owner.name, slot)
        if key is None:
            with contextlib.suppress(KeyError):
                CREDENTIAL_EXPIRY.remove(*labels)
        else:
            CREDENTIAL_EXPIRY.labels(*labels).set(key.not_after.timestamp())


def forget_expiry(owner: Owner) -> None:
    for slot in ("current", "previous"):
        with contextlib.suppress(KeyError):
            CREDENTIAL_EXPIRY.remove(owner.namespace, owner.name, slot)


async def revoke(
    deps: Deps, resource: WorkloadIdentity, owner: Owner, only: frozenset[str] | None = None
) -> Outcome:
    """No policy allows this service principal (any more): remove its federated
    credentials, certificates and secrets, so nothing can sign in as it. The application
    stays; allowed again, the next reconcile issues a new credential. With `only`, just
    the federated credentials named there."""
    unique, *_ = application_of(resource, owner)
    progress = Progress()
    graph = deps.graph
    try:
        app = await graph.get_application(unique)
        if app is None or not owned_by_list(app.tags, owner.uid):
            return Outcome(Reason.RECONCILED, "no application was created")
        for fic in await graph.list_federated_credentials(app.object_id):
            if only is not None and fic.name not in only:
                continue
            await graph.delete_federated_credential(app.object_id, fic.name)
            progress.writes += 1
            progress.events.append(revoked(f"federated credential {fic.name}"))
        if only is not None:
            return Outcome(
                Reason.RECONCILED, "", events=progress.events, azure_writes=progress.writes
            )
        if app.keys:
            await graph.set_keys(app.object_id, [])
            progress.writes += 1
            progress.events.append(revoked(f"{len(app.keys)} certificate(s)"))
        for password in app.passwords:
            await graph.remove_password(app.object_id, password.key_id)
            progress.writes += 1
            progress.events.append(revoked(f"client secret {password.key_id}"))
    except AzureFailure as failure:
        return progress.failed(failure, "revoking the application's credentials")
    return Outcome(
        Reason.RECONCILED,
        "credentials removed" if progress.writes else "nothing to revoke",
        status={"federatedCredentials": []},
        events=progress.events,
        azure_writes=progress.writes,
    )


async def _cancel_open_request(
    deps: Deps, resource: WorkloadIdentity, owner: Owner, outcome: Outcome
) -> None:
    """Orphan keeps the credential, but a signing request a rotation left open would never
    be merged now: close it (best effort; Orphan never blocks a delete)."""
    sp = resource.spec.service_principal
    if sp is None or sp.credential is None:
        return
    identity = secretstore.Identity(_NO_APP.app_id, deps.settings.tenant_id, "")
    store = _store(deps, resource, owner, _NO_APP, identity)
    with contextlib.suppress(AzureFailure):
        cancelled = await store.cancel()
        if cancelled:
            outcome.events.append(Event("Normal", "Cancelled", cancelled))
            outcome.azure_writes += 1


_NO_APP = Application("", "", "", None, ())


async def delete(deps: Deps, resource: WorkloadIdentity, owner: Owner) -> Outcome:
    """Delete the application (Entra removes its service principal and keys with it) and
    the credential Secret, or leave both with deletionPolicy Orphan."""
    forget_expiry(owner)
    spec = resource.spec
    kept = kept_on_delete(spec.deletion_policy, spec.management_policy, "Azure objects")
    if kept is not None:
        if spec.deletion_policy == "Orphan":
            await _cancel_open_request(deps, resource, owner, kept)
        return kept
    unique, *_ = application_of(resource, owner)
    events: list[Event] = []
    sp = resource.spec.service_principal
    try:
        app = await deps.graph.get_application(unique)
        if app is not None and not owned_by_list(app.tags, owner.uid):
            return Outcome(Reason.DELETING, f"application {app.app_id} is not ours: left in place")
        if sp is not None and sp.credential is not None:
            # The store first: without the application, nothing could be retried.
            placeholder = app or _NO_APP
            identity = secretstore.Identity(placeholder.app_id, deps.settings.tenant_id, "")
            deleted = await _store(deps, resource, owner, placeholder, identity).delete()
            if deleted:
                events.append(Event("Normal", "Deleted", deleted))
        if app is not None:
            await deps.graph.delete_application(app.object_id)
            events.append(
                Event(
                    "Normal",
                    "Deleted",
                    f"Deleted application {app.app_id} and its service principal",
                )
            )
    except AzureFailure as failure:
        outcome = Outcome.from_failure(failure, "deleting the application and its credential")
        outcome.reason = Reason.DELETION_BLOCKED
        return outcome
    return Outcome(
        Reason.DELETING,
        "deleted the application, its service principal and credentials",
        events=events,
        azure_writes=len(events),
    )
