"""The one access decision: may this namespace ask the operator for this? Pure, no I/O.

The operator holds Azure rights that no namespace holds, so every request it carries out
for a namespace must be one the namespace may make (the confused-deputy problem; ASO
#3645). The same functions answer at admission (fast feedback) and before every Azure
write (authoritative, and again after a policy changes).

Semantics:
- A namespace may do exactly the union of what the MLAccessPolicies selecting it allow;
  no policy selecting it, nothing allowed.
- A role binding is a set of (role, scope, subject) triples; each triple must be allowed
  by one policy: the policy allows the role at a scope containing the binding's scope,
  and allows the subject. A broader scope is never implied by a narrower rule.
- Privileged roles (Owner, Contributor, User Access Administrator, Role Based Access
  Control Administrator, any role whose actions include * or Microsoft.Authorization
  writes, and custom roles with provider-wide wildcards) need a rule with privileged.
- This cluster's issuer federates only service accounts of the resource's own namespace,
  and a Key Vault URL must be a vault host of the operator's cloud: no policy changes
  that, and Audit does not soften it.
- Audit: when every policy selecting the namespace says Audit, denials are reported,
  not enforced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from aml_identity.api.mlaccesspolicy import (
    Enforcement,
    LabelSelector,
    MLAccessPolicySpec,
    ResourceGroupPattern,
    RoleRule,
    ScopeRule,
)
from aml_identity.api.mlrole import MLRoleSpec
from aml_identity.api.workloadidentity import TOKEN_EXCHANGE_AUDIENCE
from aml_identity.reconcile.credentials import parse_duration
from azure_operations import matches

ML = "Microsoft.MachineLearningServices"
# The built-in roles that can grant access or do anything (GUIDs are the same in every
# tenant and cloud).
PRIVILEGED_BUILT_IN: Mapping[str, str] = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}


# Operations that change who may do what: a role allowing any of them can escalate.
AUTHORIZATION_WRITES = (
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Authorization/roleDefinitions/write",
    "Microsoft.Authorization/denyAssignments/delete",
    "Microsoft.Authorization/elevateAccess/action",
    "Microsoft.Authorization/policyAssignments/write",
    "Microsoft.Authorization/locks/delete",
)


# --- matching helpers ---


@lru_cache(maxsize=4096)
def _glob_re(pattern: str, within_segment: bool) -> re.Pattern[str]:
    star, one = ("[^/]*", "[^/]") if within_segment else (".*", ".")
    parts = []
    for char in pattern:
        parts.append(star if char == "*" else one if char == "?" else re.escape(char))
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE if within_segment else 0)


def glob(pattern: str, text: str) -> bool:
    """A name or ARM segment pattern: * and ? never cross a /; case-insensitive."""
    return bool(_glob_re(pattern, True).match(text))


def subject_glob(pattern: str, text: str) -> bool:
    """A token subject pattern: * matches any run of characters; case-sensitive, as Entra
    compares subjects."""
    return bool(_glob_re(pattern, False).match(text))


def segments(arm_id: str) -> list[str]:
    return [s for s in arm_id.split("/") if s]


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector selects everything."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def normal_issuer(issuer: str) -> str:
    """Issuers compare without a trailing slash and with scheme and host in lower case."""
    parts = urlsplit(issuer.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


# --- privileged roles ---


def authorization_writes(actions: Iterable[str], not_actions: Iterable[str]) -> list[str]:
    """The Microsoft.Authorization writes that `actions` minus `notActions` allow."""
    allowed = list(actions)
    denied = list(not_actions)
    # An exclusion counts only as Azure surely reads it: were `/*/` never to stand for no
    # segment, `roleAssignments/*/write` would not take `roleAssignments/write` back.
    return [
        op
        for op in AUTHORIZATION_WRITES
        if any(matches(a, op) for a in allowed)
        and not any(matches(n, op, empty_segment=False) for n in denied)
    ]


def provider_wide(action: str) -> bool:
    """* or a wildcard over a whole provider that is more than reading (Microsoft.X/*,
    */write, Microsoft.X/*/delete). Reading everything (*/read) is not escalation."""
    parts = action.split("/")
    wide = "*" in parts[0] or (len(parts) > 1 and parts[1] == "*")
    return wide and parts[-1].lower() != "read"


def privileged_reason(
    *,
    guid: str,
    actions: Sequence[str],
    not_actions: Sequence[str],
    custom: bool,
) -> str | None:
    """Why a role is privileged, or None. Custom roles are held to the stricter rule
    that provider-wide wildcards are privileged too."""
    named = PRIVILEGED_BUILT_IN.get(guid.lower())
    if named is not None:
        return f"{named} can grant access or change anything"
    if "*" in actions:
        return "its actions include *"
    writes = authorization_writes(actions, not_actions)
    if writes:
        return f"its actions allow {writes[0]}"
    if custom:
        wide = [a for a in actions if provider_wide(a)]
        if wide:
            return f"its actions include the provider-wide wildcard {wide[0]}"
    return None


def ml_role_privilege(spec: MLRoleSpec, guid: str = "") -> str | None:
    """Why binding this MLRole is privileged: its actions are, or it says so."""
    p = spec.permissions
    why = privileged_reason(guid=guid, actions=p.actions, not_actions=p.not_actions, custom=True)
    if why is None and spec.privileged:
        why = "the MLRole says privileged: true"
    return why


def built_in_privilege(guid: str, name: str) -> tuple[str, str | None]:
    """A role known without Azure, by GUID or else by name: its GUID ("" if neither is a
    privileged built-in) and why it is privileged, or None."""
    named = (g for g, n in PRIVILEGED_BUILT_IN.items() if n.lower() == name.lower())
    key = guid.lower() or next(named, "")
    return key, privileged_reason(guid=key, actions=(), not_actions=(), custom=False)


def ml_role_problem(spec: MLRoleSpec) -> str | None:
    """The MLRole guard: a privileged custom role must say so (spec.privileged)."""
    why = privileged_reason(
        guid="",
        actions=spec.permissions.actions,
        not_actions=spec.permissions.not_actions,
        custom=True,
    )
    if why is None or spec.privileged:
        return None
    return (
        f"MLRole '{spec.role_name}' is privileged ({why}); set spec.privileged: true to "
        "define it anyway (binding it then needs an MLAccessPolicy role rule with "
        "privileged: true)"
    )


# --- the policies a namespace sees ---


@dataclass(frozen=True)
class Policy:
    name: str
    spec: MLAccessPolicySpec


@dataclass(frozen=True)
class PolicySet:
    """The MLAccessPolicies that select one namespace."""

    namespace: str
    policies: tuple[Policy, ...]
    default_subscription: str

    @property
    def enforced(self) -> bool:
        """Denials are enforced unless every selecting policy says Audit (none: enforced)."""
        return not self.policies or any(
            p.spec.enforcement == Enforcement.ENFORCE for p in self.policies
        )

    @property
    def names(self) -> str:
        return ", ".join(p.name for p in self.policies) or "none"

    def none_selects(self) -> str:
        return (
            f"no MLAccessPolicy selects namespace {self.namespace}, so nothing is allowed "
            "(ask a platform admin for one)"
        )


def policies_for(
    namespace: str,
    labels: Mapping[str, str],
    policies: Iterable[Policy],
    default_subscription: str,
) -> PolicySet:
    chosen = tuple(
        sorted(
            (p for p in policies if selects(p.spec.namespace_selector, labels)),
            key=lambda p: p.name,
        )
    )
    return PolicySet(namespace, chosen, default_subscription)


@dataclass(frozen=True)
class Denial:
    """One part of a request no policy allows. `absolute` denials hold even in Audit."""

    part: str
    message: str
    absolute: bool = False


@dataclass(frozen=True)
class Verdict:
    denials: tuple[Denial, ...] = ()
    audit: bool = False  # denials are reported, not enforced (except absolute ones)

    @property
    def allowed(self) -> bool:
        return not self.denials

    @property
    def enforced(self) -> tuple[Denial, ...]:
        """The denials to act on: all of them, or in Audit only the absolute ones."""
        return tuple(d for d in self.denials if d.absolute or not self.audit)

    def denies(self, part: str) -> bool:
        return any(d.part == part for d in self.enforced)

    @property
    def message(self) -> str:
        return "; ".join(d.message for d in self.denials)


def _verdict(policy_set: PolicySet, denials: list[Denial]) -> Verdict:
    return Verdict(tuple(denials), audit=not policy_set.enforced)


# --- scopes ---


def scope_pattern(rule: ScopeRule, default_subscription: str) -> list[str]:
    """The ARM id segments (patterns) a scope rule allows, with everything under them."""

    def sub(value: str | None) -> list[str]:
        return ["subscriptions", value or default_subscription]

    if rule.subscription is not None:
        return sub(rule.subscription)
    if rule.resource_group is not None:
        return [
            *sub(rule.resource_group.subscription_id),
            "resourceGroups",
            rule.resource_group.name,
        ]
    for kind, ml in (("workspaces", rule.workspace), ("registries", rule.registry)):
        if ml is not None:
            return [
                *sub(ml.subscription_id),
                "resourceGroups",
                ml.resource_group,
                "providers",
                ML,
                kind,
                ml.name,
            ]
    assert rule.resource_id_prefix is not None  # the CRD's CEL rule: exactly one form
    return segments(rule.resource_id_prefix)


def within_pattern(arm_id: str, pattern: Sequence[str]) -> bool:
    """`arm_id` is the pattern's scope or under it (segment by segment)."""
    parts = segments(arm_id)
    return len(parts) >= len(pattern) and all(
        glob(p, s) for p, s in zip(pattern, parts, strict=False)
    )


