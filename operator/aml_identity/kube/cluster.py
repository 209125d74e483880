"""Kubernetes I/O the reconcilers need, over the official client (in threads: it blocks)."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from aml_identity.api import GROUP, VERSION

CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
CREATED_BY_LABEL = "identity.aml.dev/created-by"
MANAGED_BY_ANNOTATION = "identity.aml.dev/workload-identity"
TRIGGER_ANNOTATION = "identity.aml.dev/principal-changed"
# Set on WorkloadIdentities and MLRoleBindings when a policy or namespace label changes:
# each new value is an update, so they are checked against the policies again at once.
POLICY_TRIGGER_ANNOTATION = "identity.aml.dev/policy-changed"


def load_config() -> None:
    """In-cluster configuration when running in a Pod, the kubeconfig otherwise."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


class Cluster:
    def __init__(self) -> None:
        self.core = client.CoreV1Api()
        self.custom = client.CustomObjectsApi()
        self.api = client.ApiClient()

    async def issuer(self) -> str:
        """This cluster's service-account issuer, from its OIDC discovery document."""

        def read() -> str:
            request = self.api.param_serialize(
                method="GET",
                resource_path="/.well-known/openid-configuration",
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*request)
            response.read()
            return str(json.loads(response.data)["issuer"])

        return await asyncio.to_thread(read)

    async def get_custom(
        self, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            try:
                if namespace is None:
                    obj = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
                else:
                    obj = self.custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, name
                    )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
            return dict(obj)

        return await asyncio.to_thread(read)

    async def list_custom(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
            return list(listed.get("items", []))

        return await asyncio.to_thread(read)

    async def list_cluster_custom(self, plural: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            listed = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
            return list(listed.get("items", []))

        return await asyncio.to_thread(read)

    async def namespace_labels(self, name: str) -> dict[str, str] | None:
        """A namespace's labels; None when it does not exist."""

        def read() -> dict[str, str] | None:
            try:
                namespace = self.core.read_namespace(name)
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
            return dict(namespace.metadata.labels or {})

        return await asyncio.to_thread(read)

    async def all_namespace_labels(self) -> dict[str, dict[str, str]]:
        def read() -> dict[str, dict[str, str]]:
            return {
                ns.metadata.name: dict(ns.metadata.labels or {})
                for ns in self.core.list_namespace().items
            }

        return await asyncio.to_thread(read)

    async def annotate_custom(
        self, plural: str, namespace: str, name: str, annotations: dict[str, str]
    ) -> None:
        def write() -> None:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, {"metadata": {"annotations": annotations}}
            )

        await asyncio.to_thread(write)

    async def bind_service_account(
        self,
        namespace: str,
        name: str,
        *,
        create: bool,
        client_id: str,
        tenant_id: str,
        owner: str,
        owner_uid: str,
    ) -> str:
        """Annotate (and maybe create) a service account. Returns what happened."""

        def write() -> str:
            annotations = {
                CLIENT_ID_ANNOTATION: client_id,
                TENANT_ID_ANNOTATION: tenant_id,
                MANAGED_BY_ANNOTATION: owner,
            }
            try:
                current = self.core.read_namespaced_service_account(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
                if not create:
                    return "missing"
                body = client.V1ServiceAccount(
                    metadata=client.V1ObjectMeta(
                        name=name,
                        namespace=namespace,
                        annotations=annotations,
                        labels={CREATED_BY_LABEL: owner_uid},
                    )
                )
                self.core.create_namespaced_service_account(namespace, body)
                return "created"
            existing = current.metadata.annotations or {}
            if all(existing.get(k) == v for k, v in annotations.items()):
                return "unchanged"
            self.core.patch_namespaced_service_account(
                name, namespace, {"metadata": {"annotations": annotations}}
            )
            return "annotated"

        return await asyncio.to_thread(write)

    async def release_service_account(self, namespace: str, name: str, owner_uid: str) -> None:
        """Delete a service account this resource created, or remove its annotations."""

        def write() -> None:
            try:
                current = self.core.read_namespaced_service_account(name, namespace)
            except ApiException as error:
                if error.status == 404:
                    return
                raise
            metadata = current.metadata
            labels = metadata.labels or {}
            if labels.get(CREATED_BY_LABEL) == owner_uid:
                self.core.delete_namespaced_service_account(name, namespace)
                return
            annotations = metadata.annotations or {}
            if MANAGED_BY_ANNOTATION in annotations:
                remove = {
                    k: None
                    for k in (CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, MANAGED_BY_ANNOTATION)
                }
                self.core.patch_namespaced_service_account(
                    name, namespace, {"metadata": {"annotations": remove}}
                )

        await asyncio.to_thread(write)

    # --- credential Secrets ---

    async def get_secret(self, namespace: str, name: str) -> StoredSecret | None:
        def read() -> StoredSecret | None:
            try:
                secret = self.core.read_namespaced_secret(name, namespace)
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
            meta = secret.metadata
            return StoredSecret(
                data={k: base64.b64decode(v) for k, v in (secret.data or {}).items()},
                labels=dict(meta.labels or {}),
                annotations=dict(meta.annotations or {}),
                resource_version=meta.resource_version,
            )

        return await asyncio.to_thread(read)

    async def put_secret(
        self,
        namespace: str,
        name: str,
        *,
        data: dict[str, bytes],
        labels: dict[str, str],
        annotations: dict[str, str | None],
        current: StoredSecret | None,
    ) -> None:
        """Create the Secret, or patch it to exactly `data` if unchanged since `current`
        was read: the resourceVersion is a precondition, so a concurrent writer makes
        this fail with 409 instead of being overwritten. None annotations are removed."""

        def write() -> None:
            encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
            if current is None:
                body = client.V1Secret(
                    metadata=client.V1ObjectMeta(
                        name=name,
                        namespace=namespace,
                        labels=labels,
                        annotations={k: v for k, v in annotations.items() if v is not None},
                    ),
                    type="Opaque",
                    data=encoded,
                )
                self.core.create_namespaced_secret(namespace, body)
                return
            stale: dict[str, str | None] = {k: None for k in current.data if k not in data}
            patch = {
                "metadata": {
                    "resourceVersion": current.resource_version,
                    "labels": labels,
                    "annotations": annotations,
                },
                "data": {**stale, **encoded},
            }
            self.core.patch_namespaced_secret(name, namespace, patch)

        await asyncio.to_thread(write)

    async def annotate_secret(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> None:
        def write() -> None:
            self.core.patch_namespaced_secret(
                name, namespace, {"metadata": {"annotations": annotations}}
            )

        await asyncio.to_thread(write)

    async def delete_secret(self, namespace: str, name: str) -> None:
        def write() -> None:
            try:
                self.core.delete_namespaced_secret(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise

        await asyncio.to_thread(write)


@dataclass(frozen=True)
class StoredSecret:
    """A Secret's decoded data and metadata. Never logged: `data` holds key material."""

    data: dict[str, bytes] = field(repr=False)
    labels: dict[str, str]
    annotations: dict[str, str]
    resource_version: str | None
