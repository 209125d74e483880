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
    run = commands.add_parser("run", help="run the operator (configuration from the environment)")
    run.add_argument(
        "--log-format",
        choices=["plain", "full", "json"],
        default="full",
        help="kopf's log format; json for log collectors",
    )
    run.add_argument("--verbose", action="store_true", help="debug logs")
    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument("out_dir", type=Path, help="directory to write them to")
    crds.add_argument("--check", action="store_true", help="fail if they differ instead")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.log_format, args.verbose)
    if args.command == "crds":
        return crd.main([str(args.out_dir), *(["--check"] if args.check else [])])
    parser.error(f"unknown command {args.command}")
    return 2


def _run(log_format: str, verbose: bool) -> int:
    import asyncio

    import kopf
    from pydantic import ValidationError

    from aml_identity.handlers.runner import operate
    from aml_identity.settings import Settings

    try:
        settings = Settings()
    except ValidationError as error:
        missing = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors())
        print(f"aml-identity: configuration error ({missing}):\n{error}", file=sys.stderr)
        return 2
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()])
    asyncio.run(operate(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