def within_rules(arm_id: str, rules: Iterable[ScopeRule], default_subscription: str) -> bool:
    return any(within_pattern(arm_id, scope_pattern(r, default_subscription)) for r in rules)


def _resource_group_allowed(
    patterns: Iterable[ResourceGroupPattern], subscription: str, group: str, default_sub: str
) -> bool:
    return any(
        glob(p.subscription_id or default_sub, subscription) and glob(p.name, group)
        for p in patterns
    )


# --- role bindings ---


@dataclass(frozen=True)
class RoleFacts:
    """What is known about the role a binding asks for."""

    guid: str
    name: str
    built_in: bool
    ml_role: str | None = None  # the MLRole it came from
    privileged: str | None = None  # why it is privileged, or None


@dataclass(frozen=True)
class SubjectRef:
    """A binding's subject as the spec names it."""

    part: str  # e.g. "subjects[1]"
    workload_identity: str | None = None
    principal_id: str | None = None
    principal_type: str | None = None
    system_assigned_identity_of: str | None = None

    def describe(self) -> str:
        if self.workload_identity is not None:
            return f"WorkloadIdentity {self.workload_identity}"
        if self.principal_id is not None:
            return f"{self.principal_type or 'principal'} {self.principal_id}"
        return f"the system-assigned identity of {self.system_assigned_identity_of}"


