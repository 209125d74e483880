"""`azlocal serve`: run the local Azure in the foreground."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from .seed import DEFAULT_SEED
from .server import AzLocal


def env_lines(env: dict[str, str]) -> list[str]:
    """The environment as `export NAME=value` lines (shell-quoted), one per variable."""
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """`export` lines, readable by the owner only (the file holds a client secret). The
    file appears whole: a process waiting for it never reads it half written."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover file would keep its mode otherwise
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(env_lines(env)) + "\n")
    os.replace(partial, path)


def read_env_file(path: Path) -> dict[str, str]:
    """The environment back from a file written by `--env-file`."""
    env = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="azlocal", description="A local Azure for tests and demos."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve ARM, Entra tokens and IMDS over HTTPS")
    serve.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".azlocal"),
        help="CA, server certificate and generated credentials go here",
    )
    serve.add_argument("--seed", type=Path, default=DEFAULT_SEED, help="YAML seed of the world")
    serve.add_argument(
        "--state-file",
        type=Path,
        help="load state from this JSON file if it exists, save to it on exit",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    serve.add_argument("--throttling", action="store_true", help="enforce ARM's token buckets")
    serve.add_argument(
        "--replication-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="new principals are unknown to role assignments for this long",
    )
    serve.add_argument("--latency-ms", type=float, default=0.0)
    serve.add_argument(
        "--trust-ca",
        type=Path,
        action="append",
        default=[],
        help="CA bundle for federated issuers (e.g. a kube-apiserver's)",
    )
    serve.add_argument(
        "--print-env",
        action="store_true",
        help="print the environment a client needs (includes the operator secret)",
    )
    serve.add_argument("--env-file", type=Path, help="write that environment to a file (mode 0600)")
    serve.add_argument(
        "--admin-env-file",
        type=Path,
        help="write the seed administrator's environment (Owner; for test set-up) to a file "
        "(mode 0600)",
    )
    args = parser.parse_args(argv)

    server = AzLocal(
        args.state_dir,
        seed=args.seed,
        state_file=args.state_file,
        host=args.host,
        port=args.port,
        settings={
            "throttling": args.throttling,
            "replicationDelaySeconds": args.replication_delay,
            "latencyMs": args.latency_ms,
        },
        trust_ca=args.trust_ca,
    ).start()
    lines = env_lines(server.env())
    if args.admin_env_file:  # before --env-file, which callers wait for
        try:
            admin_env = server.admin_env()
        except ValueError as err:
            server.stop()
            print(f"azlocal: --admin-env-file: {err}", file=sys.stderr, flush=True)
            return 2
        write_env_file(args.admin_env_file, admin_env)
    if args.env_file:
        write_env_file(args.env_file, server.env())
    if args.print_env:
        print("\n".join(lines), flush=True)
    print(f"azlocal serving {server.url} (CA: {server.ca_file})", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    if args.state_file:
        server.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
