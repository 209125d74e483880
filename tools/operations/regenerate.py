"""Regenerate the operations catalog (operator/azure_operations/data/operations.json).

Source: Azure's published operations lists, the generated permissions pages of
MicrosoftDocs/azure-docs (articles/role-based-access-control/permissions/*.md, rendered at
https://learn.microsoft.com/azure/role-based-access-control/permissions/). Each provider
section is a table of operations (`Action`) followed, for providers with a data plane, by
its data operations (`DataAction`). Every `## <namespace>` heading of every page is a
resource provider, so the pages also give the list of namespaces.

    python tools/operations/regenerate.py                  # download the pages (internet)
    python tools/operations/regenerate.py --docs ~/azure-docs   # a clone of azure-docs
    python tools/operations/regenerate.py --saved DIR      # sections saved by hand

`--saved` reads `<namespace>.md` files holding one section each, headed by a comment
`<!-- source: MicrosoftDocs/azure-docs <path> commit <sha> ms.date <MM/DD/YYYY> -->`, and a
`providers.txt` of namespaces (one per line, `#` comments): how the catalog is built on a
machine without internet.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CATALOGUED = {
    "Microsoft.Authorization": "management-and-governance.md",
    "Microsoft.KeyVault": "security.md",
    "Microsoft.MachineLearningServices": "ai-machine-learning.md",
    "Microsoft.ManagedIdentity": "identity.md",
    "Microsoft.Resources": "management-and-governance.md",
    "Microsoft.Storage": "storage.md",
}
PAGES = (
    "ai-machine-learning.md",
    "analytics.md",
    "compute.md",
    "containers.md",
    "databases.md",
    "devops.md",
    "general.md",
    "hybrid-multicloud.md",
    "identity.md",
    "integration.md",
    "internet-of-things.md",
    "management-and-governance.md",
    "migration.md",
    "mixed-reality.md",
    "monitor.md",
    "networking.md",
    "quantum.md",
    "security.md",
    "storage.md",
    "web-and-mobile.md",
)
FOLDER = "articles/role-based-access-control/permissions"
RAW = "https://raw.githubusercontent.com/MicrosoftDocs/azure-docs/main/" + FOLDER + "/"
OUT = Path(__file__).resolve().parents[2] / "operator/azure_operations/data/operations.json"

_ROW = re.compile(r"^>?\s*\|\s*([^|]+?)\s*\|")
_SOURCE = re.compile(
    r"<!-- source: (?P<repo>\S+) (?P<path>\S+) commit (?P<commit>\w+) ms.date (?P<date>[\d/]+) -->"
)
_DATE = re.compile(r"^ms\.date:\s*(?P<date>[\d/]+)", re.MULTILINE)


@dataclass
class Section:
    actions: list[str] = field(default_factory=list)
    data_actions: list[str] = field(default_factory=list)


def parse_page(text: str) -> dict[str, Section]:
    """Every `## <namespace>` section of a permissions page with its operations."""
    sections: dict[str, Section] = {}
    current: Section | None = None
    data = False
    for line in text.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            current = sections.setdefault(name, Section()) if "." in name else None
            data = False
            continue
        row = _ROW.match(line)
        if current is None or row is None:
            continue
        cell = row.group(1).strip("*` ")
        if cell in ("Action", "DataAction", "---"):
            data = data or cell == "DataAction"
            continue
        if "/" in cell:
            (current.data_actions if data else current.actions).append(cell)
    return sections


def iso_date(us_date: str) -> str:
    return datetime.strptime(us_date, "%m/%d/%Y").replace(tzinfo=UTC).date().isoformat()


def page_date(text: str) -> str:
    found = _DATE.search(text)
    return iso_date(found.group("date")) if found else "unknown"


def build(
    pages: dict[str, str], commit: str, extra_namespaces: list[str], namespaces_from: str
) -> dict[str, object]:
    """The catalog document from page name -> text."""
    providers: dict[str, object] = {}
    namespaces = set(extra_namespaces)
    for page, text in sorted(pages.items()):
        sections = parse_page(text)
        namespaces.update(sections)
        saved = _SOURCE.search(text)
        where = saved.group("path") if saved else f"{FOLDER}/{page}"
        revision = saved.group("commit") if saved else commit
        date = iso_date(saved.group("date")) if saved else page_date(text)
        for namespace, section in sections.items():
            if namespace not in CATALOGUED:
                continue
            providers[namespace] = {
                "source": f"MicrosoftDocs/azure-docs {where} @ {revision[:12]}",
                "published": date,
                "actions": section.actions,
                "dataActions": section.data_actions,
            }
    missing = sorted(set(CATALOGUED) - set(providers))
    if missing:
        raise SystemExit(f"no section for {', '.join(missing)} in the pages read")
    return {
        "generated": datetime.now(UTC).date().isoformat(),
        "generatedBy": "tools/operations/regenerate.py",
        "namespacesFrom": namespaces_from,
        "providers": dict(sorted(providers.items())),
        "namespaces": sorted(namespaces, key=str.lower),
    }


def _download() -> tuple[dict[str, str], str]:
    pages = {}
    for page in PAGES:
        with urllib.request.urlopen(RAW + page, timeout=60) as answer:  # noqa: S310 (fixed https URL)
            pages[page] = answer.read().decode()
    return pages, "main"


def _clone(docs: Path) -> tuple[dict[str, str], str]:
    pages = {p: (docs / FOLDER / p).read_text() for p in PAGES if (docs / FOLDER / p).exists()}
    commit = subprocess.run(
        ["git", "-C", str(docs), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return pages, commit or "unknown"


def _saved(folder: Path) -> tuple[dict[str, str], list[str], str]:
    pages = {p.name: p.read_text() for p in sorted(folder.glob("*.md"))}
    listed = folder / "providers.txt"
    lines = listed.read_text().splitlines() if listed.exists() else []
    names = [n.strip() for n in lines if n.strip() and not n.startswith("#")]
    comments = [n.lstrip("# ").removeprefix("source: ") for n in lines if n.startswith("#")]
    return pages, names, "; ".join(comments) or "the sections' headings"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--docs", type=Path, help="a clone of MicrosoftDocs/azure-docs")
    source.add_argument("--saved", type=Path, help="a folder of sections saved by hand")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    extra: list[str] = []
    namespaces_from = f"the ## headings of {FOLDER}/*.md"
    if args.saved:
        pages, extra, namespaces_from = _saved(args.saved)
        commit = "unknown"
    elif args.docs:
        pages, commit = _clone(args.docs)
    else:
        pages, commit = _download()
    document = build(pages, commit, extra, namespaces_from)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    providers: dict[str, dict[str, list[str]]] = document["providers"]  # type: ignore[assignment]
    counts = {ns: len(p["actions"]) + len(p["dataActions"]) for ns, p in providers.items()}
    namespaces: list[str] = document["namespaces"]  # type: ignore[assignment]
    print(f"wrote {args.out}: {counts}, {len(namespaces)} namespaces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
