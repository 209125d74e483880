"""`aml-identity azure-condition`: the ABAC condition for the operator's own assignment,
from the live MLAccessPolicies (roles resolved to GUIDs in Azure)."""

from __future__ import annotations

import asyncio
import sys

from aml_identity.azure.clients import AzureClients
from aml_identity.azure.errors import AzureFailure
from aml_identity.handlers.guardrails import live_policies
from aml_identity.kube.cluster import Cluster
from aml_identity.reconcile.delegation import delegation_condition, principal_types
from aml_identity.reconcile.names import role_definition_name
from aml_identity.reconcile.policy import glob
from aml_identity.settings import Settings


async def condition(settings: Settings, scope: str | None) -> int:
    cluster = Cluster()
    settings = await settings.with_cluster_id(cluster.kube_system_uid)
    book = await live_policies(cluster, settings)
    where = scope or f"/subscriptions/{settings.subscription_id}"
    azure = AzureClients.build(settings)
    gateway = azure.arm
    guids: set[str] = set()
    problems: list[str] = []
    ml_roles = await cluster.list_cluster_custom("mlroles")
    try:
        for policy in book.policies:
            for rule in policy.spec.roles:
                guids |= {g.lower() for g in rule.role_definition_ids}
                for name in rule.built_in:
                    found = await gateway.role_definition_by_name(where, name)
                    if found is None:
                        problems.append(f"{policy.name}: no role named '{name}' at {where}")
                    else:
                        guids.add(found.name.lower())
                # MLRole rules are patterns: the MLRoles that exist now and match them.
                for live in ml_roles:
                    name = live["metadata"]["name"]
                    if any(glob(pattern, name) for pattern in rule.ml_roles):
                        recorded = (live.get("status") or {}).get("roleDefinitionName")
                        guids.add(str(recorded or role_definition_name(settings.cluster_id, name)))
    except AzureFailure as failure:
        print(f"aml-identity: reading role definitions at {where}: {failure}", file=sys.stderr)
        return 1
    finally:
        await azure.close()
        await cluster.close()
    for problem in problems:
        print(f"aml-identity: {problem}", file=sys.stderr)
    if not guids:
        print("aml-identity: no MLAccessPolicy allows any role", file=sys.stderr)
        return 1
    print(delegation_condition(guids, principal_types(book)))
    return 1 if problems else 0


def run(settings: Settings, scope: str | None) -> int:
    return asyncio.run(condition(settings, scope))
