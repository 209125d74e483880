"""Plan for a WorkloadIdentity's user-assigned managed identity: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aml_identity.api.common import Reason
from aml_identity.api.observed import FederatedCredential, Identity
from aml_identity.api.workloadidentity import TOKEN_EXCHANGE_AUDIENCE, WorkloadIdentitySpec
from aml_identity.reconcile.names import (
    ADOPTABLE_TAG,
    TAG_PREFIX,
    identity_name,
    owned_by,
    ownership_tags,
    service_account_credential_name,
)

KIND = "WorkloadIdentity"


@dataclass(frozen=True)
class Owner:
    """The custom resource an Azure object belongs to."""

    namespace: str
    name: str
    uid: str
    cluster_id: str


@dataclass(frozen=True)
class DesiredIdentity:
    subscription: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str]
    federated_credentials: tuple[FederatedCredential, ...]


class SpecError(ValueError):
    """The spec cannot be carried out as written (Ready=False, InvalidSpec)."""


def desired_identity(
    spec: WorkloadIdentitySpec,
    owner: Owner,
    *,
    default_subscription: str,
    issuer: str,
    excluded: frozenset[str] = frozenset(),
) -> DesiredIdentity:
    mi = spec.managed_identity
    if mi is None:
        raise SpecError("spec.managedIdentity is required for a managed identity")
    credentials = desired_federated_credentials(spec, owner, issuer, excluded)
    # The aml-identity. prefix is the operator's: a spec cannot set ownership or the
    # owner's adoption consent (that would make a created identity look adopted).
    tags = {
        **{k: v for k, v in mi.tags.items() if not k.startswith(f"{TAG_PREFIX}.")},
        **ownership_tags(owner.cluster_id, KIND, owner.namespace, owner.name, owner.uid),
    }
    return DesiredIdentity(
        subscription=mi.subscription_id or default_subscription,
        resource_group=mi.resource_group,
        name=mi.name or identity_name(owner.namespace, owner.name),
        location=mi.location,
        tags=tags,
        federated_credentials=credentials,
    )


def desired_federated_credentials(
    spec: WorkloadIdentitySpec, owner: Owner, issuer: str, excluded: frozenset[str] = frozenset()
) -> tuple[FederatedCredential, ...]:
    """One credential per service account (issuer: this cluster), then the extra ones,
    less those in `excluded` (federations a policy denies)."""
    credentials = [
        FederatedCredential(
            name=service_account_credential_name(sa.name),
            issuer=issuer,
            subject=f"system:serviceaccount:{owner.namespace}:{sa.name}",
            audiences=(TOKEN_EXCHANGE_AUDIENCE,),
        )
        for sa in spec.service_accounts
    ]
    for extra in spec.federated_credentials:
        if extra.name.startswith("k8s-"):
            raise SpecError(
                f"federatedCredentials[{extra.name}]: the prefix k8s- is reserved for the "
                "credentials of serviceAccounts"
            )
        credentials.append(
            FederatedCredential(extra.name, extra.issuer, extra.subject, tuple(extra.audiences))
        )
    trusts = [(c.issuer, c.subject) for c in credentials]
    if len(set(trusts)) != len(trusts):
        raise SpecError("two federated credentials trust the same issuer and subject")
    return tuple(c for c in credentials if c.name not in excluded)


def plan_federated_credentials(
    desired: tuple[FederatedCredential, ...],
    observed: list[FederatedCredential],
    deletable: frozenset[str] | None = None,
) -> tuple[tuple[FederatedCredential, ...], tuple[str, ...]]:
    """(credentials to put, names to delete): same for identities and applications.
    `deletable` limits deletions to credentials this resource made (an adopted identity's
    own credentials are never touched); None: every credential not desired."""
    current = {c.name: c for c in observed}
    wanted = {c.name: c for c in desired}
    put = tuple(c for name, c in wanted.items() if current.get(name) != c)
    delete = tuple(
        name for name in current if name not in wanted and (deletable is None or name in deletable)
    )
    return put, delete


@dataclass(frozen=True)
class IdentityPlan:
    """What to do in Azure; empty when Azure already matches."""

    blocked: tuple[Reason, str] | None = None
    create: bool = False
    tags: dict[str, str] | None = None
    put_credentials: tuple[FederatedCredential, ...] = ()
    delete_credentials: tuple[str, ...] = ()
    changes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (
            self.create or self.tags is not None or self.put_credentials or self.delete_credentials
        )


def created_by(observed: Identity, owner_uid: str, known_principal: str | None) -> bool:
    """Our tags, or the principal the resource recorded in its status: an identity
    whose tags someone stripped is still the one it created."""
    return owned_by(observed.tags, owner_uid) or (
        known_principal is not None and observed.principal_id == known_principal
    )


def plan_identity(
    desired: DesiredIdentity,
    observed: Identity | None,
    observed_credentials: list[FederatedCredential] | None,
    *,
    owner_uid: str,
    adopt: bool,
    consent: str = "",
    known_principal: str | None = None,
    made_credentials: frozenset[str] = frozenset(),
    adopted: bool = False,
) -> IdentityPlan:
    """`known_principal` is the principal id this resource recorded in its status: an
    identity with that principal is the one it created, even if its tags were stripped.

    Adoption needs two parties: `adopt` (the resource asks and a policy allows it) and the
    identity's own tag aml-identity.adoptable-by=<consent> (its owner agrees). Adopting
    writes nothing by itself: an adopted identity keeps exactly its own tags, plus those
    spec.managedIdentity.tags asks for (the operator's ownership tags are not added), and
    its federated credentials (only those in `made_credentials`, which this resource made,
    are ever removed). It is recognised afterwards by the principal id the resource
    records in its status (`known_principal`) and by the consent tag, which its owner
    keeps.

    `adopted`: this resource adopted the identity before (its status says so): without
    the consent tag now, its owner has withdrawn consent, and nothing more is written.

    `observed_credentials` None: they were not read this time (a resync that skips
    them), so no credential change is planned for an identity that exists."""
    changes: list[str] = []
    create = observed is None
    tags: dict[str, str] | None = None
    deletable: frozenset[str] | None = None
    if observed is not None:
        ours = created_by(observed, owner_uid, known_principal)
        consented = bool(consent) and observed.tags.get(ADOPTABLE_TAG) == consent
        if not ours and not adopt:
            return IdentityPlan(
                blocked=(
                    Reason.NOT_OWNED,
                    f"managed identity {observed.id} exists and was not created by this "
                    "WorkloadIdentity; to take it over, annotate this resource with "
                    f"identity.aml.dev/adopt=true and have its owner tag it "
                    f"{ADOPTABLE_TAG}={consent or '<namespace>/<name>'}",
                )
            )
        if adopted and not consented:
            return IdentityPlan(
                blocked=(
                    Reason.NOT_OWNED,
                    f"the owner of managed identity {observed.id} has withdrawn consent (the "
                    f"tag {ADOPTABLE_TAG} is gone): it is no longer managed; restore the tag "
                    f"{ADOPTABLE_TAG}={consent}, or delete this WorkloadIdentity, which "
                    "releases it",
                )
            )
        if not ours and not consented:
            return IdentityPlan(
                blocked=(
                    Reason.NOT_OWNED,
                    f"managed identity {observed.id} does not consent to adoption: its owner "
                    f"must tag it {ADOPTABLE_TAG}={consent}",
                )
            )
        if ADOPTABLE_TAG in observed.tags:
            # Adopted: the owner's tags stay as they are, with only what the spec asks
            # for added (no ownership tags: adopting an identity that matches the spec
            # writes nothing); their credentials stay.
            asked = {k: v for k, v in desired.tags.items() if not k.startswith(f"{TAG_PREFIX}.")}
            desired = replace(desired, tags={**observed.tags, **asked})
            deletable = made_credentials
        if observed.location.replace(" ", "").lower() != desired.location.lower():
            return IdentityPlan(
                blocked=(
                    Reason.INVALID_SPEC,
                    f"managed identity {observed.id} is in {observed.location}, not "
                    f"{desired.location}; Azure cannot move an identity",
                )
            )
        if observed.tags != desired.tags:
            tags = desired.tags
            changes.append(f"update tags of managed identity {desired.name}")
    elif adopt:
        # Adoption takes over what exists; it never creates (a policy may allow adopting
        # in a resource group where it does not allow creating).
        return IdentityPlan(
            blocked=(
                Reason.NOT_OWNED,
                f"managed identity {desired.name} does not exist in {desired.resource_group}: "
                "there is nothing to adopt (remove the identity.aml.dev/adopt annotation to "
                "create one)",
            )
        )
    else:
        where = f"{desired.resource_group} ({desired.location})"
        changes.append(f"create managed identity {desired.name} in {where}")
    put: tuple[FederatedCredential, ...] = ()
    delete: tuple[str, ...] = ()
    if create or observed_credentials is not None:
        put, delete = plan_federated_credentials(
            desired.federated_credentials, [] if create else observed_credentials or [], deletable
        )
    changes += [f"put federated credential {c.name} ({c.issuer}, {c.subject})" for c in put]
    changes += [f"delete federated credential {name}" for name in delete]
    return IdentityPlan(
        create=create,
        tags=tags,
        put_credentials=put,
        delete_credentials=delete,
        changes=tuple(changes),
    )
