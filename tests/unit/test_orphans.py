"""Orphans, the pure part: what counts as this cluster's, as gone, and the removal order."""

from __future__ import annotations

from aml_identity.api.observed import Application, Identity, RoleAssignment
from aml_identity.reconcile.names import AssignmentOwner, assignment_description, ownership_tags
from aml_identity.reconcile.orphans import counts, find, render

CLUSTER = "c1"
RG = "/subscriptions/s/resourceGroups/rg"
LIVE_UID, GONE_UID, BINDING_UID = (
    "11111111-0000-0000-0000-000000000001",
    "22222222-0000-0000-0000-000000000002",
    "33333333-0000-0000-0000-000000000003",
)


def identity(name: str, uid: str, **extra: str) -> Identity:
    tags = {**ownership_tags(CLUSTER, "WorkloadIdentity", "team", name, uid), **extra}
    return Identity(
        id=f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        name=name,
        location="westeurope",
        tags=tags,
        client_id=f"client-{name}",
        principal_id=f"principal-{name}",
        tenant_id="t",
    )


def assignment(name: str, principal: str, binding_uid: str | None) -> RoleAssignment:
    owner = AssignmentOwner("team", "reader", binding_uid) if binding_uid else None
    return RoleAssignment(
        id=f"{RG}/providers/Microsoft.Authorization/roleAssignments/{name}",
        name=name,
        scope=RG,
        role_definition_id="/providers/Microsoft.Authorization/roleDefinitions/r",
        principal_id=principal,
        principal_type="ServicePrincipal",
        description=assignment_description("hand text", owner) if owner else "by hand",
    )


def test_only_this_clusters_objects_of_gone_resources_are_orphans_grants_first() -> None:
    other_cluster = identity("elsewhere", GONE_UID)
    other_cluster = Identity(
        **{**other_cluster.__dict__, "tags": {**other_cluster.tags, "aml-identity.cluster": "c2"}}
    )
    found = find(
        cluster_id=CLUSTER,
        live={LIVE_UID},
        identities=[
            identity("kept", LIVE_UID),
            identity("left", GONE_UID),
            identity("adopted-then-released", GONE_UID, **{"aml-identity.adoptable-by": "team/x"}),
            other_cluster,
            Identity("id", "untagged", "westeurope", {}, "c", "p", "t"),
        ],
        applications=[
            (
                Application(
                    "app-1",
                    "appid-1",
                    "sp",
                    None,
                    (
                        "aml-identity.managed-by:aml-identity-operator",
                        f"aml-identity.cluster:{CLUSTER}",
                        "aml-identity.kind:WorkloadIdentity",
                        "aml-identity.namespace:team",
                        "aml-identity.name:sp",
                        f"aml-identity.uid:{GONE_UID}",
                    ),
                ),
                "sp-object",
            ),
        ],
        assignments=[
            assignment("a-left", "principal-left", BINDING_UID),  # its binding is gone
            assignment("a-kept", "principal-kept", LIVE_UID),  # a live binding's
            assignment("a-hand", "principal-left", None),  # made by hand: not ours
            assignment("a-other", "someone-elses", BINDING_UID),  # not our principal
            assignment("a-sp", "sp-object", BINDING_UID),  # the orphan application's
        ],
        principals={"principal-kept"},
    )
    assert [(o.kind, o.name) for o in found] == [
        ("RoleAssignment", "a-left"),
        ("RoleAssignment", "a-sp"),
        ("Application", "sp"),
        ("ManagedIdentity", "left"),
    ]
    assert found[0].owner == "MLRoleBinding team/reader"
    assert found[-1].owner == "WorkloadIdentity team/left"
    assert counts(found) == {"RoleAssignment": 2, "Application": 1, "ManagedIdentity": 1}
    assert "was" not in render(found)
    assert render([]) == "no orphans\n"


def test_resources_outside_the_watched_namespaces_are_not_known_to_be_gone() -> None:
    found = find(
        cluster_id=CLUSTER,
        live=set(),
        identities=[identity("left", GONE_UID)],
        applications=[],
        assignments=[],
        principals=set(),
        namespaces={"another-team"},
    )
    assert found == []


def test_a_grant_a_live_binding_records_is_not_an_orphan() -> None:
    found = find(
        cluster_id=CLUSTER,
        live={LIVE_UID},
        identities=[],
        applications=[],
        assignments=[assignment("shared", "principal-kept", BINDING_UID)],
        principals={"principal-kept"},
        recorded={"shared"},
    )
    assert found == []
