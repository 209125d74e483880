"""MLRoleBinding and MLRole against the real control plane and azlocal."""

from __future__ import annotations

import json
import uuid
from typing import Any

from azlocal.server import AzLocal
from localcluster import LocalCluster
from support.azure import admin_credential, authorization_client
from support.operator import (
    OperatorProcess,
    apply,
    events,
    get,
    wait_gone,
    wait_ready,
    wait_reason,
)
from support.poll import wait_until
from support.world import RG_IDENTITIES, RG_ML, SUB, WORKSPACE

MI = {"resourceGroup": RG_IDENTITIES, "location": "westeurope"}
WS = {"workspace": {"resourceGroup": "rg-ml", "name": "ws-prod"}}
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
ROLES = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"


def assignments(azlocal: AzLocal, scope: str, principal: str) -> list[tuple[str, str]]:
    client = authorization_client(azlocal, admin_credential(azlocal))
    return sorted(
        (a.name, a.role_definition_id.rsplit("/", 1)[-1])
        for a in client.role_assignments.list_for_scope(
            scope, filter=f"principalId eq '{principal}'"
        )
        if a.scope.lower() == scope.lower()
    )


def test_binding_lifecycle_is_additive(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(cluster, "WorkloadIdentity", "pipeline", {"managedIdentity": MI}, namespace)
    principal = wait_ready(cluster, "wid", "pipeline", namespace)["status"]["principalId"]
    # An assignment someone else made for the same principal must survive everything.
    admin = authorization_client(azlocal, admin_credential(azlocal))
    unrelated = str(uuid.uuid4())
    admin.role_assignments.create(
        RG_ML,
        unrelated,
        {
            "role_definition_id": ROLES + READER,
            "principal_id": principal,
            "principal_type": "ServicePrincipal",
        },
    )
    apply(
        cluster,
        "MLRoleBinding",
        "scientist",
        {
            "role": {"builtIn": "AzureML Data Scientist"},
            "subjects": [{"workloadIdentity": "pipeline"}],
            "scope": WS,
        },
        namespace,
    )
    obj = wait_ready(cluster, "mlrb", "scientist", namespace)
    assert obj["status"]["roleName"] == "AzureML Data Scientist"
    assert obj["status"]["scope"] == WORKSPACE
    [record] = obj["status"]["assignments"]
    assert record["created"] is True
    assert assignments(azlocal, WORKSPACE, principal) == [(record["name"], DATA_SCIENTIST)]

    # A new role: the new assignment is made, then the old one removed.
    apply(
        cluster,
        "MLRoleBinding",
        "scientist",
        {
            "role": {"builtIn": "Reader"},
            "subjects": [{"workloadIdentity": "pipeline"}],
            "scope": WS,
        },
        namespace,
    )
    obj = wait_ready(cluster, "mlrb", "scientist", namespace)
    [record] = obj["status"]["assignments"]
    assert assignments(azlocal, WORKSPACE, principal) == [(record["name"], READER)]
    log = [
        r
        for r in azlocal.admin("GET", "requests")
        if "roleAssignments/" in r["path"] and r["method"] in ("PUT", "DELETE")
    ]
    assert [r["method"] for r in log[-2:]] == ["PUT", "DELETE"]

    # Deleted out of band: restored at the next resync.
    admin.role_assignments.delete(WORKSPACE, record["name"])
    wait_until(
        lambda: assignments(azlocal, WORKSPACE, principal) == [(record["name"], READER)],
        timeout=30,
        what="the deleted assignment to be restored",
    )

    cluster.kubectl("delete", "mlrb", "scientist", "-n", namespace)
    wait_gone(cluster, "mlrb", "scientist", namespace)
    assert assignments(azlocal, WORKSPACE, principal) == []
    assert [a[0] for a in assignments(azlocal, RG_ML, principal)] == [unrelated]


def test_binding_waits_for_its_workload_identity(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    apply(
        cluster,
        "MLRoleBinding",
        "early",
        {"role": {"builtIn": "Reader"}, "subjects": [{"workloadIdentity": "late"}], "scope": WS},
        namespace,
    )
    found = wait_reason(cluster, "mlrb", "early", "WaitingForDependency", namespace)
    assert found["status"] == "Unknown"
    assert found["message"] == f"WorkloadIdentity late does not exist in {namespace}"
    apply(cluster, "WorkloadIdentity", "late", {"managedIdentity": MI}, namespace)
    wait_ready(cluster, "mlrb", "early", namespace, timeout=60)


def test_unknown_builtin_role_and_missing_system_identity(
    operator: OperatorProcess, cluster: LocalCluster, namespace: str
) -> None:
    apply(
        cluster,
        "MLRoleBinding",
        "typo",
        {
            "role": {"builtIn": "AzureML Data Scientists"},
            "subjects": [
                {"principalId": "6f1b0f43-3d4f-4c6e-9a57-5b0b7f6f2c11", "principalType": "Group"}
            ],
            "scope": WS,
        },
        namespace,
    )
    found = wait_reason(cluster, "mlrb", "typo", "InvalidSpec", namespace)
    assert found["message"] == "there is no built-in role named 'AzureML Data Scientists'"
    cpu = f"{WORKSPACE}/computes/cpu-cluster"
    apply(
        cluster,
        "MLRoleBinding",
        "no-identity",
        {
            "role": {"builtIn": "AzureML Registry User"},
            "subjects": [{"systemAssignedIdentityOf": cpu}],
            "scope": {"registry": {"resourceGroup": "rg-ml", "name": "ml-registry"}},
        },
        namespace,
    )
    found = wait_reason(cluster, "mlrb", "no-identity", "InvalidSpec", namespace)
    assert found["message"] == f"{cpu} has no system-assigned identity"


def test_system_assigned_identity_of_a_compute(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    gpu = f"{WORKSPACE}/computes/gpu-cluster"
    apply(
        cluster,
        "MLRoleBinding",
        "gpu-registry",
        {
            "role": {"builtIn": "AzureML Registry User"},
            "subjects": [{"systemAssignedIdentityOf": gpu}],
            "scope": {"registry": {"resourceGroup": "rg-ml", "name": "ml-registry"}},
        },
        namespace,
    )
    obj = wait_ready(cluster, "mlrb", "gpu-registry", namespace)
    [record] = obj["status"]["assignments"]
    compute = azlocal.ctx.store.get(gpu)
    assert compute is not None
    assert compute.identity is not None
    assert record["principalId"] == compute.identity["principalId"]
    cluster.kubectl("delete", "mlrb", "gpu-registry", "-n", namespace)
    wait_gone(cluster, "mlrb", "gpu-registry", namespace)


def test_custom_role_and_its_assignable_scopes(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    role_name = f"ml-monitor-{namespace}"
    apply(
        cluster,
        "MLRole",
        role_name,
        {
            "roleName": f"ML Endpoint Monitor {namespace}",
            "permissions": {
                "actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"]
            },
            "assignableScopes": [RG_ML],
        },
    )
    role = wait_ready(cluster, "mlroles", role_name)
    guid = role["status"]["roleDefinitionName"]
    client = authorization_client(azlocal, admin_credential(azlocal))
    assert client.role_definitions.get(RG_ML, guid).role_name == f"ML Endpoint Monitor {namespace}"
    apply(cluster, "WorkloadIdentity", "monitor", {"managedIdentity": MI}, namespace)
    apply(
        cluster,
        "MLRoleBinding",
        "monitor",
        {"role": {"mlRole": role_name}, "subjects": [{"workloadIdentity": "monitor"}], "scope": WS},
        namespace,
    )
    wait_ready(cluster, "mlrb", "monitor", namespace)
    apply(
        cluster,
        "MLRoleBinding",
        "too-wide",
        {
            "role": {"mlRole": role_name},
            "subjects": [{"workloadIdentity": "monitor"}],
            "scope": {"resourceGroup": {"name": "rg-ml-identities"}},
        },
        namespace,
    )
    found = wait_reason(cluster, "mlrb", "too-wide", "InvalidSpec", namespace)
    assert "outside the assignable scopes of MLRole" in found["message"]
    # A second MLRole may not take the same role name.
    apply(
        cluster,
        "MLRole",
        f"{role_name}-copy",
        {
            "roleName": f"ML Endpoint Monitor {namespace}",
            "permissions": {"actions": ["*/read"]},
            "assignableScopes": [RG_ML],
        },
    )
    conflict = wait_reason(cluster, "mlroles", f"{role_name}-copy", "Conflict")
    assert "already exists" in conflict["message"]
    cluster.kubectl("delete", "mlroles", f"{role_name}-copy")
    # An assignable scope the operator may not write: Forbidden, with Azure's reason.
    apply(
        cluster,
        "MLRole",
        f"{role_name}-wide",
        {
            "roleName": f"Wide Reader {namespace}",
            "permissions": {"actions": ["*/read"]},
            "assignableScopes": [f"/subscriptions/{SUB}"],
        },
    )
    forbidden = wait_reason(cluster, "mlroles", f"{role_name}-wide", "Forbidden")
    assert "Microsoft.Authorization/roleDefinitions/" in forbidden["message"]
    cluster.kubectl("delete", "mlroles", f"{role_name}-wide")
    cluster.kubectl("delete", "mlrb", "monitor", "too-wide", "-n", namespace)
    wait_gone(cluster, "mlrb", "monitor", namespace)
    cluster.kubectl("delete", "mlroles", role_name, "--wait=false")
    wait_gone(cluster, "mlroles", role_name)
    assert get(cluster, "mlroles", role_name) is None


def test_recreated_identity_moves_its_bindings_to_the_new_principal(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    from support.azure import msi_client

    apply(
        cluster,
        "WorkloadIdentity",
        "phoenix",
        {"managedIdentity": {**MI, "tags": {"a": "1"}}},
        namespace,
    )
    old = wait_ready(cluster, "wid", "phoenix", namespace)["status"]["principalId"]
    apply(
        cluster,
        "MLRoleBinding",
        "phoenix",
        {"role": {"builtIn": "Reader"}, "subjects": [{"workloadIdentity": "phoenix"}], "scope": WS},
        namespace,
    )
    wait_ready(cluster, "mlrb", "phoenix", namespace)
    msi = msi_client(azlocal, admin_credential(azlocal))
    # Changed out of band: tags restored at the next resync.
    msi.user_assigned_identities.update(
        RG_IDENTITIES, f"{namespace}-phoenix", {"tags": {"a": "tampered"}}
    )
    wait_until(
        lambda: (
            msi.user_assigned_identities.get(RG_IDENTITIES, f"{namespace}-phoenix").tags.get("a")
            == "1"
        ),
        timeout=30,
        what="the tags to be restored",
    )
    # Deleted out of band: recreated with a new principal, and the binding follows it.
    msi.user_assigned_identities.delete(RG_IDENTITIES, f"{namespace}-phoenix")

    def moved() -> bool:
        wid = get(cluster, "wid", "phoenix", namespace) or {}
        new = wid.get("status", {}).get("principalId")
        if not new or new == old:
            return False
        return (
            assignments(azlocal, WORKSPACE, new) != []
            and assignments(azlocal, WORKSPACE, old) == []
        )

    wait_until(moved, timeout=60, what="the binding to follow the recreated identity")
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "was missing in Azure and was created again" in events


def _no_write(action: str) -> str:
    return f"(!(ActionMatches{{'Microsoft.MachineLearningServices/workspaces/{action}'}}))"


def test_the_abac_condition_is_reconciled_and_never_adopted_when_it_differs(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    admin = authorization_client(azlocal, admin_credential(azlocal))
    apply(cluster, "WorkloadIdentity", "conditioned", {"managedIdentity": MI}, namespace)
    principal = wait_ready(cluster, "wid", "conditioned", namespace)["status"]["principalId"]
    spec = {
        "role": {"builtIn": "Reader"},
        "subjects": [{"workloadIdentity": "conditioned"}],
        "scope": WS,
    }
    apply(cluster, "MLRoleBinding", "conditioned", spec, namespace)
    [record] = wait_ready(cluster, "mlrb", "conditioned", namespace)["status"]["assignments"]
    assert admin.role_assignments.get(WORKSPACE, record["name"]).condition is None

    def condition_in_azure() -> str | None:
        return admin.role_assignments.get(WORKSPACE, record["name"]).condition  # type: ignore[no-any-return]

    # A condition added, then tightened, then removed: the same assignment rewritten.
    for condition in (_no_write("write"), f"{_no_write('write')} AND {_no_write('delete')}", None):
        apply(cluster, "MLRoleBinding", "conditioned", {**spec, "condition": condition}, namespace)
        wait_until(
            lambda c=condition: condition_in_azure() == c,  # type: ignore[misc]
            timeout=30,
            what=f"the assignment's condition to become {condition!r}",
        )
        obj = wait_ready(cluster, "mlrb", "conditioned", namespace)
        assert [a["name"] for a in obj["status"]["assignments"]] == [record["name"]]
    assert assignments(azlocal, WORKSPACE, principal) == [(record["name"], READER)]
    wait_until(  # events are posted after the status
        lambda: any(e[1] == "ConditionUpdated" for e in events(cluster, namespace, "conditioned")),
        timeout=30,
        what="a ConditionUpdated event",
    )

    # Someone else's grant of the same role under another condition: not adopted, not
    # changed, reported.
    apply(cluster, "WorkloadIdentity", "theirs", {"managedIdentity": MI}, namespace)
    other = wait_ready(cluster, "wid", "theirs", namespace)["status"]["principalId"]
    foreign = str(uuid.uuid4())
    admin.role_assignments.create(
        WORKSPACE,
        foreign,
        {
            "role_definition_id": ROLES + READER,
            "principal_id": other,
            "principal_type": "ServicePrincipal",
            "condition": _no_write("delete"),
            "condition_version": "2.0",
        },
    )
    apply(
        cluster,
        "MLRoleBinding",
        "theirs",
        {**spec, "subjects": [{"workloadIdentity": "theirs"}]},
        namespace,
    )
    found = wait_reason(cluster, "mlrb", "theirs", "Conflict", namespace)
    assert found["status"] == "False"
    assert foreign in found["message"]
    assert "differs from the spec's" in found["message"]
    assert assignments(azlocal, WORKSPACE, other) == [(foreign, READER)]
    assert admin.role_assignments.get(WORKSPACE, foreign).condition == _no_write("delete")
    cluster.kubectl("delete", "mlrb", "theirs", "-n", namespace)
    wait_gone(cluster, "mlrb", "theirs", namespace)
    assert assignments(azlocal, WORKSPACE, other) == [(foreign, READER)], "never ours to delete"


def test_a_removed_subject_loses_the_role_while_a_new_one_is_still_missing(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    apply(cluster, "WorkloadIdentity", "leaving", {"managedIdentity": MI}, namespace)
    principal = wait_ready(cluster, "wid", "leaving", namespace)["status"]["principalId"]
    spec = {"role": {"builtIn": "Reader"}, "subjects": [{"workloadIdentity": "leaving"}]}
    apply(cluster, "MLRoleBinding", "handover", {**spec, "scope": WS}, namespace)
    [record] = wait_ready(cluster, "mlrb", "handover", namespace)["status"]["assignments"]
    assert assignments(azlocal, WORKSPACE, principal) == [(record["name"], READER)]

    # The subject is replaced by one that does not exist yet: the binding waits for it,
    # but the subject that left loses the role now.
    replaced = {**spec, "subjects": [{"workloadIdentity": "arriving"}], "scope": WS}
    apply(cluster, "MLRoleBinding", "handover", replaced, namespace)
    wait_reason(cluster, "mlrb", "handover", "WaitingForDependency", namespace)
    wait_until(
        lambda: assignments(azlocal, WORKSPACE, principal) == [],
        timeout=30,
        what="the removed subject's assignment to be deleted",
    )

    def recorded() -> list[Any] | None:
        found = get(cluster, "mlrb", "handover", namespace)
        return None if found is None else found["status"].get("assignments")

    wait_until(
        lambda: recorded() == [],
        timeout=30,
        what="the binding's status to forget the removed assignment",
    )
    wait_until(  # events are posted after the status
        lambda: any(
            e[1] == "Unassigned" and "workloadIdentity leaving is no longer a subject" in e[2]
            for e in events(cluster, namespace, "handover")
        ),
        timeout=30,
        what="an Unassigned event naming the subject that left",
    )


def test_a_custom_role_whose_status_was_lost_is_still_deleted(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """As after a crash between writing the role and recording it, or a restore from a
    backup without status: the delete finds the role by the name it derives."""
    role_name = f"ml-lost-{namespace}"
    apply(
        cluster,
        "MLRole",
        role_name,
        {
            "roleName": f"ML Lost Status {namespace}",
            "permissions": {
                "actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"]
            },
            "assignableScopes": [RG_ML],
        },
    )
    guid = wait_ready(cluster, "mlroles", role_name)["status"]["roleDefinitionName"]
    client = authorization_client(azlocal, admin_credential(azlocal))
    assert client.role_definitions.get(RG_ML, guid).role_name == f"ML Lost Status {namespace}"
    cluster.kubectl(
        "patch", "mlroles", role_name, "--subresource=status", "--type=json",
        "-p", '[{"op": "remove", "path": "/status/roleDefinitionName"}]',
    )  # fmt: skip
    cluster.kubectl("delete", "mlroles", role_name, "--wait=false")
    wait_gone(cluster, "mlroles", role_name)
    left = [d.name for d in client.role_definitions.list(RG_ML, filter="type eq 'CustomRole'")]
    assert guid not in left, "the custom role leaked"


def test_two_bindings_share_one_assignment_and_the_one_that_stays_keeps_it(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """Azure allows one assignment per scope, role and principal: two bindings that grant
    the same one share it. Deleting the first hands it over; access never lapses."""
    admin = authorization_client(azlocal, admin_credential(azlocal))
    apply(cluster, "WorkloadIdentity", "shared", {"managedIdentity": MI}, namespace)
    principal = wait_ready(cluster, "wid", "shared", namespace)["status"]["principalId"]
    spec = {
        "role": {"builtIn": "Reader"},
        "subjects": [{"workloadIdentity": "shared"}],
        "scope": WS,
    }
    apply(cluster, "MLRoleBinding", "first", {**spec, "description": "monitoring"}, namespace)
    [record] = wait_ready(cluster, "mlrb", "first", namespace)["status"]["assignments"]
    first_uid = get(cluster, "mlrb", "first", namespace)["metadata"]["uid"]  # type: ignore[index]
    made = admin.role_assignments.get(WORKSPACE, record["name"])
    assert made.description.startswith("monitoring [aml-identity-operator: MLRoleBinding ")
    assert f"{namespace}/first uid={first_uid}]" in made.description

    apply(cluster, "MLRoleBinding", "second", spec, namespace)
    second = wait_ready(cluster, "mlrb", "second", namespace)
    [shared] = second["status"]["assignments"]
    assert (shared["name"], shared["created"], shared["ownedBy"]) == (
        record["name"],
        False,
        f"{namespace}/first",
    )
    ready = next(c for c in second["status"]["conditions"] if c["type"] == "Ready")
    assert (
        f"shares role assignment {record['name']} of MLRoleBinding {namespace}/first"
        in (ready["message"])
    )
    wait_until(
        lambda: any(e[1] == "Shared" for e in events(cluster, namespace, "second")),
        timeout=30,
        what="a Shared event",
    )

    # The first goes: the assignment stays (never deleted in between) and is the second's.
    deletes_before = _assignment_deletes(azlocal)
    cluster.kubectl("delete", "mlrb", "first", "-n", namespace)
    wait_gone(cluster, "mlrb", "first", namespace)
    assert _assignment_deletes(azlocal) == deletes_before, "the shared grant was deleted"
    assert assignments(azlocal, WORKSPACE, principal) == [(record["name"], READER)]
    second_uid = second["metadata"]["uid"]
    wait_until(
        lambda: (
            f"{namespace}/second uid={second_uid}]"
            in admin.role_assignments.get(WORKSPACE, record["name"]).description
        ),
        timeout=30,
        what="the assignment's description to name the second binding",
    )

    def second_record() -> dict[str, Any]:
        found = get(cluster, "mlrb", "second", namespace)
        assert found is not None
        return found["status"]["assignments"][0]  # type: ignore[no-any-return]

    wait_until(
        lambda: (second_record()["created"], second_record().get("ownedBy")) == (True, None),
        timeout=30,
        what="the second binding to record the assignment as its own",
    )
    cluster.kubectl("delete", "mlrb", "second", "-n", namespace)
    wait_gone(cluster, "mlrb", "second", namespace)
    assert assignments(azlocal, WORKSPACE, principal) == []


def _assignment_deletes(azlocal: AzLocal) -> int:
    return sum(
        1
        for r in azlocal.admin("GET", "requests")
        if "roleAssignments/" in r["path"] and r["method"] == "DELETE"
    )


def test_an_assignment_whose_status_was_lost_is_still_deleted(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """As after a crash between the write and the status patch, or a restore without
    status: the delete finds the binding's assignments by the owner in their description."""
    apply(cluster, "WorkloadIdentity", "forgotten", {"managedIdentity": MI}, namespace)
    principal = wait_ready(cluster, "wid", "forgotten", namespace)["status"]["principalId"]
    spec = {"role": {"builtIn": "Reader"}, "subjects": [{"workloadIdentity": "forgotten"}]}
    apply(cluster, "MLRoleBinding", "forgetful", {**spec, "scope": WS}, namespace)
    [record] = wait_ready(cluster, "mlrb", "forgetful", namespace)["status"]["assignments"]
    cluster.kubectl(
        "patch", "mlrb", "forgetful", "-n", namespace, "--subresource=status", "--type=json",
        "-p", '[{"op": "remove", "path": "/status/assignments"}]',
    )  # fmt: skip
    cluster.kubectl("delete", "mlrb", "forgetful", "-n", namespace, "--wait=false")
    wait_gone(cluster, "mlrb", "forgetful", namespace)
    assert assignments(azlocal, WORKSPACE, principal) == [], f"{record['name']} leaked"


def test_two_bindings_swapping_roles_never_report_ready_without_their_grants(
    operator: OperatorProcess, cluster: LocalCluster, azlocal: AzLocal, namespace: str
) -> None:
    """Two bindings of one principal swap their roles at once: each finds its new role
    already granted by the other (shared) while the other lets it go. Whatever the order,
    neither is Ready while a grant it relies on is missing."""
    apply(cluster, "WorkloadIdentity", "swapper", {"managedIdentity": MI}, namespace)
    principal = wait_ready(cluster, "wid", "swapper", namespace)["status"]["principalId"]
    subjects = [{"workloadIdentity": "swapper"}]

    def binding(name: str, role: str, generation_hint: str) -> dict[str, Any]:
        return {
            "apiVersion": "identity.aml.dev/v1alpha1",
            "kind": "MLRoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "role": {"builtIn": role},
                "subjects": subjects,
                "scope": WS,
                "description": generation_hint,
            },
        }

    for round_, (first, second) in enumerate(
        [("Reader", "AzureML Data Scientist"), ("AzureML Data Scientist", "Reader")] * 2
    ):
        both = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                binding("swap-a", first, f"round {round_}"),
                binding("swap-b", second, f"round {round_}"),
            ],
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(both))
        for name in ("swap-a", "swap-b"):
            wait_ready(cluster, "mlrb", name, namespace)
        granted = {role for _, role in assignments(azlocal, WORKSPACE, principal)}
        assert granted == {READER, DATA_SCIENTIST}, f"round {round_}: only {granted} granted"
    for name in ("swap-a", "swap-b"):
        cluster.kubectl("delete", "mlrb", name, "-n", namespace)
    assert assignments(azlocal, WORKSPACE, principal) == []
