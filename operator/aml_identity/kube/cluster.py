"""Kubernetes I/O the reconcilers need: a small async client over aiohttp.

One connection pool per process (bounded), no threads: the official client is
synchronous, and its calls used to occupy the event loop's thread pool, where azure-core
also waits, so Azure calls queued behind Kubernetes reads. Credentials come from kopf's
own login (service account in a Pod, the kubeconfig elsewhere), read again on a 401
(projected service-account tokens rotate).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf

from aml_identity.api import GROUP, VERSION

CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
CREATED_BY_LABEL = "identity.aml.dev/created-by"
MANAGED_BY_ANNOTATION = "identity.aml.dev/workload-identity"
# Annotations that make a resource reconcile at once: each new value is an update. Not
# under identity.aml.dev/: kopf keeps its own state there and leaves every annotation
# under that prefix out of what it compares, so a change there would wake nothing.
TRIGGER_PREFIX = "reconcile.identity.aml.dev"
# Set on the bindings of a WorkloadIdentity whose principal changed (recreated).
TRIGGER_ANNOTATION = f"{TRIGGER_PREFIX}/principal-changed"
# Set on WorkloadIdentities and MLRoleBindings when a policy or namespace label changes,
# so they are checked against the policies again.
POLICY_TRIGGER_ANNOTATION = f"{TRIGGER_PREFIX}/policy-changed"
# Set on a resource waiting for a WorkloadIdentity or MLRole when that becomes Ready.
DEPENDENCY_ANNOTATION = f"{TRIGGER_PREFIX}/dependency-ready"
MERGE_PATCH = "application/merge-patch+json"
# The API server answers in milliseconds: a few connections carry the operator's reads
# and writes, bounded whatever the object count (each TLS connection costs memory).
CONNECTIONS = 4
# Events name their source as kopf's do (kubectl describe shows it); the API server
# refuses messages over 1 KiB.
EVENT_SOURCE = "kopf"
EVENT_MESSAGE_LIMIT = 1024


class KubeError(Exception):
    """A Kubernetes API answer other than success (status, reason, message)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"Kubernetes API {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


# What reaching the cluster at all can raise (no kubeconfig, unreachable, refused): the
# read-only commands say it in one line instead of a traceback.
UNREACHABLE = (kopf.LoginError, KubeError, aiohttp.ClientError, OSError)


class ServiceAccountTaken(Exception):
    """The service account carries another WorkloadIdentity's client id (or one set by
    hand): binding it would take it from its owner."""

    def __init__(self, name: str, holder: str | None, client_id: str) -> None:
        held_by = f"WorkloadIdentity {holder}" if holder else "a client id set outside the operator"
        super().__init__(
            f"service account {name} is already bound to {held_by} ({CLIENT_ID_ANNOTATION}: "
            f"{client_id}); it is left as it is"
        )
        self.holder = holder


