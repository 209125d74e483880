"""`azlocal serve --admin-env-file`: the seed administrator's environment, for another
process that sets up a test world."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from azure.core.pipeline import policies
from azure.core.rest import HttpRequest, HttpResponse
from azure.identity import ClientSecretCredential
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy
from azure.mgmt.msi import ManagedServiceIdentityClient

from azlocal.cli import read_env_file
from support.poll import wait_until

ARM_SCOPE = "https://management.azure.com/.default"


def test_admin_env_file_signs_in_the_administrator(tmp_path: Path) -> None:
    admin_file, env_file = tmp_path / "admin.env", tmp_path / "operator.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azlocal.cli",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--admin-env-file",
            str(admin_file),
            "--env-file",
            str(env_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: env_file.exists() or process.poll() is not None,
            timeout=30,
            what="azlocal to write its environment files",
        )
        assert process.poll() is None, process.communicate()[1]
        assert oct(admin_file.stat().st_mode & 0o777) == "0o600"
        env = read_env_file(admin_file)
        assert set(env) >= {
            "AZURE_AUTHORITY_HOST",
            "AZURE_TENANT_ID",
            "AZURE_SUBSCRIPTION_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZLOCAL_ARM_ENDPOINT",
            "AZLOCAL_CA_BUNDLE",
        }
        assert "AZLOCAL_ADMIN_KEY" not in env
        assert env["AZURE_CLIENT_ID"] != read_env_file(env_file)["AZURE_CLIENT_ID"]

        # A client built from that file alone.
        ca, arm = env["AZLOCAL_CA_BUNDLE"], env["AZLOCAL_ARM_ENDPOINT"]
        credential = ClientSecretCredential(
            env["AZURE_TENANT_ID"],
            env["AZURE_CLIENT_ID"],
            env["AZURE_CLIENT_SECRET"],
            authority=env["AZURE_AUTHORITY_HOST"],
            disable_instance_discovery=True,
            connection_verify=ca,
        )
        pipeline: ARMPipelineClient[HttpRequest, HttpResponse] = ARMPipelineClient(
            base_url=arm,
            policies=[
                policies.RequestIdPolicy(),
                policies.RetryPolicy(retry_total=0),
                ARMChallengeAuthenticationPolicy(credential, ARM_SCOPE),
            ],
            connection_verify=ca,
        )
        subscription = env["AZURE_SUBSCRIPTION_ID"]
        answer = pipeline.send_request(
            HttpRequest("GET", f"{arm}/subscriptions/{subscription}?api-version=2022-09-01")
        )
        assert answer.status_code == 200
        assert answer.json()["subscriptionId"] == subscription
        # Owner of the subscription: it lists what the operator may not.
        msi = ManagedServiceIdentityClient(
            credential,
            subscription,
            base_url=arm,
            credential_scopes=[ARM_SCOPE],
            connection_verify=ca,
        )
        assert isinstance(list(msi.user_assigned_identities.list_by_subscription()), list)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
