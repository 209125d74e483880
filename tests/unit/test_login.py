"""Where the operator finds the API server from inside a Pod."""

from __future__ import annotations

import pytest

from aml_identity.kube.cluster import in_cluster_server


@pytest.mark.parametrize(
    ("env", "server"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "https://10.0.0.1:443"),
        ({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}, "https://127.0.0.1:6443"),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, "https://[fd00::1]:443"),
        # Outside a Pod (or half set): kopf's reader decides.
        ({}, None),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, None),
    ],
)  # fmt: skip
def test_the_address_the_kubelet_gives_every_container(
    env: dict[str, str], server: str | None
) -> None:
    assert in_cluster_server(env) == server
