"""`aml-identity explain-role`: what a role allows and denies, operation by operation.

A role is a handful of patterns (`workspaces/*/read`, minus `workspaces/listKeys/action`);
what "least privilege" means for it shows only once they are resolved against the
operations Azure publishes. The role comes from a manifest (-f: no cluster, no Azure),
an MLRole in the cluster, or Azure (a built-in or custom role by name, GUID or id, read
with the operator's own credentials). Reads only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aml_identity.api.mlrole import MLRole, Permissions
from aml_identity.azure.clients import AzureClients
from aml_identity.azure.errors import AzureFailure
from aml_identity.handlers.plan import manifests
from aml_identity.kube.cluster import UNREACHABLE, Cluster
from aml_identity.reconcile.names import definition_guid
from aml_identity.reconcile.role import Explanation, counts_text
from aml_identity.settings import Settings
from azure_operations import Catalog, catalog

log = logging.getLogger("aml_identity")


@dataclass(frozen=True)
class Role:
    """A role's patterns and where they came from."""

    title: str  # e.g. MLRole ml-monitor ("ML Endpoint Monitor")
    permissions: Permissions

    @classmethod
    def of_ml_role(cls, body: dict[str, Any]) -> Role:
        role = MLRole.model_validate(body)
        title = f'MLRole {body["metadata"]["name"]} ("{role.spec.role_name}")'
        return cls(title, role.spec.permissions)

    def explain(self, known: Catalog) -> Explanation:
        return Explanation.of(self.permissions, known)


def report(role: Role, known: Catalog) -> dict[str, Any]:
    """The explanation as data (`-o json`)."""
    explanation = role.explain(known)
    return {
        "role": role.title,
        "summary": explanation.summary(),
        "actions": explanation.by_resource_type(data=False),
        "dataActions": explanation.by_resource_type(data=True),
        "catalog": {p.namespace: p.published for p in known.providers.values()},
    }


def render(role: Role, known: Catalog) -> str:
    """The explanation for a terminal."""
    data = report(role, known)
    s = data["summary"]
    lines = [
        f"{role.title} allows {s['read'] + s['write'] + s['delete'] + s['action']} operations "
        f"({counts_text(s)}) "
        f"and {s['dataActions']} data operations.",
    ]
    for key, heading in (("actions", "Operations"), ("dataActions", "Data operations")):
        if not data[key]:
            continue
        lines += ["", f"{heading} by resource type:"]
        for resource_type, verbs in data[key].items():
            lines.append(f"  {resource_type}")
            if verbs["allows"]:
                lines.append(f"    allows  {', '.join(verbs['allows'])}")
            if verbs["denies"]:
                lines.append(f"    denies  {', '.join(verbs['denies'])}  (by notActions)")
    if s.get("notResolved"):
        lines += [
            "",
            "Not resolved (they reach providers outside the catalog): "
            + ", ".join(s["notResolved"]),
        ]
    listed = ", ".join(f"{ns} {date}" for ns, date in sorted(data["catalog"].items()))
    lines += ["", f"Resolved against Azure's published operations: {listed}."]
    return "\n".join(lines)


def _from_files(paths: list[Path], name: str | None) -> list[Role]:
    found = [
        Role.of_ml_role(doc)
        for doc in manifests(paths)
        if doc.get("kind") == "MLRole" and name in (None, doc["metadata"]["name"])
    ]
    if not found:
        raise LookupError(f"no MLRole{f' {name}' if name else ''} in {', '.join(map(str, paths))}")
    return found


async def _from_cluster(name: str) -> Role | None:
    """An MLRole of that name, or None, also when there is no cluster to ask (no
    kubeconfig, unreachable, not allowed): then Azure is asked."""
    cluster = Cluster()
    try:
        body = await cluster.get_custom("mlroles", None, name)
    except UNREACHABLE as error:
        log.debug("no MLRole lookup in the cluster: %s", error)
        return None
    finally:
        await cluster.close()
    return Role.of_ml_role(body) if body is not None else None


async def _from_azure(settings: Settings, name: str, scope: str | None) -> Role:
    where = scope or f"/subscriptions/{settings.subscription_id}"
    azure = AzureClients.build(settings)
    try:
        guid = definition_guid(name)
        if _is_guid(guid):
            found = await azure.arm.get_role_definition(where, guid)
        else:
            found = await azure.arm.role_definition_by_name(where, name)
    finally:
        await azure.close()
    if found is None:
        raise LookupError(f"no MLRole and no role definition named '{name}' at {where}")
    kind = "built-in role" if found.role_type == "BuiltInRole" else "custom role"
    permissions = Permissions(
        actions=list(found.actions),
        not_actions=list(found.not_actions),
        data_actions=list(found.data_actions),
        not_data_actions=list(found.not_data_actions),
    )
    return Role(f'{kind} "{found.role_name}" ({found.name})', permissions)


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def run(
    name: str | None,
    files: list[Path],
    scope: str | None,
    output: str,
    settings: Callable[[], Settings | None],
) -> int:
    """Exit code 0, or 1 when the role cannot be found or read."""
    try:
        if files:
            roles = _from_files(files, name)
        else:
            assert name is not None
            in_cluster = asyncio.run(_from_cluster(name))
            if in_cluster is not None:
                roles = [in_cluster]
            else:
                configured = settings()
                if configured is None:
                    return 1
                roles = [asyncio.run(_from_azure(configured, name, scope))]
    except LookupError as error:
        print(f"aml-identity: {error}", file=sys.stderr)
        return 1
    except AzureFailure as error:
        forbidden = error.status == 403 and not scope
        hint = "; --scope names another scope to read role definitions at" if forbidden else ""
        print(f"aml-identity: {error}{hint}", file=sys.stderr)
        return 1
    known = catalog()
    if output == "json":
        answers = [report(r, known) for r in roles]
        print(json.dumps(answers[0] if len(answers) == 1 else answers, indent=2))
    else:
        print("\n\n".join(render(r, known) for r in roles))
    return 0
