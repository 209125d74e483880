"""Generate the CustomResourceDefinitions in crds/ from the pydantic models.

The models are the one source of truth. Pydantic's JSON Schema is rewritten into a
Kubernetes structural schema: $refs inlined, optional `anyOf [X, null]` collapsed to X,
titles and null defaults dropped, and the x-kubernetes-* keywords the models carry
kept. Run `make crds` (or `python -m aml_identity.api.crd crds/`) after changing a
model; a test fails when the committed files differ from a regeneration.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import GROUP, VERSION
from .common import ApiModel, matches_rule
from .mlaccesspolicy import MLAccessPolicy
from .mlrole import MLRole
from .mlrolebinding import MLRoleBinding
from .workloadidentity import WorkloadIdentity

HEADER = "# Generated from operator/aml_identity/api by `make crds`. Do not edit by hand.\n"
CATEGORY = "aml-identity"


def _ready(field_name: str) -> str:
    return f'.status.conditions[?(@.type=="Ready")].{field_name}'


@dataclass(frozen=True)
class Kind:
    """Everything about one kind's CRD that the model itself does not say."""

    model: type[ApiModel]
    plural: str
    scope: str
    short_names: list[str] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.model.KIND)  # type: ignore[attr-defined]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


_READY_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": _ready("status")},
    {"name": "Reason", "type": "string", "jsonPath": _ready("reason")},
]
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_MESSAGE = {"name": "Message", "type": "string", "priority": 1, "jsonPath": _ready("message")}

KINDS: list[Kind] = [
    Kind(
        model=WorkloadIdentity,
        plural="workloadidentities",
        scope="Namespaced",
        short_names=["wid"],
        columns=[
            *_READY_COLUMNS,
            {"name": "Client ID", "type": "string", "jsonPath": ".status.clientId"},
            {"name": "Principal ID", "type": "string", "jsonPath": ".status.principalId"},
            _AGE,
            _MESSAGE,
        ],
    ),
    Kind(
        model=MLRoleBinding,
        plural="mlrolebindings",
        scope="Namespaced",
        short_names=["mlrb"],
        columns=[
            *_READY_COLUMNS,
            {"name": "Role", "type": "string", "jsonPath": ".status.roleName"},
            {"name": "Scope", "type": "string", "jsonPath": ".status.scope"},
            _AGE,
            _MESSAGE,
        ],
    ),
    Kind(
        model=MLRole,
        plural="mlroles",
        scope="Cluster",
        short_names=["mlr"],
        columns=[
            *_READY_COLUMNS,
            {"name": "Role Name", "type": "string", "jsonPath": ".spec.roleName"},
            {
                "name": "Definition",
                "type": "string",
                "priority": 1,
                "jsonPath": ".status.roleDefinitionName",
            },
            _AGE,
            _MESSAGE,
        ],
    ),
    Kind(
        model=MLAccessPolicy,
        plural="mlaccesspolicies",
        scope="Cluster",
        short_names=["mlap"],
        columns=[
            {"name": "Enforcement", "type": "string", "jsonPath": ".spec.enforcement"},
            _AGE,
        ],
    ),
]


def structural_schema(model: type[ApiModel]) -> dict[str, Any]:
    """The model's JSON Schema rewritten as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _rewrite(raw, defs, under_status=False)


def _rewrite(node: dict[str, Any], defs: dict[str, Any], *, under_status: bool) -> dict[str, Any]:
    node = dict(node)
    # Inline a $ref; keywords beside it (the field's description, default) win.
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        node = {**target, **node}
    # Optional fields: anyOf [X, {type: null}] becomes X.
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot make a structural schema of a union: {branches}")
        inner = _rewrite(branches[0], defs, under_status=under_status)
        node = {**inner, **{k: v for k, v in node.items() if k != "default" or v is not None}}
    node.pop("title", None)
    if node.get("default", ...) is None or under_status:
        node.pop("default", None)
    # Structural schemas forbid additionalProperties: false; the API server prunes
    # unknown fields instead.
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if "properties" in node:
        node["type"] = "object"
        node["properties"] = {
            name: _rewrite(
                sub,
                defs,
                under_status=under_status or (name == "status" and "spec" in node["properties"]),
            )
            for name, sub in node["properties"].items()
        }
    if isinstance(node.get("items"), dict):
        node["items"] = _rewrite(node["items"], defs, under_status=under_status)
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _rewrite(
            node["additionalProperties"], defs, under_status=under_status
        )
    rules = [v["rule"] for v in node.get("x-kubernetes-validations", [])]
    if "pattern" in node and matches_rule(node["pattern"]) in rules:
        del node["pattern"]  # the CEL rule says the same thing with a readable message
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return _ordered(node)


_KEY_ORDER = ["description", "type", "format", "enum", "default"]


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Stable key order so regeneration is byte-for-byte reproducible and readable."""
    head = {k: node[k] for k in _KEY_ORDER if k in node}
    tail = {k: node[k] for k in sorted(node) if k not in head}
    return {**head, **tail}


def custom_resource_definition(kind: Kind) -> dict[str, Any]:
    schema = structural_schema(kind.model)
    properties = {
        "apiVersion": {
            "description": "Versioned schema of this object: identity.aml.dev/v1alpha1.",
            "type": "string",
        },
        "kind": {"description": f"Always {kind.kind}.", "type": "string"},
        "metadata": {"type": "object"},
        **schema["properties"],
    }
    open_api = {
        "description": schema["description"].replace("\n", " ").replace("  ", " "),
        "type": "object",
        "properties": properties,
        "required": schema.get("required", []),
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/name": "aml-identity-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": kind.short_names,
                "categories": [CATEGORY],
            },
            "scope": kind.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}} if "status" in schema["properties"] else {},
                    "additionalPrinterColumns": kind.columns,
                    "schema": {"openAPIV3Schema": open_api},
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    body = yaml.safe_dump(
        custom_resource_definition(kind), sort_keys=False, width=100, allow_unicode=True
    )
    return HEADER + body


def file_name(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


def render_all() -> dict[str, str]:
    """File name -> YAML text, for every kind."""
    return {file_name(kind): render(kind) for kind in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory to write the CRDs to")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files differ instead of writing"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = args.out_dir / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"CRDs out of date (run `make crds`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