def in_cluster_server(env: Mapping[str, str]) -> str | None:
    """The API server's URL from the address the kubelet gives every container, as
    client-go's in-cluster configuration reads it; None outside a Pod."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def connection(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The service account in a Pod, the kubeconfig elsewhere (kopf's own readers).
    In a Pod, at the API server's address (in_cluster_server): kopf's own reader names
    https://kubernetes.default.svc, which needs cluster DNS."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    if info is None:
        return kopf.login_with_kubeconfig(**kwargs)
    server = in_cluster_server(os.environ)
    return dataclasses.replace(info, server=server) if server else info


def login() -> kopf.ConnectionInfo:
    """The service account in a Pod, the kubeconfig elsewhere (see connection)."""
    info = connection(settings=kopf.OperatorSettings())
    if info is None:
        raise kopf.LoginError("no service account and no kubeconfig to reach Kubernetes")
    return info


@dataclass
class Cluster:
    connect: Callable[[], kopf.ConnectionInfo] = login
    _info: kopf.ConnectionInfo | None = None
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._info = self.connect()
            connector = aiohttp.TCPConnector(
                ssl=self._info.as_ssl_context(), limit=CONNECTIONS, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                base_url=self._info.server.rstrip("/") + "/",
                connector=connector,
                headers=self._info.as_http_headers(),
                timeout=aiohttp.ClientTimeout(total=30),
                trust_env=self._info.trust_env,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Any:
        """One request; None for 404 when `missing_ok`. A 401 logs in again once."""
        for attempt in (1, 2):
            session = self._open()
            headers = {"Content-Type": content_type} if body is not None else {}
            async with session.request(
                method, path.lstrip("/"), json=body, headers=headers
            ) as response:
                if response.status == 401 and attempt == 1:
                    await session.close()  # the next attempt logs in again
                    continue
                if response.status == 404 and missing_ok:
                    return None
                if response.status >= 400:
                    text = await response.text()
                    try:
                        message = str(json.loads(text).get("message", ""))
                    except (ValueError, AttributeError):
                        message = text[:300]
                    raise KubeError(response.status, response.reason or "", message)
                return await response.json(content_type=None)
        raise AssertionError("unreachable")

    async def issuer(self) -> str:
        """This cluster's service-account issuer, from its OIDC discovery document."""
        document = await self._call("GET", "/.well-known/openid-configuration")
        return str(document["issuer"])

    @staticmethod
    def _custom_path(plural: str, namespace: str | None, name: str | None = None) -> str:
        base = f"/apis/{GROUP}/{VERSION}"
        if namespace is not None:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{plural}"
        return f"{base}/{quote(name)}" if name is not None else base

    async def get_custom(
        self, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        found = await self._call("GET", self._custom_path(plural, namespace, name), missing_ok=True)
        return dict(found) if found is not None else None

    async def list_custom(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        listed = await self._call("GET", self._custom_path(plural, namespace))
        return list(listed.get("items", []))

    async def list_cluster_custom(self, plural: str) -> list[dict[str, Any]]:
        listed = await self._call("GET", self._custom_path(plural, None))
        return list(listed.get("items", []))

    async def list_watched(self, plural: str, namespaces: list[str]) -> list[dict[str, Any]]:
        """A namespaced kind in the namespaces the operator watches (empty: all of them,
        one list; otherwise one per namespace, which is all its RBAC may allow)."""
        if not namespaces:
            return await self.list_cluster_custom(plural)
        return [item for ns in namespaces for item in await self.list_custom(plural, ns)]

    async def list_pods(self) -> list[dict[str, Any]]:
        """Every Pod in the cluster (the access report: who uses which identity)."""
        listed = await self._call("GET", "/api/v1/pods")
        return list(listed.get("items", []))

    async def namespace_labels(self, name: str) -> dict[str, str] | None:
        """A namespace's labels; None when it does not exist."""
        namespace = await self._call("GET", f"/api/v1/namespaces/{quote(name)}", missing_ok=True)
        if namespace is None:
            return None
        return dict(namespace["metadata"].get("labels") or {})

    async def all_namespace_labels(self) -> dict[str, dict[str, str]]:
        listed = await self._call("GET", "/api/v1/namespaces")
        return {
            ns["metadata"]["name"]: dict(ns["metadata"].get("labels") or {})
            for ns in listed.get("items", [])
        }

    async def annotate_custom(
        self, plural: str, namespace: str, name: str, annotations: dict[str, str]
    ) -> None:
        """Set annotations; an object deleted meanwhile has nothing to annotate."""
        await self._call(
            "PATCH",
            self._custom_path(plural, namespace, name),
            {"metadata": {"annotations": annotations}},
            content_type=MERGE_PATCH,
            missing_ok=True,
        )

    async def patch_status(
        self, plural: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> None:
        """Merge `status` into the status subresource; an object deleted meanwhile has
        none to patch."""
        await self._call(
            "PATCH",
            self._custom_path(plural, namespace, name) + "/status",
            {"status": status},
            content_type=MERGE_PATCH,
            missing_ok=True,
        )

    async def post_event(
        self, obj: Mapping[str, Any], *, type: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event about `obj` (a cluster-scoped one's go to `default`, where
        kubectl describe finds them)."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"namespace": namespace, "generateName": f"{meta['name']}."},
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta["uid"],
            },
            "type": type,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "source": {"component": EVENT_SOURCE},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call("POST", f"/api/v1/namespaces/{quote(namespace)}/events", event)

    async def kube_system_uid(self) -> str:
        """The UID of the kube-system namespace: made when the cluster was, and unique to
        it, so it tells clusters apart (the default cluster id)."""
        found = await self._call("GET", "/api/v1/namespaces/kube-system")
        return str(found["metadata"]["uid"])

    async def get_cluster_object(self, path: str) -> dict[str, Any] | None:
        """Any object by its API path; None when it does not exist."""
        found = await self._call("GET", path, missing_ok=True)
        return dict(found) if found is not None else None

    async def remove_finalizer(
        self, plural: str, namespace: str | None, name: str, finalizers: list[str], finalizer: str
    ) -> None:
        """Remove `finalizer` if the list is still `finalizers` (a JSON patch test)."""
        index = finalizers.index(finalizer)
        at = f"/metadata/finalizers/{index}"
        await self._call(
            "PATCH",
            self._custom_path(plural, namespace, name),
            [{"op": "test", "path": at, "value": finalizer}, {"op": "remove", "path": at}],
            content_type="application/json-patch+json",
        )

    # --- service accounts ---

    @staticmethod
    def _account_path(namespace: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{quote(namespace)}/serviceaccounts"
        return f"{base}/{quote(name)}" if name is not None else base

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
        annotations = {
            CLIENT_ID_ANNOTATION: client_id,
            TENANT_ID_ANNOTATION: tenant_id,
            MANAGED_BY_ANNOTATION: owner,
        }
        current = await self._call("GET", self._account_path(namespace, name), missing_ok=True)
        if current is None:
            if not create:
                return "missing"
            body = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": annotations,
                    "labels": {CREATED_BY_LABEL: owner_uid},
                },
            }
            await self._call("POST", self._account_path(namespace), body)
            return "created"
        existing = current["metadata"].get("annotations") or {}
        if all(existing.get(k) == v for k, v in annotations.items()):
            return "unchanged"
        holder = existing.get(MANAGED_BY_ANNOTATION)
        theirs = existing.get(CLIENT_ID_ANNOTATION)
        if (holder and holder != owner) or (not holder and theirs and theirs != client_id):
            raise ServiceAccountTaken(name, holder, theirs or "")
        await self._call(
            "PATCH",
            self._account_path(namespace, name),
            {"metadata": {"annotations": annotations}},
            content_type=MERGE_PATCH,
        )
        return "annotated"

    async def release_service_account(
        self, namespace: str, name: str, owner: str, owner_uid: str
    ) -> None:
        """Delete a service account this resource created, or remove its annotations (only
        when they are this resource's: another WorkloadIdentity may hold it)."""
        path = self._account_path(namespace, name)
        current = await self._call("GET", path, missing_ok=True)
        if current is None:
            return
        metadata = current["metadata"]
        if (metadata.get("labels") or {}).get(CREATED_BY_LABEL) == owner_uid:
            await self._call("DELETE", path, missing_ok=True)
            return
        if (metadata.get("annotations") or {}).get(MANAGED_BY_ANNOTATION) == owner:
            remove = {
                k: None for k in (CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, MANAGED_BY_ANNOTATION)
            }
            await self._call(
                "PATCH", path, {"metadata": {"annotations": remove}}, content_type=MERGE_PATCH
            )

    # --- credential Secrets ---

    @staticmethod
    def _secret_path(namespace: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{quote(namespace)}/secrets"
        return f"{base}/{quote(name)}" if name is not None else base

    async def get_secret(self, namespace: str, name: str) -> StoredSecret | None:
        secret = await self._call("GET", self._secret_path(namespace, name), missing_ok=True)
        if secret is None:
            return None
        meta = secret["metadata"]
        return StoredSecret(
            data={k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()},
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            resource_version=meta.get("resourceVersion"),
        )

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
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {k: v for k, v in annotations.items() if v is not None},
                },
                "type": "Opaque",
                "data": encoded,
            }
            await self._call("POST", self._secret_path(namespace), body)
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
        await self._call(
            "PATCH", self._secret_path(namespace, name), patch, content_type=MERGE_PATCH
        )

    async def annotate_secret(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> None:
        await self._call(
            "PATCH",
            self._secret_path(namespace, name),
            {"metadata": {"annotations": annotations}},
            content_type=MERGE_PATCH,
        )

    async def delete_secret(self, namespace: str, name: str) -> None:
        await self._call("DELETE", self._secret_path(namespace, name), missing_ok=True)


@dataclass(frozen=True)
class StoredSecret:
    """A Secret's decoded data and metadata. Never logged: `data` holds key material."""

    data: dict[str, bytes] = field(repr=False)
    labels: dict[str, str]
    annotations: dict[str, str]
    resource_version: str | None
