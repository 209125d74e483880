"""CRDs are generated from the models, structural, and fully described."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aml_identity.api.crd import KINDS, custom_resource_definition, file_name, render_all


@pytest.mark.parametrize("folder", ["crds", "charts/aml-identity-operator/files/crds"])
def test_committed_crds_match_a_regeneration(repo: Path, folder: str) -> None:
    rendered = render_all()
    committed = {p.name: p.read_text() for p in (repo / folder).glob("*.yaml")}
    assert set(committed) == set(rendered), f"{folder} has extra or missing files: make crds"
    for name, text in rendered.items():
        assert committed[name] == text, f"{folder}/{name} is stale: run `make crds`"


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _schema(kind_index: int) -> dict[str, Any]:
    crd = custom_resource_definition(KINDS[kind_index])
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("index", range(len(KINDS)), ids=[k.kind for k in KINDS])
def test_schema_is_structural(index: int) -> None:
    text = yaml.safe_dump(_schema(index))
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "title:", "$defs", "null"):
        assert forbidden not in text, f"{forbidden} left in the schema"
    for path, node in _walk(_schema(index)):
        assert "type" in node, f"{path or '<root>'} has no type"
        if node.get("additionalProperties") is not None:
            assert "properties" not in node, f"{path}: properties and additionalProperties"


@pytest.mark.parametrize("index", range(len(KINDS)), ids=[k.kind for k in KINDS])
def test_every_field_has_a_description(index: int) -> None:
    """kubectl explain is the API's documentation."""
    missing = [
        path
        for path, node in _walk(_schema(index))
        if path not in (".metadata",)
        and not path.endswith("{}")
        and not path.endswith("[]")
        and not node.get("description")
    ]
    assert missing == []


def test_names_scope_columns_and_status_subresource() -> None:
    by_kind = {k.kind: custom_resource_definition(k) for k in KINDS}
    wid, mlrb, mlrole = (
        by_kind["WorkloadIdentity"],
        by_kind["MLRoleBinding"],
        by_kind["MLRole"],
    )
    assert wid["spec"]["names"]["shortNames"] == ["wid"]
    assert mlrb["spec"]["names"]["shortNames"] == ["mlrb"]
    assert mlrole["spec"]["scope"] == "Cluster"
    assert wid["spec"]["scope"] == mlrb["spec"]["scope"] == "Namespaced"
    for kind, crd in by_kind.items():
        version = crd["spec"]["versions"][0]
        names = [c["name"] for c in version["additionalPrinterColumns"]]
        assert "Age" in names
        if kind == "MLAccessPolicy":  # nothing in Azure, so no status and no Ready
            assert crd["spec"]["scope"] == "Cluster"
            assert version["subresources"] == {}
            assert names[0] == "Enforcement"
            continue
        assert version["subresources"] == {"status": {}}
        assert names[:2] == ["Ready", "Reason"]
    wid_columns = {c["name"] for c in wid["spec"]["versions"][0]["additionalPrinterColumns"]}
    mlrb_columns = {c["name"] for c in mlrb["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Client ID", "Principal ID"} <= wid_columns
    assert {"Role", "Scope"} <= mlrb_columns


def test_defaults_are_in_the_schema() -> None:
    spec = _schema(0)["properties"]["spec"]["properties"]
    # Unset means Delete for what the operator created, Orphan for what it adopted.
    assert "default" not in spec["deletionPolicy"]
    assert spec["deletionPolicy"]["enum"] == ["Delete", "Orphan"]
    binding = _schema(1)["properties"]["spec"]["properties"]
    assert binding["deletionPolicy"]["default"] == "Delete"
    assert spec["managementPolicy"]["default"] == "Manage"
    fic = spec["federatedCredentials"]["items"]["properties"]
    assert fic["audiences"]["default"] == ["api://AzureADTokenExchange"]
    certificate = spec["servicePrincipal"]["properties"]["credential"]["properties"]["certificate"]
    assert certificate["properties"]["duration"]["default"] == "8760h"


def test_lists_keyed_by_name_reject_duplicates() -> None:
    spec = _schema(0)["properties"]["spec"]["properties"]
    for field in ("serviceAccounts", "federatedCredentials"):
        assert spec[field]["x-kubernetes-list-type"] == "map"
        assert spec[field]["x-kubernetes-list-map-keys"] == ["name"]


def test_status_has_no_defaults() -> None:
    for index in range(len(KINDS)):
        if "status" not in _schema(index)["properties"]:
            continue  # MLAccessPolicy: no status
        for path, node in _walk(_schema(index)["properties"]["status"]):
            assert "default" not in node, f"status{path} has a default"


def test_file_names_follow_group_and_plural() -> None:
    assert sorted(file_name(k) for k in KINDS) == [
        "identity.aml.dev_mlaccesspolicies.yaml",
        "identity.aml.dev_mlrolebindings.yaml",
        "identity.aml.dev_mlroles.yaml",
        "identity.aml.dev_workloadidentities.yaml",
    ]