def _role_matches(rule: RoleRule, role: RoleFacts) -> bool:
    if role.built_in and any(n.lower() == role.name.lower() for n in rule.built_in):
        return True
    if role.ml_role is not None and any(glob(n, role.ml_role) for n in rule.ml_roles):
        return True
    return any(g.lower() == role.guid.lower() for g in rule.role_definition_ids)


def _subject_allowed(policy: Policy, subject: SubjectRef, default_sub: str) -> bool:
    if subject.workload_identity is not None:
        return True  # the namespace's own identity
    rules = policy.spec.subjects
    if subject.principal_id is not None:
        return any(
            r.principal_id.lower() == subject.principal_id.lower()
            and (r.principal_type is None or r.principal_type == subject.principal_type)
            for r in rules.principal_ids
        )
    resource = subject.system_assigned_identity_of or ""
    return any(
        within_pattern(resource, segments(p)) and len(segments(p)) == len(segments(resource))
        for p in rules.system_assigned_identity_of
    )


def check_binding(
    policy_set: PolicySet, role: RoleFacts, scope: str, subjects: Sequence[SubjectRef]
) -> Verdict:
    """May the namespace grant `role` at `scope` to each of `subjects`?

    A denial with part "role" denies the whole binding; one with a subject's part denies
    that subject only.
    """
    ns = policy_set.namespace
    if not policy_set.policies:
        return _verdict(policy_set, [Denial("role", policy_set.none_selects())])
    if any(s in (".", "..") for s in segments(scope)):
        return _verdict(
            policy_set,
            [Denial("role", f"scope {scope} has . or .. segments", absolute=True)],
        )
    granting: list[Policy] = []
    privileged_refused: list[str] = []
    for policy in policy_set.policies:
        for rule in policy.spec.roles:
            if not _role_matches(rule, role):
                continue
            scopes = rule.scopes or policy.spec.scopes
            if not within_rules(scope, scopes, policy_set.default_subscription):
                continue
            if role.privileged and not rule.privileged:
                privileged_refused.append(policy.name)
                continue
            granting.append(policy)
            break
    if not granting:
        if privileged_refused:
            message = (
                f"namespace {ns} may not bind {role.name}: it is privileged ({role.privileged}) "
                f"and MLAccessPolicy {', '.join(sorted(set(privileged_refused)))} lists it "
                "without privileged: true"
            )
        else:
            message = (
                f"namespace {ns} may not bind {role.name} at {scope}: no MLAccessPolicy "
                f"selecting {ns} allows it (selecting: {policy_set.names})"
            )
        return _verdict(policy_set, [Denial("role", message)])
    denials = [
        Denial(
            s.part,
            f"namespace {ns} may not grant {role.name} to {s.describe()}: no MLAccessPolicy "
            f"selecting {ns} that allows {role.name} at {scope} lists it under spec.subjects",
        )
        for s in subjects
        if not any(_subject_allowed(p, s, policy_set.default_subscription) for p in granting)
    ]
    return _verdict(policy_set, denials)


