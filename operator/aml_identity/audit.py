"""The audit trail of the operator's Azure writes.

Every write (any request but GET and HEAD, to ARM, Microsoft Graph or Key Vault) carries
an `x-ms-client-request-id` (Graph: `client-request-id`) derived from the custom resource
being reconciled, and is recorded once, whatever its retries, with its final answer:
- as one structured log record on the `aml_identity.audit` logger (JSON: time, the
  resource's kind/namespace/name/uid/generation, method, target, status, both request ids);
- as a Kubernetes event on the resource (`AzureWrite`).
Azure's activity log shows the client request id, so an entry there leads back to the
resource and its generation, and a Kubernetes event leads to the entry. Nothing secret is
recorded: targets are URL paths (no query, never a body).

The resource being reconciled travels in a context variable, set by the reconcile shell
for the duration of one reconcile: the HTTP policy that stamps and records each write
needs no argument threaded through every gateway call.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

AUDIT_LOG = logging.getLogger("aml_identity.audit")
# Fixed: request ids are uuid5 names in it.
_IDS = uuid.UUID("5d0f6a43-6b1c-4b8e-9f5e-2f5c1d7a9e10")
READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Subject:
    """The custom resource a write is made for."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int

    @classmethod
    def of(cls, kind: str, body: Mapping[str, Any]) -> Subject:
        meta = body["metadata"]
        return cls(
            kind,
            meta.get("namespace") or "",
            meta["name"],
            meta["uid"],
            int(meta.get("generation") or 0),
        )


@dataclass(frozen=True)
class Write:
    method: str
    target: str  # URL path: an ARM id, a Graph path, a Key Vault object path
    status: int | None  # None: no answer (connection lost)
    client_request_id: str
    service_request_id: str | None
    time: float

    @property
    def succeeded(self) -> bool:
        return self.status is not None and self.status < 400

    def event_message(self) -> str:
        answer = str(self.status) if self.status is not None else "no answer"
        service = f", Azure request id {self.service_request_id}" if self.service_request_id else ""
        return (
            f"{self.method} {self.target} -> {answer} "
            f"(client request id {self.client_request_id}{service})"
        )


@dataclass
class Trail:
    """The writes of one reconcile of one resource."""

    subject: Subject
    writes: list[Write] = field(default_factory=list)
    # Two reconciles of one generation (a resync that corrects drift) get other ids.
    _nonce: str = field(default_factory=lambda: uuid.uuid4().hex)
    _issued: int = 0

    def next_request_id(self) -> str:
        """A GUID that begins with the resource's uid (its first 8 hex digits), so an
        activity-log entry shows at a glance which resource it is for."""
        self._issued += 1
        subject = self.subject
        name = f"{subject.uid}/{subject.generation}/{self._nonce}/{self._issued}"
        derived = str(uuid.uuid5(_IDS, name))
        prefix = subject.uid.replace("-", "")[:8].lower()
        hexadecimal = len(prefix) == 8 and all(c in "0123456789abcdef" for c in prefix)
        return prefix + derived[8:] if hexadecimal else derived


def record(subject: Subject | None, write: Write) -> dict[str, Any]:
    """The structured audit record of one write."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(write.time)),
        "kind": subject.kind if subject else None,
        "namespace": subject.namespace if subject else None,
        "name": subject.name if subject else None,
        "uid": subject.uid if subject else None,
        "generation": subject.generation if subject else None,
        "method": write.method,
        "target": write.target,
        "status": write.status,
        "clientRequestId": write.client_request_id,
        "serviceRequestId": write.service_request_id,
    }


_current: ContextVar[Trail | None] = ContextVar("aml_identity_audit_trail", default=None)


@contextmanager
def following(subject: Subject) -> Iterator[Trail]:
    """Record the Azure writes made in this context (one reconcile) for `subject`."""
    trail = Trail(subject)
    token = _current.set(trail)
    try:
        yield trail
    finally:
        _current.reset(token)


def current() -> Trail | None:
    return _current.get()


def request_id() -> str:
    """The client request id for a write now."""
    trail = current()
    return trail.next_request_id() if trail is not None else str(uuid.uuid4())


def recorded(
    method: str, url: str, status: int | None, client_id: str, service_id: str | None
) -> None:
    """Record one finished write: logged, and kept for the resource's events (a write
    made for no resource is logged with its resource fields null)."""
    write = Write(method, urlsplit(url).path, status, client_id, service_id, time.time())
    trail = current()
    if trail is not None:
        trail.writes.append(write)
    entry = record(trail.subject if trail else None, write)
    # The JSON log format puts `audit` in the record as an object; the plain one shows it
    # in the message.
    AUDIT_LOG.info("audit %s", json.dumps(entry), extra={"audit": entry})
