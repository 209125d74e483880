"""`aml-identity`: the operator's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aml_identity import __version__
from aml_identity.api import crd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aml-identity",
        description="Keep Azure identities and RBAC for Azure ML equal to custom resources.",
    )
    parser.add_argument("--version", action="version", version=f"aml-identity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument("out_dir", type=Path, help="directory to write them to")
    crds.add_argument("--check", action="store_true", help="fail if they differ instead")
    args = parser.parse_args(argv)
    if args.command == "crds":
        return crd.main([str(args.out_dir), *(["--check"] if args.check else [])])
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
