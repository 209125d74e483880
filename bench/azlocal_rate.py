"""How many requests per second azlocal sustains on this machine.

    .venv/bin/python bench/azlocal_rate.py [--seconds 10] [--concurrency 16]

azlocal runs in its own process (`azlocal serve`), as in the demo; a client process
drives it over HTTPS on loopback with a real bearer token, so every request pays for
TLS, token verification, RBAC evaluation and the request log. Three mixes:

- read:   GET one user-assigned identity (userAssignedIdentities/read)
- write:  PATCH its tags (userAssignedIdentities/write)
- assign: PUT then DELETE a role assignment (roleAssignments/write + delete)

The floor is what Azure Resource Manager sustains for one principal in one
subscription (25 reads/s, 10 writes/s, 10 deletes/s refill): azlocal must stay well
above it, or tests of the operator's pacing would measure azlocal instead. Reported as
measured / floor. Bounded in time and count; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from azure.identity import ClientSecretCredential

from azlocal.cli import read_env_file

FLOOR = {"read": 25.0, "write": 10.0, "assign": 10.0}
MAX_REQUESTS = 200_000
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
AUTH = "?api-version=2022-04-01"


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env_file = workdir / "env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azlocal.cli",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(workdir / "state"),
            "--env-file",
            str(env_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not env_file.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("azlocal did not start")
        time.sleep(0.05)
    return process, read_env_file(env_file)


async def run_mix(
    mix: str, env: dict[str, str], token: str, seconds: float, concurrency: int
) -> tuple[int, int]:
    base = env["AZLOCAL_ARM_ENDPOINT"]
    sub = env["AZURE_SUBSCRIPTION_ID"]
    identity = (
        f"{base}/subscriptions/{sub}/resourceGroups/rg-ml-identities/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/bench"
    )
    msi = "?api-version=2024-11-30"
    context = ssl.create_default_context(cafile=env["AZLOCAL_CA_BUNDLE"])
    headers = {"Authorization": f"Bearer {token}"}
    ok = errors = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=concurrency), headers=headers
    ) as session:
        # One principal per worker: concurrent assignments of the same (scope, role,
        # principal) would rightly conflict (RoleAssignmentExists).
        principals = []
        for i in range(concurrency):
            async with session.put(f"{identity}-{i}{msi}", json={"location": "westeurope"}) as r:
                principals.append((await r.json())["properties"]["principalId"])
        scope = f"{base}/subscriptions/{sub}/resourceGroups/rg-ml"
        reader = f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}"

        async def worker(principal: str) -> None:
            nonlocal ok, errors
            while time.monotonic() < deadline and ok + errors < MAX_REQUESTS:
                calls: list[tuple[str, str, dict[str, Any] | None]]
                if mix == "read":
                    calls = [("GET", f"{identity}-0{msi}", None)]
                elif mix == "write":
                    calls = [("PATCH", f"{identity}-0{msi}", {"tags": {"n": str(ok)}})]
                else:
                    name = uuid.uuid4()
                    url = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}{AUTH}"
                    calls = [
                        (
                            "PUT",
                            url,
                            {
                                "properties": {
                                    "roleDefinitionId": reader,
                                    "principalId": principal,
                                    "principalType": "ServicePrincipal",
                                }
                            },
                        ),
                        ("DELETE", url, None),
                    ]
                for method, url, body in calls:
                    async with session.request(method, url, json=body) as response:
                        await response.read()
                        if response.status < 300:
                            ok += 1
                        else:
                            errors += 1

        await asyncio.gather(*[worker(p) for p in principals])
    return ok, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, env = start_server(Path(tmp))
        try:
            credential = ClientSecretCredential(
                env["AZURE_TENANT_ID"],
                env["AZURE_CLIENT_ID"],
                env["AZURE_CLIENT_SECRET"],
                authority=env["AZURE_AUTHORITY_HOST"],
                disable_instance_discovery=True,
                connection_verify=env["AZLOCAL_CA_BUNDLE"],
            )
            token = credential.get_token("https://management.azure.com/.default").token
            print(
                f"azlocal request rate, {args.seconds:.0f} s per mix, "
                f"{args.concurrency} concurrent clients"
            )
            print(f"{'mix':8} {'requests':>9} {'errors':>7} {'req/s':>8} {'floor':>6} {'ratio':>7}")
            for mix in ("read", "write", "assign"):
                started = time.monotonic()
                ok, errors = asyncio.run(run_mix(mix, env, token, args.seconds, args.concurrency))
                rate = ok / (time.monotonic() - started)
                print(
                    f"{mix:8} {ok:9d} {errors:7d} {rate:8.0f} {FLOOR[mix]:6.0f} "
                    f"{rate / FLOOR[mix]:6.0f}x"
                )
                if errors:
                    return 1
        finally:
            process.terminate()
            process.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
