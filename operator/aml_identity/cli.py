"""`aml-identity`: the operator's command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aml_identity import __version__
from aml_identity.api import crd

if TYPE_CHECKING:
    from aml_identity.settings import Settings


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
    plan = commands.add_parser(
        "plan",
        help="print what the operator would change for these manifests (reads only)",
        description="Exit code: 0 nothing would change, 2 changes pending, 1 cannot plan.",
    )
    plan.add_argument(
        "-f",
        "--filename",
        type=Path,
        action="append",
        required=True,
        help="manifest file or directory (repeatable)",
    )
    condition = commands.add_parser(
        "azure-condition",
        help="print the ABAC condition for the operator's own role assignment",
        description=(
            "Prints the condition to put on the operator's Role Based Access Control "
            "Administrator assignment: it may then write and delete only role assignments "
            "of the roles the live MLAccessPolicies allow, to the principal types they "
            "allow. Reads the policies from the cluster and resolves built-in role names "
            "in Azure."
        ),
    )
    condition.add_argument(
        "--scope",
        help=(
            "ARM scope to resolve built-in role names at (default: the subscription); any "
            "scope the caller may read role definitions at"
        ),
    )
    explain = commands.add_parser(
        "explain-role",
        help="list the operations a role allows and denies, by resource type (reads only)",
        description=(
            "Resolves a role's actions and notActions (and data actions) against the "
            "operations Azure publishes for the providers in the operator's catalog. The "
            "role: MLRoles in manifests (-f), an MLRole in the cluster by name, or a "
            "built-in or custom role in Azure by name, GUID or role definition id."
        ),
    )
    explain.add_argument("role", nargs="?", help="MLRole name, role name, GUID or id")
    explain.add_argument(
        "-f",
        "--filename",
        type=Path,
        action="append",
        default=[],
        help="manifest file or directory with MLRoles (repeatable); no cluster or Azure",
    )
    explain.add_argument(
        "--scope", help="ARM scope to read role definitions at (default: the subscription)"
    )
    explain.add_argument("-o", "--output", choices=["text", "json"], default="text")
    access = commands.add_parser(
        "report",
        help="the access report: who can do what, where, and why (reads only)",
        description=(
            "For every WorkloadIdentity: its form, credential and expiry, federations, "
            "every role it holds at every scope with the binding that declares it, and the "
            "service accounts and running Pods that use it. Findings first, most serious "
            "first. Also `kubectl aml-identity report`."
        ),
    )
    access.add_argument(
        "-o", "--output", choices=["table", "json", "yaml", "csv", "markdown"], default="table"
    )
    access.add_argument(
        "--no-orphans",
        action="store_true",
        help="skip the orphans section (the only part that reads Azure)",
    )
    exporting = commands.add_parser(
        "export",
        help="write manifests that adopt what already exists in Azure (reads only)",
        description=(
            "Writes WorkloadIdentities (with adoption), MLRoleBindings and MLRoles for the "
            "user-assigned identities in a scope, their federated credentials, their role "
            "assignments and the custom roles those use, so that applying them changes "
            "nothing in Azure. Prints on stderr what the adoption needs: an MLAccessPolicy "
            "allowing it (suggested, never applied) and the owners' consent tags."
        ),
    )
    exporting.add_argument(
        "--scope",
        required=True,
        help=(
            "a resource group (/subscriptions/<s>/resourceGroups/<rg>, or its bare name in "
            "the operator's subscription), a workspace or other resource id, or a "
            "subscription (/subscriptions/<s>)"
        ),
    )
    exporting.add_argument(
        "-n", "--namespace", required=True, help="namespace of the WorkloadIdentities and bindings"
    )
    exporting.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help="write one file per object (<kind>-<name>.yaml) here instead of to stdout",
    )
    orphaned = commands.add_parser(
        "orphans",
        help="list Azure objects of this cluster whose custom resource is gone",
        description=(
            "Managed identities and applications tagged with this cluster's id, and role "
            "assignments an MLRoleBinding made for this cluster's identities, whose custom "
            "resource no longer exists (deletionPolicy: Orphan, a restored backup, a lost "
            "cluster rebuilt under the same id). Reads only, unless --delete. Custom roles "
            "carry no cluster id and are not listed."
        ),
    )
    orphaned.add_argument(
        "-n", "--namespace", help="only those whose resource was in this namespace"
    )
    orphaned.add_argument(
        "--delete",
        action="store_true",
        help="delete what is listed (role assignments first, then the principals)",
    )
    orphaned.add_argument("-o", "--output", choices=["table", "json"], default="table")
    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument("out_dir", type=Path, help="directory to write them to")
    crds.add_argument("--check", action="store_true", help="fail if they differ instead")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.log_format, args.verbose)
    if args.command == "plan":
        return _plan(args.filename)
    if args.command == "azure-condition":
        return _condition(args.scope)
    if args.command == "explain-role":
        if args.role is None and not args.filename:
            parser.error("explain-role needs a role name or -f")
        return _explain(args.role, args.filename, args.scope, args.output)
    if args.command == "report":
        from aml_identity.handlers import report

        return report.run(args.output, not args.no_orphans)
    if args.command == "export":
        return _export(args.scope, args.namespace, args.output_dir)
    if args.command == "orphans":
        return _orphans(args.namespace, args.delete, args.output)
    if args.command == "crds":
        return crd.main([str(args.out_dir), *(["--check"] if args.check else [])])
    parser.error(f"unknown command {args.command}")
    return 2


def _settings() -> Settings | None:
    from pydantic import ValidationError

    from aml_identity.settings import Settings

    try:
        return Settings()
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            variable = str(problem["loc"][0])
            field = variable.removeprefix("AML_IDENTITY_").lower()
            alias = Settings.model_fields.get(field)
            choices = getattr(getattr(alias, "validation_alias", None), "choices", None)
            names = " or ".join(str(c) for c in choices) if choices else variable
            lines.append(f"  {names}: {problem['msg']}")
        print("aml-identity: configuration error:\n" + "\n".join(lines), file=sys.stderr)
        return None


def _plan(paths: list[Path]) -> int:
    import logging

    from aml_identity.handlers import plan

    logging.getLogger("azure").setLevel(logging.WARNING)
    settings = _settings()
    return 1 if settings is None else plan.run(settings, paths)


def _condition(scope: str | None) -> int:
    import logging

    from aml_identity.handlers import condition

    logging.getLogger("azure").setLevel(logging.WARNING)
    settings = _settings()
    return 1 if settings is None else condition.run(settings, scope)


def _orphans(namespace: str | None, delete: bool, output: str) -> int:
    import logging

    from aml_identity.handlers import orphans

    logging.getLogger("azure").setLevel(logging.WARNING)
    settings = _settings()
    return 1 if settings is None else orphans.run(settings, namespace, delete, output)


def _export(scope: str, namespace: str, out_dir: Path | None) -> int:
    import logging

    from aml_identity.handlers import export

    logging.getLogger("azure").setLevel(logging.WARNING)
    settings = _settings()
    return 1 if settings is None else export.run(settings, scope, namespace, out_dir)


def _explain(role: str | None, files: list[Path], scope: str | None, output: str) -> int:
    import logging

    from aml_identity.handlers import explain

    logging.getLogger("azure").setLevel(logging.WARNING)
    return explain.run(role, files, scope, output, _settings)


# kopf's INFO lines for every handler run ("Handler 'x' succeeded.", "Creation is
# processed: ..."): thousands a minute at scale, and each costs the event loop time. The
# operator logs one line per reconcile with what it found; --verbose brings them back.
_KOPF_CHATTER = ("Handler ", "Timer ", "Creation is processed", "Updating is processed",
                 "Resuming is processed", "Deletion is processed")  # fmt: skip


def _quiet_kopf(record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO or not str(record.msg).startswith(_KOPF_CHATTER)


def _run(log_format: str, verbose: bool) -> int:
    import asyncio

    import kopf

    from aml_identity.handlers.runner import operate

    settings = _settings()
    if settings is None:
        return 2
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()])
    if not verbose:
        logging.getLogger("kopf.objects").addFilter(_quiet_kopf)
    asyncio.run(operate(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
