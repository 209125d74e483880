"""The result of one reconcile, and the dependencies every workflow receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aml_identity.api.common import ManagementPolicy, Reason
from aml_identity.azure.clients import AzureClients
from aml_identity.azure.errors import AzureFailure, kubernetes_failure
from aml_identity.azure.gateway import Gateway
from aml_identity.controllers.holders import Holders
from aml_identity.controllers.waiters import Waiters
from aml_identity.kube.cluster import Cluster, KubeError
from aml_identity.reconcile.grants import GrantScan, Sightings, Snapshot
from aml_identity.reconcile.policy import PolicyBook, PolicySet
from aml_identity.settings import Settings

if TYPE_CHECKING:
    from aml_identity.azure.graph import GraphGateway
    from aml_identity.azure.vault import VaultGateway


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """What a reconcile found and did: the Ready condition's reason and message, status
    fields to write, events to post, and when to try again (None: at the next resync)."""

    reason: Reason
    message: str
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    pending_changes: list[str] = field(default_factory=list)
    azure_writes: int = 0
    # Audit mode: what a policy would deny, reported in the PolicyViolation condition.
    policy_violation: str | None = None
    # A failure the error table calls permanent: retried (slowly) only in case a person
    # fixes it meanwhile; the result metric counts it as failed, not waiting.
    permanent: bool = False
    # A WorkloadIdentity's comparison of its role assignments with the bindings (the
    # UndeclaredGrants condition); None: not compared this time, the condition stays.
    grants: GrantScan | None = None

    @classmethod
    def from_kube_error(cls, error: KubeError, doing: str) -> Outcome:
        return cls.from_failure(kube_failure(error), doing)

    @classmethod
    def from_failure(cls, failure: AzureFailure, doing: str) -> Outcome:
        message = f"{doing}: {failure}"
        return cls(
            reason=failure.reason,
            message=message,
            events=[Event("Warning", failure.reason.value, message)],
            retry_after=failure.delay,
            permanent=not failure.retryable,
        )


@dataclass
class Progress:
    """What one reconcile has done so far (events, Azure writes), kept when a later step
    fails so that nothing done goes unreported."""

    events: list[Event] = field(default_factory=list)
    writes: int = 0

    def note(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def wrote(self, event: Event) -> None:
        """One Azure write, and its event."""
        self.events.append(event)
        self.writes += 1

    def failed(self, failure: AzureFailure, doing: str) -> Outcome:
        """The failure's outcome, after what was done."""
        outcome = Outcome.from_failure(failure, doing)
        outcome.events = self.events + outcome.events
        outcome.azure_writes = self.writes
        return outcome


def kept_on_delete(
    deletion_policy: str | None, management_policy: ManagementPolicy, what: str
) -> Outcome | None:
    """The one rule for a delete that leaves Azure alone: deletionPolicy Orphan, or
    managementPolicy Observe (which never created anything). None: delete."""
    if deletion_policy == "Orphan":
        return Outcome(Reason.DELETING, f"deletionPolicy is Orphan: {what} left in place")
    if management_policy == ManagementPolicy.OBSERVE:
        return Outcome(
            Reason.DELETING, f"managementPolicy is Observe: {what} left in place (none created)"
        )
    return None


def kube_failure(error: KubeError) -> AzureFailure:
    """A Kubernetes API error through the one error table (azure.errors)."""
    return kubernetes_failure(error.status, error.reason, error.message)


@dataclass
class Deps:
    """What workflows need from the outside world; built once at start-up."""

    settings: Settings
    azure: AzureClients
    cluster: Cluster
    issuer: str
    manage: bool = True  # False for `aml-identity plan`: observe only, never write
    # The MLAccessPolicies and namespace labels; the handlers put a fresh view here for
    # every reconcile and admission request (kopf indexes), the plan command reads them.
    policies: PolicyBook = field(default_factory=PolicyBook)
    # False on the resyncs that skip what ARM can only read one object at a time (a
    # managed identity's federated credentials); see Settings.federation_resync_every.
    observe_federation: bool = True
    # Shared by every copy of the Deps: who waits for which dependency to become Ready.
    waiters: Waiters = field(default_factory=Waiters)
    # Shared too: which bindings record which role assignment (handlers/holders.py keeps
    # it from the watch; empty for `plan`).
    assignment_holders: Holders = field(default_factory=Holders)
    # Shared too: when each candidate undeclared grant was first seen (controllers/grants).
    grant_sightings: Sightings = field(default_factory=Sightings)
    # And the MLRoleBindings as last read for it (shared by every identity for a while).
    bindings_seen: Snapshot = field(default_factory=Snapshot)

    @property
    def gateway(self) -> Gateway:
        return self.azure.arm

    @property
    def graph(self) -> GraphGateway:
        return self.azure.graph

    @property
    def vault(self) -> VaultGateway:
        return self.azure.vault

    async def policy_set(self, namespace: str) -> PolicySet:
        """The policies selecting `namespace`; its labels are read when not yet seen."""
        labels = self.policies.labels(namespace)
        if labels is None:
            labels = await self.cluster.namespace_labels(namespace) or {}
        return self.policies.for_namespace(namespace, labels)