# --- workload identities ---


@dataclass(frozen=True)
class FederationRef:
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (TOKEN_EXCHANGE_AUDIENCE,)


# The part of an identity a denial of spec.exclusiveGrants names: only the removal of
# undeclared grants is withheld, the identity itself is unaffected.
EXCLUSIVE_GRANTS = "exclusiveGrants"


@dataclass(frozen=True)
class IdentityRequest:
    """What a WorkloadIdentity asks for."""

    namespace: str
    name: str
    # managed identity: (subscription, resource group, location)
    managed_identity: tuple[str, str, str] | None = None
    service_principal: bool = False
    credential_kind: str | None = None  # Certificate | ClientSecret
    credential_duration: str | None = None
    key_vault_url: str | None = None
    federated: tuple[FederationRef, ...] = ()
    adopt: bool = False
    exclusive_grants: bool = False


def key_vault_url_problem(url: str, vault_hosts: Sequence[str]) -> str | None:
    """A vault URL must be https://<a vault host of the configured cloud>/ and nothing
    more: the operator sends its Azure token there."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if (
        parts.scheme != "https"
        or parts.username
        or parts.password
        or parts.query
        or parts.fragment
        or parts.path not in ("", "/")
        or not any(glob(h.lower(), netloc) for h in vault_hosts)
    ):
        return (
            f"keyVault.vaultUrl {url} is not a Key Vault of this cloud: it must be "
            f"https://<vault host>/ with a host matching {', '.join(vault_hosts)}"
        )
    return None


def check_identity(
    policy_set: PolicySet,
    request: IdentityRequest,
    *,
    cluster_issuer: str,
    vault_hosts: Sequence[str],
) -> Verdict:
    """May the namespace create (or adopt) this identity, with this credential and these
    federations? A denial with part "identity" denies the whole identity; one with part
    "federatedCredentials[<name>]" denies that federation only."""
    ns, default_sub = policy_set.namespace, policy_set.default_subscription
    denials: list[Denial] = []
    # Rules no policy can relax come first.
    own_issuer = normal_issuer(cluster_issuer)
    for fed in request.federated:
        if normal_issuer(fed.issuer) == own_issuer:
            sa = fed.subject.removeprefix(f"system:serviceaccount:{ns}:")
            if sa == fed.subject or not sa or ":" in sa:
                denials.append(
                    Denial(
                        f"federatedCredentials[{fed.name}]",
                        f"federated credential {fed.name} trusts this cluster's issuer for "
                        f"{fed.subject}: only service accounts of namespace {ns} may be "
                        "federated (use spec.serviceAccounts)",
                        absolute=True,
                    )
                )
    if request.key_vault_url is not None:
        problem = key_vault_url_problem(request.key_vault_url, vault_hosts)
        if problem:
            denials.append(Denial("identity", problem, absolute=True))
    if not policy_set.policies:
        return _verdict(policy_set, [*denials, Denial("identity", policy_set.none_selects())])
    specs = [p.spec for p in policy_set.policies]
    if request.managed_identity is not None:
        sub, group, location = request.managed_identity
        placed = any(
            glob(r.subscription_id or default_sub, sub)
            and glob(r.resource_group, group)
            and (not r.locations or location.lower() in (x.lower() for x in r.locations))
            for s in specs
            for r in s.identities.managed_identities
        )
        adoptable = any(
            _resource_group_allowed(s.adoption.resource_groups, sub, group, default_sub)
            for s in specs
        )
        if request.adopt and not adoptable:
            denials.append(
                Denial(
                    "identity",
                    f"namespace {ns} may not adopt identities in resource group {group}: no "
                    f"MLAccessPolicy selecting {ns} lists it under spec.adoption",
                )
            )
        elif not placed and not request.adopt:
            denials.append(
                Denial(
                    "identity",
                    f"namespace {ns} may not create managed identities in resource group "
                    f"{group} ({location}, subscription {sub}): no MLAccessPolicy selecting "
                    f"{ns} lists it under spec.identities.managedIdentities",
                )
            )
    if request.service_principal:
        denials += _service_principal_denials(policy_set, request)
    if request.exclusive_grants and not any(s.identities.exclusive_grants for s in specs):
        denials.append(
            Denial(
                EXCLUSIVE_GRANTS,
                f"namespace {ns} may not remove role assignments it did not declare "
                f"(spec.exclusiveGrants): no MLAccessPolicy selecting {ns} sets "
                "spec.identities.exclusiveGrants; undeclared grants are only reported",
                # It deletes grants someone made on purpose: never on an Audit policy's
                # say-so alone.
                absolute=True,
            )
        )
    for fed in request.federated:
        if normal_issuer(fed.issuer) == own_issuer:
            continue
        matching = [
            rule
            for s in specs
            for rule in s.federation
            if normal_issuer(rule.issuer) == normal_issuer(fed.issuer)
            and any(subject_glob(p, fed.subject) for p in rule.subjects)
        ]
        audiences = set(fed.audiences)
        if matching and not any(
            audiences <= set(rule.audiences or (TOKEN_EXCHANGE_AUDIENCE,)) for rule in matching
        ):
            denials.append(
                Denial(
                    f"federatedCredentials[{fed.name}]",
                    f"namespace {ns} may not trust {fed.issuer} for subject {fed.subject} "
                    f"with audience {', '.join(sorted(audiences))}: no MLAccessPolicy selecting "
                    f"{ns} lists that audience for the issuer under spec.federation",
                )
            )
        elif not matching:
            denials.append(
                Denial(
                    f"federatedCredentials[{fed.name}]",
                    f"namespace {ns} may not trust {fed.issuer} for subject {fed.subject}: no "
                    f"MLAccessPolicy selecting {ns} lists that issuer and subject under "
                    "spec.federation",
                )
            )
    return _verdict(policy_set, denials)


def _service_principal_denials(policy_set: PolicySet, request: IdentityRequest) -> list[Denial]:
    ns = policy_set.namespace
    rules = [
        (p.name, p.spec.identities.service_principals)
        for p in policy_set.policies
        if p.spec.identities.service_principals is not None
    ]
    if not rules:
        return [
            Denial(
                "identity",
                f"namespace {ns} may not create service principals: no MLAccessPolicy "
                f"selecting {ns} sets spec.identities.servicePrincipals",
            )
        ]
    kind = request.credential_kind
    if kind is None:
        return []  # federation only
    problems: list[str] = []
    for _, rule in rules:
        assert rule is not None
        if kind not in rule.credential_kinds:
            problems.append(
                "client secrets are denied unless spec.identities.servicePrincipals."
                "credentialKinds lists ClientSecret"
                if kind == "ClientSecret"
                else f"credential kind {kind} is not in credentialKinds"
            )
            continue
        if request.credential_duration is not None and parse_duration(
            request.credential_duration
        ) > parse_duration(rule.max_certificate_duration):
            problems.append(
                f"duration {request.credential_duration} is longer than "
                f"maxCertificateDuration {rule.max_certificate_duration}"
            )
            continue
        if request.key_vault_url is not None and not any(
            subject_glob(v.lower().rstrip("/"), request.key_vault_url.lower().rstrip("/"))
            for v in rule.key_vaults
        ):
            problems.append(
                f"Key Vault {request.key_vault_url} is not listed in "
                "spec.identities.servicePrincipals.keyVaults"
            )
            continue
        return []  # one policy allows all of it
    return [
        Denial(
            "identity",
            f"namespace {ns} may not create this service principal credential: {problems[0]}",
        )
    ]


@dataclass(frozen=True)
class PolicyBook:
    """Every MLAccessPolicy and every namespace's labels, as the operator last saw them."""

    policies: tuple[Policy, ...] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    default_subscription: str = ""

    def labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.namespace_labels.get(namespace)

    def for_namespace(self, namespace: str, labels: Mapping[str, str] | None = None) -> PolicySet:
        found = self.labels(namespace) if labels is None else labels
        return policies_for(namespace, found or {}, self.policies, self.default_subscription)

    def selected_namespaces(self, spec: MLAccessPolicySpec) -> set[str]:
        return {
            ns
            for ns, labels in self.namespace_labels.items()
            if selects(spec.namespace_selector, labels)
        }
