"""`aml-identity export`: what exists in Azure, as manifests that adopt it. Pure, no I/O.

The command (handlers/export.py) reads user-assigned identities, their federated
credentials, their principals' role assignments and the custom roles those use; this
module turns them into WorkloadIdentities (annotated for adoption), MLRoleBindings and
MLRoles written so that adopting them changes nothing in Azure:

- a WorkloadIdentity names its identity exactly (subscription only when it is not the
  operator's), and declares each federated credential as the operator would write it: a
  credential of this cluster's issuer for a service account of the target namespace,
  under the name the operator gives such credentials, as `serviceAccounts`; any other as
  `federatedCredentials` with its name, issuer, subject and audiences. It declares no tags:
  adoption keeps the identity's own tags as they are (reconcile/identity.py).
- assignments of the same role at the same scope under the same condition become one
  MLRoleBinding, whose subjects are the WorkloadIdentities; the binding keeps such an
  assignment as it is (reconcile/binding.py: an assignment someone else made is recorded,
  never rewritten).
- a custom role becomes an MLRole with its name, description, permissions and assignable
  scopes exactly as in Azure (adopted without a write: reconcile/role.py).

What cannot be expressed (a credential under the prefix reserved for service accounts,
one of this cluster's issuer for another namespace, more than one audience) is left out
and said: adoption never touches a credential the resource did not make.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from aml_identity.api import GROUP
from aml_identity.api.common import arm_id_part
from aml_identity.api.observed import FederatedCredential, Identity, RoleAssignment, RoleDefinition
from aml_identity.api.workloadidentity import TOKEN_EXCHANGE_AUDIENCE, FederatedCredentialSpec
from aml_identity.reconcile.names import (
    ADOPT_ANNOTATION,
    ADOPTABLE_TAG,
    MANAGED_BY,
    TAG_PREFIX,
    definition_guid,
    service_account_credential_name,
)
from aml_identity.reconcile.policy import privileged_reason

API_VERSION = f"{GROUP}/v1alpha1"
LABEL_MAX = 63
ML = "microsoft.machinelearningservices"
_SERVICE_ACCOUNT = re.compile(r"^system:serviceaccount:([^:]+):([^:]+)$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


# --- what is exported ------------------------------------------------------------------


@dataclass(frozen=True)
class ExportScope:
    """Where to look: a subscription, a resource group, or a resource (e.g. a workspace)."""

    subscription: str
    resource_group: str | None = None
    resource_id: str | None = None  # set for a resource below a resource group

    @property
    def id(self) -> str:
        if self.resource_id is not None:
            return self.resource_id
        base = f"/subscriptions/{self.subscription}"
        return f"{base}/resourceGroups/{self.resource_group}" if self.resource_group else base


def parse_scope(text: str, default_subscription: str) -> ExportScope:
    """An ARM scope (subscription, resource group or resource id), or a bare resource
    group name in the operator's subscription."""
    text = text.strip().rstrip("/")
    if not text.startswith("/"):
        if not text or "/" in text:
            raise ValueError(f"not a scope or resource group name: {text!r}")
        return ExportScope(default_subscription, text)
    parts = text.split("/")[1:]
    if len(parts) < 2 or parts[0].lower() != "subscriptions" or not parts[1]:
        raise ValueError(f"{text}: a scope starts with /subscriptions/<id>")
    if len(parts) == 2:
        return ExportScope(parts[1])
    if parts[2].lower() != "resourcegroups" or len(parts) < 4 or not parts[3]:
        raise ValueError(
            f"{text}: a scope below a subscription is "
            "/subscriptions/<id>/resourceGroups/<name>[/...]"
        )
    if len(parts) == 4:
        return ExportScope(parts[1], parts[3])
    return ExportScope(parts[1], parts[3], text)


def operator_managed(identity: Identity) -> bool:
    """Created by this operator (any cluster): export leaves those to their resources."""
    return identity.tags.get(f"{TAG_PREFIX}.managed-by") == MANAGED_BY


@dataclass(frozen=True)
class Found:
    """One identity to export, as read from Azure."""

    identity: Identity
    credentials: tuple[FederatedCredential, ...]
    assignments: tuple[RoleAssignment, ...]

    @property
    def subscription(self) -> str:
        return arm_id_part(self.identity.id, "subscriptions")

    @property
    def resource_group(self) -> str:
        return arm_id_part(self.identity.id, "resourceGroups")


