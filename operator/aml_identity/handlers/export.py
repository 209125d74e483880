"""`aml-identity export --scope S --namespace NS [-o DIR]`: manifests for what exists.

Reads Azure with the operator's own credentials (never writes): the user-assigned
identities in the scope (a resource group, a subscription, or for a resource such as a
workspace, the subscription's identities that hold a role there or below), their
federated credentials, every role assignment of their principals in the subscription,
and the custom roles those use. Writes WorkloadIdentities (adopting the identities),
MLRoleBindings and MLRoles (reconcile/exporting.py) to stdout as one YAML stream, or one
file per object into DIR. On stderr: what adoption needs that export cannot do (a policy
allowing it, the owners' consent tags) and what it left out.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from aml_identity.api.common import scope_within
from aml_identity.api.observed import Identity, RoleAssignment, RoleDefinition
from aml_identity.azure.clients import AzureClients
from aml_identity.azure.errors import AzureFailure
from aml_identity.azure.gateway import Gateway
from aml_identity.kube.cluster import UNREACHABLE, Cluster
from aml_identity.reconcile.exporting import (
    Exported,
    ExportScope,
    Found,
    consent_command,
    export,
    operator_managed,
    parse_scope,
)
from aml_identity.reconcile.names import definition_guid
from aml_identity.reconcile.role import MARKER
from aml_identity.settings import Settings

PLURALS = {"WorkloadIdentity": "workloadidentities", "MLRoleBinding": "mlrolebindings",
           "MLRole": "mlroles"}  # fmt: skip

# Reads in flight at once: a few identities' credentials and assignments in parallel,
# far below ARM's read bucket.
CONCURRENCY = 8
POLICY_FILE = "policy.suggested.yaml"


def _say(text: str) -> None:
    print(text, file=sys.stderr)


async def _issuer(settings: Settings) -> str:
    """This cluster's service-account issuer ("" when there is no cluster to ask: then
    every credential is exported as a federatedCredential)."""
    if settings.oidc_issuer:
        return settings.oidc_issuer
    cluster = Cluster()
    try:
        return await cluster.issuer()
    except UNREACHABLE as error:
        _say(
            f"aml-identity: cannot read this cluster's issuer ({error}); no credential is "
            "exported as a serviceAccount (set AML_IDENTITY_OIDC_ISSUER to name it)"
        )
        return ""
    finally:
        await cluster.close()


async def _identities(gateway: Gateway, scope: ExportScope) -> list[Found]:
    if scope.resource_id is None:
        listed = await gateway.list_identities(scope.subscription, scope.resource_group)
    else:
        # A resource: the identities that hold a role there or below it.
        around = await gateway.assignments_within(scope.resource_id)
        holders = {
            a.principal_id.lower() for a in around if scope_within(a.scope, scope.resource_id)
        }
        listed = [
            i
            for i in await gateway.list_identities(scope.subscription)
            if i.principal_id.lower() in holders
        ]
    limit = asyncio.Semaphore(CONCURRENCY)
    # Where the principals' assignments are listed: the whole subscription (at, above and
    # below it); an operator that may not read there falls back to the scope itself.
    where = [f"/subscriptions/{scope.subscription}"]

    async def assignments_of(principal_id: str) -> list[RoleAssignment]:
        try:
            return await gateway.assignments_of_principal(where[0], principal_id)
        except AzureFailure as failure:
            if failure.status != 403 or where[0] == scope.id:
                raise
            _say(
                f"note: cannot read role assignments in {where[0]} ({failure.code}): only "
                f"those at, above and below {scope.id} are exported (the operator's identity "
                "needs Microsoft.Authorization/roleAssignments/read in the subscription, "
                "e.g. Reader, to see the rest)"
            )
            where[0] = scope.id
            return await gateway.assignments_of_principal(where[0], principal_id)

    async def read(identity: Identity) -> Found:
        probe = Found(identity, (), ())
        async with limit:
            credentials = await gateway.list_federated_credentials(
                probe.subscription, probe.resource_group, identity.name
            )
            assignments = await assignments_of(identity.principal_id)
        mine = [a for a in assignments if a.principal_id.lower() == identity.principal_id.lower()]
        # Above the subscription (a management group's): no binding can declare those, and
        # the undeclared-grants comparison does not look there either.
        above = [
            a for a in mine if not scope_within(a.scope, f"/subscriptions/{probe.subscription}")
        ]
        for grant in above:
            _say(f"skipped role assignment {grant.id}: above the subscription")
        inside = [a for a in mine if a not in above]
        return Found(identity, tuple(credentials), tuple(inside))

    kept: list[Identity] = []
    for identity in sorted(listed, key=lambda i: i.id.lower()):
        if operator_managed(identity):
            _say(
                f"skipped {identity.id}: managed by aml-identity-operator "
                f"({identity.tags.get('aml-identity.namespace', '?')}/"
                f"{identity.tags.get('aml-identity.name', '?')})"
            )
        else:
            kept.append(identity)
    if not kept:
        return []
    # The first one alone: it finds out where assignments can be read, once.
    first = await read(kept[0])
    return [first, *await asyncio.gather(*(read(i) for i in kept[1:]))]


async def _definitions(gateway: Gateway, found: list[Found]) -> dict[str, RoleDefinition]:
    wanted: dict[str, str] = {}  # GUID -> a scope the role is assigned at
    for f in found:
        for a in f.assignments:
            wanted.setdefault(definition_guid(a.role_definition_id), a.scope)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def read(guid: str, scope: str) -> RoleDefinition | None:
        async with limit:
            return await gateway.get_role_definition(scope, guid)

    read_all = await asyncio.gather(*(read(g, s) for g, s in wanted.items()))
    usable: dict[str, RoleDefinition] = {}
    for definition in read_all:
        if definition is None:
            continue
        if MARKER in definition.description:
            # An MLRole's already: a second MLRole adopting it would fight the first.
            _say(
                f"note: custom role '{definition.role_name}' belongs to an MLRole "
                "(aml-identity-operator): its grants are exported with role.roleDefinitionId"
            )
            continue
        usable[definition.name.lower()] = definition
    return usable


async def gather(settings: Settings, scope: ExportScope, namespace: str) -> Exported:
    issuer = await _issuer(settings)
    azure = AzureClients.build(settings)
    try:
        found = await _identities(azure.arm, scope)
        definitions = await _definitions(azure.arm, found)
    finally:
        await azure.close()
    return export(
        found,
        definitions,
        namespace=namespace,
        default_subscription=settings.subscription_id,
        issuer=issuer,
    )


def _yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, width=1000)


def _commented(text: str) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in text.splitlines())


def file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def write(exported: Exported, out_dir: Path | None) -> None:
    policy = _yaml([exported.policy])
    if out_dir is None:
        if exported.objects:
            sys.stdout.write(_yaml(exported.objects))
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        for obj in exported.objects:
            (out_dir / file_name(obj)).write_text(_yaml([obj]))
        # Commented out: `kubectl apply -f DIR` must not apply a policy; a platform
        # admin reviews it, uncomments it and applies it.
        (out_dir / POLICY_FILE).write_text(
            "## Suggested MLAccessPolicy for the adoption: a platform admin reviews it,\n"
            "## uncomments it (removes one '# ' from each line) and applies it; export\n"
            "## never applies it, and `kubectl apply -f` this directory skips it.\n"
            + _commented(policy)
        )
        _say(f"wrote {len(exported.objects)} manifest(s) and {POLICY_FILE} to {out_dir}")
    for note in exported.notes:
        _say(f"note: {note}")
    if not exported.objects:
        return
    _say("\nBefore applying, adoption needs:")
    _say(
        "1. An MLAccessPolicy that allows it (applied by a platform admin)"
        + (f"; suggested in {out_dir / POLICY_FILE}:" if out_dir is not None else ":")
    )
    _say(_commented(policy).rstrip("\n"))
    if exported.consents:
        _say("2. Each identity's owner consents, with its tag (export never writes to Azure):")
        for identity_id, consent in exported.consents:
            _say(f"   {consent_command(identity_id, consent)}")
    else:
        _say("2. Every identity already carries its owner's consent tag.")


def _within_spec(exported: Any, live: Any) -> bool:
    """Whether the live spec says what the exported one says (and maybe more: the
    defaults the API server filled in)."""
    if isinstance(exported, dict):
        return isinstance(live, dict) and all(
            _within_spec(value, live.get(key)) for key, value in exported.items()
        )
    if isinstance(exported, list):
        return (
            isinstance(live, list)
            and len(live) == len(exported)
            and all(_within_spec(e, x) for e, x in zip(exported, live, strict=True))
        )
    return bool(exported == live)


async def _existing(exported: Exported, namespace: str) -> list[str]:
    """The exported objects that already exist in the cluster with another spec:
    applying would replace it (another binding's subjects, another MLRole's
    permissions)."""
    cluster = Cluster()
    try:
        found = []
        for obj in exported.objects:
            plural, name = PLURALS[obj["kind"]], obj["metadata"]["name"]
            ns = None if obj["kind"] == "MLRole" else namespace
            live = await cluster.get_custom(plural, ns, name)
            # The same spec (an export made again after applying one) replaces nothing;
            # the live one may carry defaults the export leaves out.
            same = live is not None and _within_spec(obj["spec"], live.get("spec", {}))
            if live is not None and not same:
                found.append(f"{obj['kind']} {f'{ns}/' if ns else ''}{name}")
        return found
    finally:
        await cluster.close()


def run(settings: Settings, scope_text: str, namespace: str, out_dir: Path | None) -> int:
    """Exit code 0, or 1 when the scope is not one or Azure cannot be read."""
    try:
        scope = parse_scope(scope_text, settings.subscription_id)
    except ValueError as error:
        _say(f"aml-identity: {error}")
        return 1
    try:
        exported = asyncio.run(gather(settings, scope, namespace))
    except AzureFailure as error:
        _say(f"aml-identity: reading {scope.id}: {error}")
        if error.status == 403:
            _say(
                "export reads with the credentials in the environment (AZURE_CLIENT_ID, ...). "
                "A workspace or subscription scope lists the subscription's identities, which "
                "needs Microsoft.ManagedIdentity/userAssignedIdentities/read there (e.g. "
                "Reader): the operator's own roles do not give it; run export as a reader"
            )
        return 1
    try:
        existing = asyncio.run(_existing(exported, namespace))
    except UNREACHABLE as error:
        _say(f"note: cannot check the cluster for objects of the same names ({error})")
        existing = []
    if existing:
        _say(
            "aml-identity: these already exist in the cluster, and applying would replace "
            "them: " + ", ".join(existing) + "; export into another namespace, or rename them"
        )
        return 1
    if not exported.objects:
        _say(f"nothing to export in {scope.id}")
    write(exported, out_dir)
    return 0
