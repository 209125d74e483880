"""WorkloadIdentity (servicePrincipal form): an Entra application owned by the operator,
its service principal, federated credentials, and a certificate or client secret kept
in a Kubernetes Secret and rotated with overlap."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aml_identity.api.common import ManagementPolicy, Reason
from aml_identity.api.observed import Application, KeyCredential, PasswordCredential
from aml_identity.api.workloadidentity import WorkloadIdentity
from aml_identity.azure.errors import AzureFailure
from aml_identity.azure.graph import NewKey
from aml_identity.controllers.outcome import Deps, Event, Outcome
from aml_identity.kube.cluster import StoredSecret
from aml_identity.metrics import CREDENTIAL_EXPIRY
from aml_identity.reconcile import secretstore
from aml_identity.reconcile.credentials import (
    Action,
    Alert,
    Key,
    RotationState,
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
from aml_identity.reconcile.x509 import issue_self_signed, pem_certificate_der, thumbprint

KIND = "WorkloadIdentity"
MAX_STEPS = 4  # issue, remove a stray, remove the previous key: never more per pass
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Progress:
    """What one reconcile did, for events, the status and the write count."""

    events: list[Event] = field(default_factory=list)
    writes: int = 0

    def note(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))


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
    deps: Deps, resource: WorkloadIdentity, owner: Owner, clock: Clock = _now
) -> Outcome:
    graph = deps.graph
    unique, display_name, tags, notes = application_of(resource, owner)
    try:
        wanted_fics = desired_federated_credentials(resource.spec, owner, deps.issuer)
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
        if app is None or app.display_name != display_name or set(app.tags) != set(tags):
            created = app is None
            app = await graph.upsert_application(unique, display_name, tags, notes)
            progress.writes += 1
            progress.note(
                "Created" if created else "Updated",
                f"{'Created' if created else 'Updated'} application {app.app_id} ({display_name})",
            )
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
            progress.note("FederatedCredential", f"Removed federated credential {name}")
    except AzureFailure as failure:
        return _failed(failure, "writing application " + display_name, progress)
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
    if outcome is None:
        message = "application, service principal and federated credentials match the spec"
        if credential is not None and credential.client_secret is not None:
            message += "; the credential is a client secret (discouraged: prefer a certificate)"
        outcome = Outcome(Reason.RECONCILED, message)
    outcome.status = {**status, **outcome.status}
    outcome.events = progress.events + outcome.events
    outcome.azure_writes = progress.writes
    return outcome


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


def _failed(failure: AzureFailure, doing: str, progress: Progress) -> Outcome:
    outcome = Outcome.from_failure(failure, doing)
    outcome.events = progress.events + outcome.events
    outcome.azure_writes = progress.writes
    return outcome


# --- credentials in a Secret ---


@dataclass
class SecretRotation:
    """The facts rotation decides on, read from the application and the Secret."""

    keys: list[Key]  # managed keys registered on the application
    active: str | None
    previous: str | None
    switched_at: datetime | None


def _read_rotation(
    stored: StoredSecret | None,
    managed: list[KeyCredential] | list[PasswordCredential],
    served: str | None,
) -> SecretRotation:
    ids = {c.key_id for c in managed}
    annotations = stored.annotations if stored else {}
    previous = annotations.get(secretstore.PREVIOUS_KEY_ID)
    return SecretRotation(
        keys=[Key(c.key_id, c.not_before, c.not_after) for c in managed],
        active=served if served in ids else None,
        previous=previous if previous in ids else None,
        switched_at=secretstore.parse_time(annotations.get(secretstore.SWITCHED_AT)),
    )


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
    certificate, secret = sp.credential.certificate, sp.credential.client_secret
    spec = certificate or secret
    assert spec is not None
    if certificate is not None and certificate.key_vault is not None:
        return Outcome(
            Reason.INVALID_SPEC,
            "certificate.keyVault is not supported by this version of the operator yet; "
            "use secretName",
        )
    secret_name = spec.secret_name or f"{owner.name}-credentials"
    try:
        duration = parse_duration(spec.duration)
        overlap = parse_duration(spec.overlap)
        # cert-manager's default, from the spec's duration: renew with a third left. (From
        # the certificate's own window it would include the clock-skew backdating.)
        renew_before = parse_duration(spec.renew_before) if spec.renew_before else duration / 3
    except ValueError as error:
        return Outcome(Reason.INVALID_SPEC, str(error))
    stored = await deps.cluster.get_secret(owner.namespace, secret_name)
    if stored is not None and stored.labels.get(secretstore.OWNER_LABEL) != owner.uid:
        message = f"Secret {secret_name} exists and is not managed by this WorkloadIdentity"
        return Outcome(Reason.NOT_OWNED, message, events=[Event("Warning", "NotOwned", message)])
    kind = "Certificate" if certificate is not None else "ClientSecret"
    keys = list(app.keys)
    passwords = list(app.passwords)

    def managed() -> list[KeyCredential] | list[PasswordCredential]:
        if kind == "Certificate":
            return [k for k in keys if secretstore.is_managed_key(k.display_name)]
        return [p for p in passwords if secretstore.is_managed_key(p.display_name)]

    served: str | None = None
    if stored is not None:
        if kind == "Certificate" and "tls.crt" in stored.data:
            served_thumb = thumbprint(pem_certificate_der(stored.data["tls.crt"]))
            served = next((k.key_id for k in keys if k.thumbprint == served_thumb), None)
        elif kind == "ClientSecret" and "AZURE_CLIENT_SECRET" in stored.data:
            served = stored.annotations.get(secretstore.KEY_ID)
    state = _read_rotation(stored, managed(), served)
    now = clock()
    for _ in range(MAX_STEPS):
        active_key = next((k for k in state.keys if k.key_id == state.active), None)
        if active_key is not None and active_key.not_after <= now:
            progress.note(
                "CredentialExpired",
                f"{kind} {active_key.key_id} expired at {active_key.not_after:%Y-%m-%dT%H:%M:%SZ} "
                "before it was renewed; issuing a new one",
                warning=True,
            )
        step = next_step(
            RotationState(
                tuple(state.keys),
                state.active,
                state.previous,
                state.switched_at,
                switchable=frozenset(),
            ),
            now,
            renew_before=renew_before,
            overlap=overlap,
        )
        try:
            if step.action is Action.ISSUE:
                not_before, not_after = validity_window(now, duration)
                label = secretstore.key_display_name(owner.namespace, owner.name, not_after)
                if kind == "Certificate":
                    issued = issue_self_signed(
                        f"aml-identity {owner.namespace}/{owner.name}", not_before, not_after
                    )
                    new_id = str(uuid.uuid4())
                    await deps.graph.set_keys(
                        app.object_id,
                        [_keep(k) for k in keys]
                        + [NewKey(new_id, label, issued.der, not_before, not_after)],
                    )
                    keys.append(
                        KeyCredential(
                            new_id, label, issued.thumbprint, not_before, not_after, issued.der
                        )
                    )
                    data = secretstore.certificate_data(identity, issued.cert_pem, issued.key_pem)
                    what = f"certificate {issued.thumbprint}"
                else:
                    password, text = await deps.graph.add_password(app.object_id, label, not_after)
                    passwords.append(password)
                    new_id = password.key_id
                    data = secretstore.client_secret_data(identity, text)
                    what = f"client secret {password.hint}…"
                progress.writes += 1
                previous = (
                    state.active if active_key is not None and active_key.not_after > now else None
                )
                await deps.cluster.put_secret(
                    owner.namespace,
                    secret_name,
                    data=data,
                    labels={
                        secretstore.OWNER_LABEL: owner.uid,
                        secretstore.MANAGED_BY_LABEL: secretstore.MANAGED_BY,
                    },
                    annotations=secretstore.rotation_annotations(new_id, previous, now),
                    current=stored,
                )
                stored = await deps.cluster.get_secret(owner.namespace, secret_name)
                progress.note(
                    "Rotated" if previous else "Issued",
                    f"Registered {what} (key {new_id}, valid until "
                    f"{not_after:%Y-%m-%dT%H:%M:%SZ}) and wrote it to Secret {secret_name}"
                    + (f"; key {previous} stays valid for {spec.overlap}" if previous else ""),
                )
                state = _read_rotation(stored, managed(), new_id)
            elif step.action is Action.REMOVE:
                assert step.key_id is not None
                remove_key(
                    tuple(state.keys),
                    step.key_id,
                    active=state.active,
                    previous=state.previous,
                    switched_at=state.switched_at,
                    now=now,
                    overlap=overlap,
                )
                if kind == "Certificate":
                    keys = [k for k in keys if k.key_id != step.key_id]
                    await deps.graph.set_keys(app.object_id, [_keep(k) for k in keys])
                else:
                    await deps.graph.remove_password(app.object_id, step.key_id)
                    passwords = [p for p in passwords if p.key_id != step.key_id]
                progress.writes += 1
                progress.note("KeyRemoved", f"Removed {kind} key {step.key_id}: {step.reason}")
                if step.key_id == state.previous and stored is not None:
                    await deps.cluster.annotate_secret(
                        owner.namespace,
                        secret_name,
                        {secretstore.PREVIOUS_KEY_ID: None, secretstore.SWITCHED_AT: None},
                    )
                    stored = await deps.cluster.get_secret(owner.namespace, secret_name)
                state = _read_rotation(stored, managed(), state.active)
            else:
                break
        except AzureFailure as failure:
            return _credential_failure(
                deps, owner, state, failure, kind, now, renew_before, progress
            )
        except ValueError as error:  # remove_key refused: a bug, never a silent drop
            return Outcome(Reason.AZURE_ERROR, f"credential rotation stopped: {error}")
    status["credential"] = _credential_status(kind, state, keys, renew_before)
    _export_expiry(owner, state)
    return None


def _keep(key: KeyCredential) -> NewKey:
    if key.der is None:
        raise AzureFailure(
            retryable=True,
            reason=Reason.AZURE_ERROR,
            delay=60.0,
            status=None,
            code=None,
            message=f"Graph returned key {key.key_id} without its certificate; not rewriting "
            "the key list, which would drop it",
            request_id=None,
        )
    return NewKey(key.key_id, key.display_name, key.der, key.not_before, key.not_after)


def _credential_failure(
    deps: Deps,
    owner: Owner,
    state: SecretRotation,
    failure: AzureFailure,
    kind: str,
    now: datetime,
    renew_before: timedelta | None,
    progress: Progress,
) -> Outcome:
    outcome = _failed(failure, f"rotating the {kind.lower()}", progress)
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
    kind: str, state: SecretRotation, keys: list[KeyCredential], renew_before: timedelta | None
) -> dict[str, object]:
    thumbs = {k.key_id: k.thumbprint for k in keys}

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
    status: dict[str, object] = {"kind": kind, "discouraged": kind == "ClientSecret"}
    if active is not None:
        status |= facts(active)
    status["previous"] = facts(previous) | {"renewalTime": None} if previous else None
    return status


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _export_expiry(owner: Owner, state: SecretRotation) -> None:
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


async def delete(deps: Deps, resource: WorkloadIdentity, owner: Owner) -> Outcome:
    """Delete the application (Entra removes its service principal and keys with it) and
    the credential Secret, or leave both with deletionPolicy Orphan."""
    forget_expiry(owner)
    if resource.spec.deletion_policy == "Orphan":
        return Outcome(Reason.DELETING, "deletionPolicy is Orphan: Azure objects left in place")
    if resource.spec.management_policy == ManagementPolicy.OBSERVE:
        return Outcome(
            Reason.DELETING, "managementPolicy is Observe: nothing was created, nothing to delete"
        )
    unique, *_ = application_of(resource, owner)
    events: list[Event] = []
    try:
        app = await deps.graph.get_application(unique)
        if app is not None:
            if not owned_by_list(app.tags, owner.uid):
                return Outcome(
                    Reason.DELETING, f"application {app.app_id} is not ours: left in place"
                )
            await deps.graph.delete_application(app.object_id)
            events.append(
                Event(
                    "Normal",
                    "Deleted",
                    f"Deleted application {app.app_id} and its service principal",
                )
            )
    except AzureFailure as failure:
        outcome = Outcome.from_failure(failure, "deleting the application")
        outcome.reason = Reason.DELETION_BLOCKED
        return outcome
    sp = resource.spec.service_principal
    spec = (
        sp.credential.certificate or sp.credential.client_secret if sp and sp.credential else None
    )
    if spec is not None:
        secret_name = spec.secret_name or f"{owner.name}-credentials"
        stored = await deps.cluster.get_secret(owner.namespace, secret_name)
        if stored is not None and stored.labels.get(secretstore.OWNER_LABEL) == owner.uid:
            await deps.cluster.delete_secret(owner.namespace, secret_name)
            events.append(Event("Normal", "Deleted", f"Deleted Secret {secret_name}"))
    return Outcome(
        Reason.DELETING,
        "deleted the application, its service principal and credentials",
        events=events,
        azure_writes=1 if events else 0,
    )
