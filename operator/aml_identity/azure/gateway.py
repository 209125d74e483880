"""Thin async adapter over azure-mgmt-msi and azure-mgmt-authorization.

Methods return small frozen dataclasses, never SDK models, so the planners in
aml_identity.reconcile stay free of Azure imports. Every HTTP response is counted by a
pipeline policy (operation, status). Failures are raised as classified AzureFailure.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.mgmt.authorization.aio import AuthorizationManagementClient
from azure.mgmt.msi.aio import ManagedServiceIdentityClient

from aml_identity.api.common import scope_within
from aml_identity.api.observed import FederatedCredential, Identity, RoleAssignment, RoleDefinition
from aml_identity.azure.errors import AzureFailure, call, maybe
from aml_identity.azure.observe import Listings
from aml_identity.azure.pacing import Pacer
from aml_identity.azure.pages import AUTHORIZATION_API_VERSION, MSI_API_VERSION, ArmPages
from aml_identity.azure.transport import ArmPacing, AuditWrites
from aml_identity.locks import KeyedLocks
from aml_identity.metrics import AZURE_REQUESTS
from aml_identity.settings import Settings

_TYPE = re.compile(
    r"/(userAssignedIdentities|federatedIdentityCredentials|roleAssignments|"
    r"roleDefinitions|identities)(/|$)",
    re.I,
)


BUILT_IN_CACHE = 256


class CountRequests(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Counts every HTTP response (retries included) by operation and status."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        path = request.http_request.url.split("?")[0]
        types = _TYPE.findall(path)
        kind = types[-1][0] if types else "other"
        operation = f"{kind}/{request.http_request.method}"
        AZURE_REQUESTS.labels(operation, str(response.http_response.status_code)).inc()


@dataclass
class Gateway:
    """All of the operator's Azure I/O."""

    credential: AsyncTokenCredential
    settings: Settings
    transport: AioHttpTransport
    # One model of ARM's buckets for every client: the limits are per principal.
    pacer: Pacer = field(default_factory=lambda: Pacer(clock=time.monotonic))
    _msi: dict[str, ManagedServiceIdentityClient] = field(default_factory=dict)
    _auth: dict[str, AuthorizationManagementClient] = field(default_factory=dict)
    # Built-in roles by name: the same in every scope of the tenant, and they never change.
    # Bounded: names come from specs (Azure has some hundreds of built-in roles).
    _built_ins: OrderedDict[str, RoleDefinition] = field(default_factory=OrderedDict)
    # Role names by role definition id, for undeclared grants (bounded the same way).
    _role_names: OrderedDict[str, str | None] = field(default_factory=OrderedDict)
    _identity_locks: KeyedLocks = field(default_factory=KeyedLocks)
    # Batched observation (azure/observe.py): identities by resource group, role
    # assignments by scope, and concurrent role-name lookups coalesced.
    _identities: Listings[tuple[str, str], Identity] = field(init=False)
    _assignments: Listings[str, RoleAssignment] = field(init=False)
    # Role assignments at, above and below a scope (the undeclared-grants comparison):
    # one listing of a subscription serves every identity.
    _within: Listings[str, RoleAssignment] = field(init=False)
    _within_refused: dict[str, tuple[float, AzureFailure]] = field(default_factory=dict)
    _role_lookups: Listings[tuple[str, str], RoleDefinition] = field(init=False)
    pages: ArmPages = field(init=False)  # the listings above, read as plain JSON

    def __post_init__(self) -> None:
        # A listing serves for a quarter of the resync period: resyncs of resources
        # created together fall into one window, and drift is still seen within
        # 1.25 periods.
        max_age = self.settings.resync_seconds / 4
        self._identities = Listings(max_age=max_age)
        self._assignments = Listings(max_age=max_age)
        # Undeclared grants are a report, not a drift to correct at once: one listing of
        # the subscription (many pages) per resync period serves them all.
        self._within = Listings(max_age=self.settings.resync_seconds)
        self._role_lookups = Listings(max_age=0)  # coalesced only, never kept
        self.pages = ArmPages(
            self.credential,
            endpoint=self.settings.arm_endpoint,
            scope=self.settings.arm_scope,
            transport=self.transport,
            per_retry_policies=[CountRequests(), ArmPacing(self.pacer)],
        )

    def _options(self) -> dict[str, Any]:
        return {
            "base_url": self.settings.arm_endpoint,
            "credential_scopes": [self.settings.arm_scope],
            "transport": self.transport,
            "per_call_policies": [AuditWrites()],
            # A policy instance per pipeline: azure-core links each one to its successor.
            "per_retry_policies": [CountRequests(), ArmPacing(self.pacer)],
        }

    def msi(self, subscription: str) -> ManagedServiceIdentityClient:
        if subscription not in self._msi:
            self._msi[subscription] = ManagedServiceIdentityClient(
                self.credential, subscription, **self._options()
            )
        return self._msi[subscription]

    def auth(self, subscription: str) -> AuthorizationManagementClient:
        if subscription not in self._auth:
            self._auth[subscription] = AuthorizationManagementClient(
                self.credential, subscription, **self._options()
            )
        return self._auth[subscription]

    async def close(self) -> None:
        await self.pages.close()
        for msi in self._msi.values():
            await msi.close()  # type: ignore[no-untyped-call]
        for auth in self._auth.values():
            await auth.close()  # type: ignore[no-untyped-call]

    def assignment_lock(self, principal_id: str) -> asyncio.Lock:
        """One principal's role assignments are looked at and written by one binding at a
        time: two that share a grant, or hand one over, must not interleave."""
        return self.identity_lock(f"principal:{principal_id}")

    def identity_lock(self, identity_id: str) -> asyncio.Lock:
        """Azure refuses overlapping federated-credential writes to one identity."""
        return self._identity_locks(identity_id.lower())

    # --- user-assigned identities ---

    async def get_identity(self, sub: str, group: str, name: str) -> Identity | None:
        """From the resource group's listing; an identity missing there is read on its
        own, since it may be newer than the listing (a create must never rest on a
        stale "missing": it would overwrite an identity somebody else just made)."""
        key = (sub.lower(), group.lower())
        listed = await self._identities.get(key, lambda: self._list_identities(sub, group))
        found = listed.get(name.lower())
        if found is not None:
            return found
        found = await maybe(
            lambda: self._identity(self.msi(sub).user_assigned_identities.get(group, name))
        )
        if found is not None:
            self._identities.put(key, name, found)
        return found

    async def _list_identities(self, sub: str, group: str) -> dict[str, Identity]:
        path = (
            f"/subscriptions/{quote(sub, safe='')}/resourceGroups/{quote(group, safe='')}"
            "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        )

        async def run() -> dict[str, Identity]:
            items = self.pages.items(path, MSI_API_VERSION)
            return {item["name"].lower(): _identity_json(item) async for item in items}

        return await call(run)

    async def list_identities(self, sub: str, group: str | None = None) -> list[Identity]:
        """Every user-assigned identity in a resource group, or in the subscription
        (`group` None): read fresh, not from the shared listings (for `export`)."""
        path = f"/subscriptions/{quote(sub, safe='')}"
        if group is not None:
            path += f"/resourceGroups/{quote(group, safe='')}"
        path += "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"

        async def run() -> list[Identity]:
            return [_identity_json(item) async for item in self.pages.items(path, MSI_API_VERSION)]

        return await call(run)

    async def create_identity(
        self, sub: str, group: str, name: str, location: str, tags: dict[str, str]
    ) -> Identity:
        body = {"location": location, "tags": tags}
        made = await call(
            lambda: self._identity(
                self.msi(sub).user_assigned_identities.create_or_update(group, name, body)
            )
        )
        self._identities.put((sub.lower(), group.lower()), name, made)
        return made

    async def update_tags(self, sub: str, group: str, name: str, tags: dict[str, str]) -> Identity:
        updated = await call(
            lambda: self._identity(
                self.msi(sub).user_assigned_identities.update(group, name, {"tags": tags})
            )
        )
        self._identities.put((sub.lower(), group.lower()), name, updated)
        return updated

    async def delete_identity(self, sub: str, group: str, name: str) -> None:
        self._identities.drop((sub.lower(), group.lower()), name)
        await call(lambda: self.msi(sub).user_assigned_identities.delete(group, name))

    @staticmethod
    async def _identity(pending: Awaitable[Any]) -> Identity:
        return _identity_of(await pending)

    async def list_federated_credentials(
        self, sub: str, group: str, identity: str
    ) -> list[FederatedCredential]:
        async def run() -> list[FederatedCredential]:
            pages = self.msi(sub).federated_identity_credentials.list(group, identity)
            return [
                FederatedCredential(f.name, f.issuer, f.subject, tuple(f.audiences))
                async for f in pages
            ]

        try:
            return await call(run)
        except AzureFailure as failure:
            if failure.status == 404:  # the identity is gone: the listing is out of date
                self._identities.drop((sub.lower(), group.lower()), identity)
            raise

    async def put_federated_credential(
        self, sub: str, group: str, identity: str, credential: FederatedCredential
    ) -> None:
        body = {
            "issuer": credential.issuer,
            "subject": credential.subject,
            "audiences": list(credential.audiences),
        }
        await call(
            lambda: self.msi(sub).federated_identity_credentials.create_or_update(
                group, identity, credential.name, body
            )
        )

    async def delete_federated_credential(
        self, sub: str, group: str, identity: str, name: str
    ) -> None:
        await call(
            lambda: self.msi(sub).federated_identity_credentials.delete(group, identity, name)
        )

    async def system_assigned_principal(self, resource_id: str) -> str | None:
        sub = resource_id.split("/")[2]

        async def run() -> str:
            identity = await self.msi(sub).system_assigned_identities.get_by_scope(resource_id)
            return str(identity.principal_id)

        return await maybe(run)

    # --- role definitions ---

    async def role_definition_by_name(self, scope: str, role_name: str) -> RoleDefinition | None:
        """Built-in and custom roles by name; built-ins are cached (they never change)."""
        key = (scope.lower(), role_name.lower())
        cached = self._built_ins.get(role_name.lower())
        if cached is not None:
            self._built_ins.move_to_end(role_name.lower())
            return cached
        sub = _subscription(scope, self.settings.subscription_id)
        escaped = role_name.replace("'", "''")

        async def run() -> dict[str, RoleDefinition]:
            pages = self.auth(sub).role_definitions.list(scope, filter=f"roleName eq '{escaped}'")
            return {d.name.lower(): _definition(d) async for d in pages}

        # Bindings created together all ask at once: one read answers them all.
        found = await self._role_lookups.get(key, lambda: call(run))
        if not found:
            return None
        first = next(iter(found.values()))  # the listing's order
        if first.role_type == "BuiltInRole":
            self._built_ins[role_name.lower()] = first
            while len(self._built_ins) > BUILT_IN_CACHE:
                self._built_ins.popitem(last=False)
        return first

    async def role_name(self, role_definition_id: str) -> str | None:
        """The name of the role an assignment grants (for people reading a report), read
        once per role; None when it cannot be read."""
        key = role_definition_id.lower()
        if key in self._role_names:
            self._role_names.move_to_end(key)
            return self._role_names[key]
        marker = "/providers/microsoft.authorization/roledefinitions/"
        at = key.rfind(marker)
        scope = role_definition_id[:at] if at > 0 else ""
        guid = role_definition_id[at + len(marker) :] if at >= 0 else role_definition_id
        try:
            found = await self.get_role_definition(
                scope or f"/subscriptions/{self.settings.subscription_id}", guid
            )
        except AzureFailure as failure:
            if not failure.retryable:  # not readable: not asked again for every look
                self._role_names[key] = None
            return None
        name = found.role_name if found is not None else None
        self._role_names[key] = name
        while len(self._role_names) > BUILT_IN_CACHE:
            self._role_names.popitem(last=False)
        return name

    async def get_role_definition(self, scope: str, guid: str) -> RoleDefinition | None:
        sub = _subscription(scope, self.settings.subscription_id)

        async def run() -> RoleDefinition:
            return _definition(await self.auth(sub).role_definitions.get(scope, guid))

        return await maybe(run)

    async def put_role_definition(
        self, scope: str, guid: str, body: dict[str, Any]
    ) -> RoleDefinition:
        sub = _subscription(scope, self.settings.subscription_id)

        async def run() -> RoleDefinition:
            return _definition(
                await self.auth(sub).role_definitions.create_or_update(scope, guid, body)
            )

        return await call(run)

    async def delete_role_definition(self, scope: str, guid: str) -> None:
        sub = _subscription(scope, self.settings.subscription_id)
        await call(lambda: self.auth(sub).role_definitions.delete(scope, guid))

    # --- role assignments ---

    async def assignments_for(self, scope: str, principal_id: str) -> list[RoleAssignment]:
        """Assignments of one principal exactly at `scope`, from the scope's listing
        (shared by every binding at that scope)."""
        listed = await self.assignments_at(scope)
        return [a for a in listed if a.principal_id.lower() == principal_id.lower()]

    async def assignments_at(self, scope: str) -> list[RoleAssignment]:
        """Every assignment exactly at `scope`, from the scope's shared listing."""
        listed = await self._assignments.get(scope.lower(), lambda: self._list_at(scope))
        return list(listed.values())

    async def assignments_within(self, scope: str) -> list[RoleAssignment]:
        """Every assignment at, above or below `scope`, from a shared listing. A refusal
        that will not pass by itself (no read permission there) is kept as long as a
        listing would be: every identity asking again would read again."""
        key = scope.lower()
        refused = self._within_refused.get(key)
        if refused is not None and time.monotonic() - refused[0] < self._within.max_age:
            raise refused[1]
        try:
            listed = await self._within.get(key, lambda: self._list_within(scope))
        except AzureFailure as failure:
            if not failure.retryable:
                self._within_refused[key] = (time.monotonic(), failure)
            raise
        self._within_refused.pop(key, None)
        return list(listed.values())

    async def _list_within(self, scope: str) -> dict[str, RoleAssignment]:
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments"

        async def run() -> dict[str, RoleAssignment]:
            items = self.pages.items(path, AUTHORIZATION_API_VERSION)
            return {str(i["name"]).lower(): _assignment_json(i) async for i in items}

        return await call(run)

    def _note_within(self, assignment: RoleAssignment | None, name: str) -> None:
        """Keep the listings of wider scopes true to the operator's own writes: a deleted
        assignment still listed would read as a grant nobody declares."""
        for key in self._within.held():
            if assignment is None:
                self._within.drop(key, name)
            elif scope_within(assignment.scope, key):
                self._within.put(key, name, assignment)

    async def _list_at(self, scope: str) -> dict[str, RoleAssignment]:
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments"

        async def run() -> dict[str, RoleAssignment]:
            items = self.pages.items(path, AUTHORIZATION_API_VERSION, **{"$filter": "atScope()"})
            found = [_assignment_json(item) async for item in items]
            return {a.name.lower(): a for a in found if a.scope.lower() == scope.lower()}

        return await call(run)

    async def assignments_of_principal(self, scope: str, principal_id: str) -> list[RoleAssignment]:
        """Every role assignment of one principal at, above or below `scope` (e.g. a
        subscription), read fresh."""
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments"
        escaped = principal_id.replace("'", "''")

        async def run() -> list[RoleAssignment]:
            items = self.pages.items(
                path, AUTHORIZATION_API_VERSION, **{"$filter": f"principalId eq '{escaped}'"}
            )
            return [_assignment_json(item) async for item in items]

        return await call(run)

    async def get_assignment(self, scope: str, name: str) -> RoleAssignment | None:
        sub = _subscription(scope, self.settings.subscription_id)

        async def run() -> RoleAssignment:
            return _assignment(await self.auth(sub).role_assignments.get(scope, name))

        return await maybe(run)

    async def create_assignment(
        self,
        scope: str,
        name: str,
        *,
        role_definition_id: str,
        principal_id: str,
        principal_type: str,
        description: str | None,
        condition: str | None,
    ) -> RoleAssignment:
        sub = _subscription(scope, self.settings.subscription_id)
        body: dict[str, Any] = {
            "role_definition_id": role_definition_id,
            "principal_id": principal_id,
            # Always sent: it is what lets Azure accept a principal it has not replicated yet.
            "principal_type": principal_type,
        }
        if description:
            body["description"] = description
        if condition:
            body["condition"] = condition
            body["condition_version"] = "2.0"

        async def run() -> RoleAssignment:
            return _assignment(await self.auth(sub).role_assignments.create(scope, name, body))

        try:
            made = await call(run)
        except AzureFailure as failure:
            if failure.code == "RoleAssignmentExists":
                self._assignments.forget(scope.lower())  # it did not show the grant
            raise
        self._assignments.put(scope.lower(), name, made)
        self._note_within(made, name)
        return made

    async def delete_assignment(self, scope: str, name: str) -> None:
        sub = _subscription(scope, self.settings.subscription_id)
        self._assignments.drop(scope.lower(), name)
        self._note_within(None, name)
        await call(lambda: self.auth(sub).role_assignments.delete(scope, name))


def _subscription(scope: str, default: str) -> str:
    parts = [p for p in scope.split("/") if p]
    return parts[1] if len(parts) > 1 and parts[0].lower() == "subscriptions" else default


def _identity_of(model: Any) -> Identity:
    """From an SDK model, through its wire form: one mapping for models and listings."""
    return _identity_json(model.serialize(keep_readonly=True))


def _identity_json(item: dict[str, Any]) -> Identity:
    """An identity from its JSON (a listing's item, azure/pages.py, or a model's wire form)."""
    properties = item.get("properties") or {}
    return Identity(
        id=item["id"],
        name=item["name"],
        location=item.get("location", ""),
        tags=dict(item.get("tags") or {}),
        client_id=properties.get("clientId", ""),
        principal_id=properties.get("principalId", ""),
        tenant_id=properties.get("tenantId", ""),
    )


def _assignment_json(item: dict[str, Any]) -> RoleAssignment:
    properties = item.get("properties") or {}
    return RoleAssignment(
        id=item["id"],
        name=item["name"],
        scope=properties.get("scope", ""),
        role_definition_id=properties.get("roleDefinitionId", ""),
        principal_id=properties.get("principalId", ""),
        principal_type=properties.get("principalType", ""),
        condition=properties.get("condition") or None,
        description=properties.get("description") or "",
    )


def _definition(model: Any) -> RoleDefinition:
    permission = model.permissions[0] if model.permissions else None
    return RoleDefinition(
        id=model.id,
        name=model.name,
        role_name=model.role_name,
        role_type=model.role_type,
        description=model.description or "",
        actions=tuple(permission.actions or []) if permission else (),
        not_actions=tuple(permission.not_actions or []) if permission else (),
        data_actions=tuple(permission.data_actions or []) if permission else (),
        not_data_actions=tuple(permission.not_data_actions or []) if permission else (),
        assignable_scopes=tuple(model.assignable_scopes or []),
    )


def _assignment(model: Any) -> RoleAssignment:
    return _assignment_json(model.serialize(keep_readonly=True))
