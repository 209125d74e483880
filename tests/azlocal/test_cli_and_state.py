"""`azlocal serve` as a user runs it, and state that survives a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.msi import ManagedServiceIdentityClient

from azlocal.cli import read_env_file
from azlocal.server import AzLocal
from support.azure import msi_client, secret_credential
from support.poll import wait_until
from support.world import RG_IDENTITIES


def serve(tmp_path: Path, state: Path, env_file: Path, *extra: str) -> subprocess.Popen[str]:
    env_file.unlink(missing_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azlocal.cli",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--state-file",
            str(state),
            "--env-file",
            str(env_file),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def msi_from_env(env: dict[str, str]) -> ManagedServiceIdentityClient:
    """The SDK configured from the printed environment alone."""
    credential = ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        authority=env["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True,
        connection_verify=env["AZLOCAL_CA_BUNDLE"],
    )
    return ManagedServiceIdentityClient(
        credential,
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=env["AZLOCAL_ARM_ENDPOINT"],
        credential_scopes=["https://management.azure.com/.default"],
        connection_verify=env["AZLOCAL_CA_BUNDLE"],
    )


def test_serve_print_env_and_restart_with_state(tmp_path: Path) -> None:
    state, env_file = tmp_path / "state.json", tmp_path / "azlocal.env"
    first = serve(tmp_path, state, env_file)
    try:
        wait_until(env_file.exists, timeout=30, what="azlocal to write its environment")
        env = read_env_file(env_file)
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        assert env["AZURE_AUTHORITY_HOST"].startswith("https://127.0.0.1:")
        assert Path(env["AZLOCAL_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        created = msi_from_env(env).user_assigned_identities.create_or_update(
            RG_IDENTITIES, "survives-restart", {"location": "westeurope"}
        )
    finally:
        stop(first)
    assert state.exists()
    second = serve(tmp_path, state, env_file)
    try:
        wait_until(env_file.exists, timeout=30, what="azlocal to restart")
        env = read_env_file(env_file)
        again = msi_from_env(env).user_assigned_identities.get(RG_IDENTITIES, "survives-restart")
        assert (again.client_id, again.principal_id) == (created.client_id, created.principal_id)
    finally:
        stop(second)


def test_save_and_load_round_trip(azlocal: AzLocal, tmp_path: Path) -> None:
    client = msi_client(
        azlocal,
        secret_credential(
            azlocal, azlocal.operator_client_id, azlocal.issued.secrets["aml-identity-operator"]
        ),
    )
    client.user_assigned_identities.create_or_update(
        RG_IDENTITIES, "round-trip", {"location": "westeurope"}
    )
    path = tmp_path / "saved.json"
    azlocal.admin("POST", "save", {"path": str(path)})
    loaded = AzLocal(tmp_path / "copy", state_file=path)
    assert loaded.ctx.store == azlocal.ctx.store
    assert os.path.getsize(path) > 0


def test_admin_env_file_signs_in_the_administrator(tmp_path: Path) -> None:
    """`--admin-env-file`: the seed administrator's environment, for another process that
    sets up a test world (written before --env-file, which callers wait for)."""
    admin_file, env_file = tmp_path / "admin.env", tmp_path / "operator.env"
    process = serve(
        tmp_path, tmp_path / "state.json", env_file, "--admin-env-file", str(admin_file)
    )
    try:
        wait_until(
            lambda: env_file.exists() or process.poll() is not None,
            timeout=30,
            what="azlocal to write its environment files",
        )
        assert process.poll() is None, process.communicate()[1]
        assert oct(admin_file.stat().st_mode & 0o777) == "0o600"
        admin, operator = read_env_file(admin_file), read_env_file(env_file)
        assert "AZLOCAL_ADMIN_KEY" not in admin
        assert admin["AZURE_CLIENT_ID"] != operator["AZURE_CLIENT_ID"]
        # A client built from that file alone is Owner of the subscription: it lists
        # identities across it, which the operator may not.
        assert isinstance(
            list(msi_from_env(admin).user_assigned_identities.list_by_subscription()), list
        )
        with pytest.raises(HttpResponseError) as refused:
            list(msi_from_env(operator).user_assigned_identities.list_by_subscription())
        assert refused.value.status_code == 403
    finally:
        stop(process)