@dataclass
class Exported:
    """The manifests, in apply order (MLRoles, WorkloadIdentities, MLRoleBindings), and
    what adopting them needs that export cannot do."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    # (identity id, tag value) for each identity that lacks its owner's consent tag.
    consents: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- names -------------------------------------------------------------------------------


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:6]


def dns_label(text: str, *hash_parts: str) -> str:
    """A DNS-1123 label from any text: lower case, runs of other characters as one '-',
    cut to 63 with a short hash of `hash_parts` (or the text) when longer."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    if len(base) <= LABEL_MAX:
        return base
    suffix = "-" + _short_hash(*(hash_parts or (text,)))
    return base[: LABEL_MAX - len(suffix)].rstrip("-") + suffix


def unique_names(keys: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """A label per key from (text, hash parts...): a label two keys would share gets
    each one's hash appended, so a name does not depend on what else is exported first."""
    labels = {key: dns_label(text, *rest) for key, (text, *rest) in keys.items()}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    names: dict[str, str] = {}
    for key, label in labels.items():
        if counts[label] > 1:
            suffix = "-" + _short_hash(key)
            label = label[: LABEL_MAX - len(suffix)].rstrip("-") + suffix
        names[key] = label
    return names


# --- scopes ------------------------------------------------------------------------------


def scope_form(scope: str, default_subscription: str) -> dict[str, Any]:
    """An MLRoleBinding's spec.scope for an ARM scope, in the most specific form the API
    has: workspace or registry, resource group, else the resource id itself."""
    parts = scope.rstrip("/").split("/")
    lower = [p.lower() for p in parts]
    sub = parts[2] if len(parts) > 2 and lower[1] == "subscriptions" else None
    extra = {"subscriptionId": sub} if sub and sub.lower() != default_subscription.lower() else {}
    if sub and len(parts) == 5 and lower[3] == "resourcegroups":
        return {"resourceGroup": {**extra, "name": parts[4]}}
    if (
        sub
        and len(parts) == 9
        and lower[3] == "resourcegroups"
        and lower[5] == "providers"
        and lower[6] == ML
        and lower[7] in ("workspaces", "registries")
        and re.fullmatch(r"[a-zA-Z0-9][-a-zA-Z0-9_]{2,32}", parts[8])
    ):
        kind = "workspace" if lower[7] == "workspaces" else "registry"
        return {kind: {**extra, "resourceGroup": parts[4], "name": parts[8]}}
    return {"resourceId": scope.rstrip("/")}


def _scope_tail(scope: str) -> str:
    parts = [p for p in scope.rstrip("/").split("/") if p]
    if len(parts) == 2 and parts[0].lower() == "subscriptions":
        return "subscription"
    return parts[-1] if parts else "root"


def _policy_scope(form: dict[str, Any]) -> dict[str, Any] | None:
    """The MLAccessPolicy scope rule that allows exactly a binding's scope."""
    if "resourceId" in form:
        rid = str(form["resourceId"])
        parts = rid.split("/")
        if len(parts) == 3 and parts[1].lower() == "subscriptions":
            return {"subscription": parts[2]}
        return {"resourceIdPrefix": rid} if rid.lower().startswith("/subscriptions/") else None
    return copy.deepcopy(form)


# --- the translation ---------------------------------------------------------------------


def _manifest(kind: str, name: str, namespace: str | None, spec: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if kind != "MLRoleBinding":
        metadata["annotations"] = {ADOPT_ANNOTATION: "true"}
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _service_account(credential: FederatedCredential, namespace: str, issuer: str) -> str | None:
    """The service account a credential federates, when the operator would write it
    exactly so for `serviceAccounts: [{name}]`."""
    found = _SERVICE_ACCOUNT.match(credential.subject)
    if credential.issuer != issuer or found is None or found.group(1) != namespace:
        return None
    account = found.group(2)
    if not _DNS_NAME.match(account) or credential.name != service_account_credential_name(account):
        return None
    return account if credential.audiences == (TOKEN_EXCHANGE_AUDIENCE,) else None


def _federation(
    found: Found, namespace: str, issuer: str, notes: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(serviceAccounts, federatedCredentials) of one identity."""
    accounts: list[dict[str, Any]] = []
    extras: list[dict[str, Any]] = []
    for credential in sorted(found.credentials, key=lambda c: c.name):
        account = _service_account(credential, namespace, issuer)
        if account is not None:
            accounts.append({"name": account})
            continue
        what = f"federated credential {credential.name} of {found.identity.name}"
        why: str | None = None
        if credential.issuer == issuer:
            why = (
                f"this cluster's issuer, subject {credential.subject}: only service accounts "
                f"of {namespace}, under the operator's names for them, can be declared"
            )
        elif credential.name.startswith("k8s-"):
            why = "its name uses the prefix k8s-, reserved for serviceAccounts"
        else:
            entry = {
                "name": credential.name,
                "issuer": credential.issuer,
                "subject": credential.subject,
                "audiences": list(credential.audiences),
            }
            try:
                FederatedCredentialSpec.model_validate(entry)
            except ValidationError as error:
                why = "; ".join(str(e["msg"]) for e in error.errors())
            else:
                extras.append(entry)
        if why is not None:
            notes.append(f"{what} not declared ({why}); adoption leaves it as it is")
    return accounts, extras


def _role_spec(definition: RoleDefinition) -> dict[str, Any]:
    permissions = {
        key: list(values)
        for key, values in (
            ("actions", definition.actions),
            ("notActions", definition.not_actions),
            ("dataActions", definition.data_actions),
            ("notDataActions", definition.not_data_actions),
        )
        if values
    }
    spec: dict[str, Any] = {"roleName": definition.role_name}
    if definition.description.strip():
        spec["description"] = definition.description
    spec["permissions"] = permissions
    spec["assignableScopes"] = list(definition.assignable_scopes)
    why = privileged_reason(
        guid=definition.name,
        actions=definition.actions,
        not_actions=definition.not_actions,
        custom=True,
    )
    if why is not None:
        spec["privileged"] = True
    return spec


@dataclass(frozen=True)
class _Group:
    """Assignments of one role at one scope under one condition."""

    role_guid: str
    scope: str
    condition: str
    role_definition_id: str
    description: str
    subjects: tuple[str, ...]


def export(
    found: Iterable[Found],
    definitions: dict[str, RoleDefinition],
    *,
    namespace: str,
    default_subscription: str,
    issuer: str,
    name: str = "",
) -> Exported:
    """Manifests for `found` in `namespace`. `definitions` maps role definition GUIDs
    (lower case) to their definitions; an assignment of a role not there is exported
    with its roleDefinitionId. `name` names the suggested MLAccessPolicy."""
    out = Exported()
    identities = sorted(found, key=lambda f: f.identity.id.lower())
    wi_names = unique_names({f.identity.id.lower(): (f.identity.name,) for f in identities})
    # Role assignments grouped by role, scope and condition.
    grouped: dict[tuple[str, str, str], list[tuple[str, RoleAssignment]]] = {}
    for f in identities:
        wi = wi_names[f.identity.id.lower()]
        for a in f.assignments:
            key = (
                definition_guid(a.role_definition_id),
                a.scope.lower().rstrip("/"),
                a.condition or "",
            )
            grouped.setdefault(key, []).append((wi, a))
    groups = [
        _Group(
            role_guid=key[0],
            scope=members[0][1].scope.rstrip("/"),
            condition=key[2],
            role_definition_id=members[0][1].role_definition_id,
            description=next((a.description for _, a in members if a.description), ""),
            subjects=tuple(sorted({wi for wi, _ in members})),
        )
        for key, members in sorted(grouped.items())
    ]
    custom = {
        g.role_guid: definitions[g.role_guid]
        for g in groups
        if g.role_guid in definitions and definitions[g.role_guid].role_type != "BuiltInRole"
    }
    role_names = unique_names({guid: (d.role_name, guid) for guid, d in sorted(custom.items())})
    for guid, definition in sorted(custom.items(), key=lambda item: role_names[item[0]]):
        out.objects.append(_manifest("MLRole", role_names[guid], None, _role_spec(definition)))
    for f in identities:
        wi = wi_names[f.identity.id.lower()]
        accounts, extras = _federation(f, namespace, issuer, out.notes)
        mi: dict[str, Any] = {}
        if f.subscription.lower() != default_subscription.lower():
            mi["subscriptionId"] = f.subscription
        mi |= {
            "resourceGroup": f.resource_group,
            "location": f.identity.location.replace(" ", "").lower(),
            "name": f.identity.name,
        }
        spec: dict[str, Any] = {"managedIdentity": mi}
        if accounts:
            spec["serviceAccounts"] = accounts
        if extras:
            spec["federatedCredentials"] = extras
        out.objects.append(_manifest("WorkloadIdentity", wi, namespace, spec))
        consent = f"{namespace}/{wi}"
        if f.identity.tags.get(ADOPTABLE_TAG) != consent:
            out.consents.append((f.identity.id, consent))
    binding_names = unique_names(
        {
            f"{g.role_guid}|{g.scope.lower()}|{g.condition}": (
                f"{_role_label(g, definitions)}-{_scope_tail(g.scope)}",
            )
            for g in groups
        }
    )
    for g in groups:
        spec = {
            "role": _role_ref(g, definitions, role_names),
            "subjects": [{"workloadIdentity": s} for s in g.subjects],
            "scope": scope_form(g.scope, default_subscription),
        }
        if g.condition:
            spec["condition"] = g.condition
        if g.description:
            spec["description"] = g.description
        name_key = f"{g.role_guid}|{g.scope.lower()}|{g.condition}"
        out.objects.append(_manifest("MLRoleBinding", binding_names[name_key], namespace, spec))
        if g.role_guid not in definitions:
            out.notes.append(
                f"role definition {g.role_definition_id} could not be read: "
                f"MLRoleBinding {binding_names[name_key]} names it by id"
            )
    out.policy = suggested_policy(
        namespace,
        name or f"adopt-{namespace}",
        identities,
        out.objects,
        definitions,
        default_subscription,
    )
    return out


def _role_label(group: _Group, definitions: dict[str, RoleDefinition]) -> str:
    found = definitions.get(group.role_guid)
    return found.role_name if found is not None else group.role_guid


def _role_ref(
    group: _Group, definitions: dict[str, RoleDefinition], role_names: dict[str, str]
) -> dict[str, str]:
    found = definitions.get(group.role_guid)
    if found is None:
        return {"roleDefinitionId": group.role_definition_id}
    if found.role_type == "BuiltInRole":
        return {"builtIn": found.role_name}
    return {"mlRole": role_names[group.role_guid]}


def suggested_policy(
    namespace: str,
    name: str,
    identities: list[Found],
    objects: list[dict[str, Any]],
    definitions: dict[str, RoleDefinition],
    default_subscription: str,
) -> dict[str, Any]:
    """An MLAccessPolicy that allows exactly what the manifests ask for: adoption in the
    identities' resource groups, their external federations, and each binding's role at
    its scope. A suggestion for a platform admin to review, never applied by export."""
    groups: dict[tuple[str | None, str], None] = {}
    for f in identities:
        sub = f.subscription if f.subscription.lower() != default_subscription.lower() else None
        groups[(sub, f.resource_group)] = None
    adoption = [
        {**({"subscriptionId": sub} if sub else {}), "name": group}
        for sub, group in sorted(groups, key=lambda k: (k[0] or "", k[1]))
    ]
    federation: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    rules: list[dict[str, Any]] = []
    scopes: list[dict[str, Any]] = []
    for obj in objects:
        asked = obj["spec"]
        for extra in asked.get("federatedCredentials", []):
            audiences = tuple(extra["audiences"])
            key = (extra["issuer"], () if audiences == (TOKEN_EXCHANGE_AUDIENCE,) else audiences)
            subjects = federation.setdefault(key, [])
            if extra["subject"] not in subjects:
                subjects.append(extra["subject"])
        if obj["kind"] != "MLRoleBinding":
            continue
        rule = _policy_scope(asked["scope"])
        if rule is not None and rule not in scopes:
            scopes.append(rule)
        role = asked["role"]
        privileged = _privileged(role, objects, definitions)
        entry: dict[str, Any] = {}
        if "builtIn" in role:
            entry["builtIn"] = [role["builtIn"]]
        elif "mlRole" in role:
            entry["mlRoles"] = [role["mlRole"]]
        else:
            entry["roleDefinitionIds"] = [definition_guid(role["roleDefinitionId"])]
        if rule is not None:
            entry["scopes"] = [copy.deepcopy(rule)]  # no YAML aliases in the output
        if privileged:
            entry["privileged"] = True
        if entry not in rules:
            rules.append(entry)
    spec: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    }
    if scopes:
        spec["scopes"] = scopes
    if rules:
        spec["roles"] = rules
    if federation:
        spec["federation"] = [
            {"issuer": issuer, "subjects": subjects, **({"audiences": list(aud)} if aud else {})}
            for (issuer, aud), subjects in federation.items()
        ]
    spec["adoption"] = {"resourceGroups": adoption}
    return {
        "apiVersion": API_VERSION,
        "kind": "MLAccessPolicy",
        "metadata": {"name": dns_label(name)},
        "spec": spec,
    }


def _privileged(
    role: dict[str, str], objects: list[dict[str, Any]], definitions: dict[str, RoleDefinition]
) -> bool:
    if "mlRole" in role:
        return any(
            o["kind"] == "MLRole"
            and o["metadata"]["name"] == role["mlRole"]
            and o["spec"].get("privileged")
            for o in objects
        )
    guid = definition_guid(role.get("roleDefinitionId", ""))
    for definition in definitions.values():
        if definition.role_type == "BuiltInRole" and definition.role_name == role.get("builtIn"):
            guid = definition.name
    found = definitions.get(guid.lower())
    return found is not None and (
        privileged_reason(
            guid=guid,
            actions=found.actions,
            not_actions=found.not_actions,
            custom=found.role_type != "BuiltInRole",
        )
        is not None
    )


def consent_command(identity_id: str, consent: str) -> str:
    """What the identity's owner runs to consent to its adoption."""
    return (
        f"az tag update --resource-id {identity_id} --operation merge "
        f"--tags {ADOPTABLE_TAG}={consent}"
    )
