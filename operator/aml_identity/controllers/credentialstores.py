"""Where a service principal's credential lives, and how each store takes a new one.

Every store answers the same questions for the rotation loop (which registered key does
it serve, which one is being retired and since when, which keys could it switch to)
and performs the same steps (issue, switch, forget the previous key), so the decisions
stay in aml_identity.reconcile.credentials and are the same for all stores:

- SecretCertificate: the operator generates key and certificate; the private key exists
  only in the Secret, so issuing and switching happen in one step.
- SecretPassword: a client secret from Graph's addPassword, written to the Secret.
- VaultCertificate: Key Vault generates the key; the operator certifies the vault's
  request, registers the certificate, then merges it (the switch).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aml_identity.api.observed import (
    Application,
    KeyCredential,
    NewKey,
    PasswordCredential,
    PendingRequest,
    VaultCertificate,
)
from aml_identity.azure.graph import not_visible
from aml_identity.controllers.outcome import Deps
from aml_identity.kube.cluster import StoredSecret
from aml_identity.reconcile import secretstore
from aml_identity.reconcile.credentials import Key
from aml_identity.reconcile.identity import Owner
from aml_identity.reconcile.names import ownership_tags
from aml_identity.reconcile.x509 import (
    certificate_for_request,
    issue_self_signed,
    pem_certificate_der,
    same_public_key,
    thumbprint,
)


@dataclass(frozen=True)
class View:
    """What the rotation loop decides on."""

    keys: tuple[Key, ...]  # managed keys registered on the application
    active: str | None
    previous: str | None
    switched_at: datetime | None
    switchable: frozenset[str] = frozenset()
    thumbprints: dict[str, str] = field(default_factory=dict)


class Store(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def where(self) -> str: ...
    @property
    def location(self) -> dict[str, str]: ...  # status.credential's fields naming the store

    async def read(self, now: datetime) -> View: ...
    # Steps act on what the last read() saw (`view`), so a step needs no reading of its own.
    async def issue(
        self, view: View, now: datetime, not_before: datetime, not_after: datetime
    ) -> str: ...
    async def switch(self, view: View, key_id: str, now: datetime) -> None: ...
    async def remove(self, key_id: str) -> None: ...
    async def forget_previous(self) -> None: ...
    async def delete(self) -> str | None: ...
    async def cancel(self) -> str | None: ...


class NotOwnedError(Exception):
    """The store holds an object this WorkloadIdentity did not create."""


class KeyListError(Exception):
    """Graph returned a key without its certificate: rewriting the list would drop it."""


@dataclass
class AppKeys:
    """The application's certificates; PATCH replaces the whole list, so every write
    carries every key to keep, with its certificate."""

    deps: Deps
    app: Application
    keys: list[KeyCredential]

    def managed(self) -> list[KeyCredential]:
        return [k for k in self.keys if secretstore.is_managed_key(k.display_name)]

    async def add(self, key_id: str, label: str, der: bytes, nb: datetime, na: datetime) -> None:
        await self.deps.graph.set_keys(
            self.app.object_id, [*map(_keep, self.keys), NewKey(key_id, label, der, nb, na)]
        )
        self.keys.append(KeyCredential(key_id, label, thumbprint(der), nb, na, der))

    async def remove(self, key_id: str) -> None:
        kept = [k for k in self.keys if k.key_id != key_id]
        await self.deps.graph.set_keys(self.app.object_id, [_keep(k) for k in kept])
        self.keys = kept

    async def remove_managed(self) -> int:
        """Every key the operator issued goes (the keys someone else added stay)."""
        managed = self.managed()
        if managed:
            kept = [k for k in self.keys if k not in managed]
            await self.deps.graph.set_keys(self.app.object_id, [_keep(k) for k in kept])
            self.keys = kept
        return len(managed)

    def by_thumbprint(self, thumb: str) -> str | None:
        return next((k.key_id for k in self.managed() if k.thumbprint == thumb), None)

    def has(self, key_id: str) -> bool:
        return any(k.key_id == key_id for k in self.keys)

    async def refresh(self) -> Application | None:
        """Read the application again (Graph may have answered from a lagging replica)."""
        fresh = await self.deps.graph.read_application(self.app.object_id)
        if fresh is not None:
            self.keys = list(fresh.keys)
        return fresh

    async def confirm(
        self, key_id: str | None, written_at: datetime | None, now: datetime, where: str
    ) -> None:
        """Before the key list is rewritten (PATCH replaces it whole): a key `where`
        serves, written less than GRAPH_LAG ago, that the read did not show is read
        again, and if still missing, waited for, never dropped."""
        if key_id is None or self.has(key_id) or not _recent(written_at, now):
            return
        await self.refresh()
        if not self.has(key_id):
            raise not_visible(f"key {key_id}, which {where} serves,")

    async def verify(self, key_id: str, where: str) -> None:
        """After the PATCH: Graph shows the key (a read no longer answers from before it)."""
        await self.refresh()
        if not self.has(key_id):
            raise not_visible(f"key {key_id}, just registered for {where},")


# Graph's replicas can answer a read from before a write for a while; a key written
# longer ago than this and missing from a read is gone, not lagging.
GRAPH_LAG = timedelta(minutes=5)


def _recent(written_at: datetime | None, now: datetime) -> bool:
    return written_at is not None and now - written_at < GRAPH_LAG


def _keep(key: KeyCredential) -> NewKey:
    if key.der is None:
        raise KeyListError(
            f"Graph returned key {key.key_id} without its certificate; not rewriting the key "
            "list, which would drop it"
        )
    return NewKey(key.key_id, key.display_name, key.der, key.not_before, key.not_after)


def _view(
    managed: list[KeyCredential] | list[PasswordCredential],
    served: str | None,
    previous: str | None,
    switched_at: datetime | None,
    switchable: frozenset[str] = frozenset(),
) -> View:
    ids = {c.key_id for c in managed}
    return View(
        keys=tuple(Key(c.key_id, c.not_before, c.not_after) for c in managed),
        active=served if served in ids else None,
        previous=previous if previous in ids else None,
        switched_at=switched_at,
        switchable=switchable & frozenset(ids),
        thumbprints={c.key_id: c.thumbprint for c in managed if isinstance(c, KeyCredential)},
    )


@dataclass
class SecretStore:
    """A Kubernetes Secret in the WorkloadIdentity's namespace."""

    deps: Deps
    owner: Owner
    app: Application
    name: str
    identity: secretstore.Identity
    certificate: bool
    keys: AppKeys = field(init=False)
    passwords: list[PasswordCredential] = field(init=False)
    stored: StoredSecret | None = None
    _previous: str | None = None

    def __post_init__(self) -> None:
        self.keys = AppKeys(self.deps, self.app, list(self.app.keys))
        self.passwords = list(self.app.passwords)

    @property
    def kind(self) -> str:
        return "Certificate" if self.certificate else "ClientSecret"

    @property
    def where(self) -> str:
        return f"Secret {self.name}"

    @property
    def location(self) -> dict[str, str]:
        return {"secretName": self.name}

    def _managed(self) -> list[KeyCredential] | list[PasswordCredential]:
        if self.certificate:
            return self.keys.managed()
        return [p for p in self.passwords if secretstore.is_managed_key(p.display_name)]

    async def read(self, now: datetime) -> View:
        self.stored = await self.deps.cluster.get_secret(self.owner.namespace, self.name)
        stored = self.stored
        if stored is not None and stored.labels.get(secretstore.OWNER_LABEL) != self.owner.uid:
            raise NotOwnedError(
                f"Secret {self.name} exists and is not managed by this WorkloadIdentity"
            )
        if stored is not None:
            await self._confirm_served(stored, now)
        served = None
        if stored is not None and self.certificate and "tls.crt" in stored.data:
            served = self.keys.by_thumbprint(
                thumbprint(pem_certificate_der(stored.data["tls.crt"]))
            )
        elif stored is not None and not self.certificate and "AZURE_CLIENT_SECRET" in stored.data:
            served = stored.annotations.get(secretstore.KEY_ID)
        annotations = stored.annotations if stored else {}
        return _view(
            self._managed(),
            served,
            annotations.get(secretstore.PREVIOUS_KEY_ID),
            secretstore.parse_time(annotations.get(secretstore.SWITCHED_AT)),
        )

    async def _confirm_served(self, stored: StoredSecret, now: datetime) -> None:
        served = stored.annotations.get(secretstore.KEY_ID)
        written = secretstore.parse_time(stored.annotations.get(secretstore.ISSUED_AT))
        if self.certificate:
            await self.keys.confirm(served, written, now, self.where)
            return
        if served is None or any(p.key_id == served for p in self.passwords):
            return
        if _recent(written, now):
            fresh = await self.keys.refresh()
            self.passwords = list(fresh.passwords) if fresh is not None else self.passwords
            if not any(p.key_id == served for p in self.passwords):
                raise not_visible(f"client secret {served}, which {self.where} serves,")

    async def issue(
        self, view: View, now: datetime, not_before: datetime, not_after: datetime
    ) -> str:
        """Register a new credential and write it to the Secret in the same step: its
        secret half exists nowhere else. If the write fails, the registered key has no
        holder and the next pass removes it."""
        label = secretstore.key_display_name(self.owner.namespace, self.owner.name, not_after)
        if self.certificate:
            issued = issue_self_signed(subject_of(self.owner), not_before, not_after)
            key_id = str(uuid.uuid4())
            await self.keys.add(key_id, label, issued.der, not_before, not_after)
            data = secretstore.certificate_data(self.identity, issued.cert_pem, issued.key_pem)
            what = f"certificate {issued.thumbprint}"
        else:
            password, text = await self.deps.graph.add_password(
                self.app.object_id, label, not_after
            )
            self.passwords.append(password)
            key_id = password.key_id
            data = secretstore.client_secret_data(self.identity, text)
            # Not even Entra's hint (the secret's first characters) leaves the Secret.
            what = "client secret"
        previous = _still_valid(view, now)
        await self.deps.cluster.put_secret(
            self.owner.namespace,
            self.name,
            data=data,
            labels={
                secretstore.OWNER_LABEL: self.owner.uid,
                secretstore.MANAGED_BY_LABEL: secretstore.MANAGED_BY,
            },
            annotations=secretstore.rotation_annotations(key_id, previous, now),
            current=self.stored,
        )
        if self.certificate:
            await self.keys.verify(key_id, self.where)
        return f"{what} (key {key_id})"

    async def switch(self, view: View, key_id: str, now: datetime) -> None:
        raise AssertionError("a Secret cannot switch to a key it does not hold")

    async def remove(self, key_id: str) -> None:
        if self.certificate:
            await self.keys.remove(key_id)
        else:
            await self.deps.graph.remove_password(self.app.object_id, key_id)
            self.passwords = [p for p in self.passwords if p.key_id != key_id]

    async def forget_previous(self) -> None:
        if self.stored is not None:
            await self.deps.cluster.annotate_secret(
                self.owner.namespace,
                self.name,
                {secretstore.PREVIOUS_KEY_ID: None, secretstore.SWITCHED_AT: None},
            )

    async def cancel(self) -> str | None:
        return None  # a Secret's credential is issued in one step: nothing is left open

    async def delete(self) -> str | None:
        stored = await self.deps.cluster.get_secret(self.owner.namespace, self.name)
        if stored is None or stored.labels.get(secretstore.OWNER_LABEL) != self.owner.uid:
            return None
        await self.deps.cluster.delete_secret(self.owner.namespace, self.name)
        return f"Deleted Secret {self.name}"


def subject_of(owner: Owner) -> str:
    """Common name of the certificates issued for a WorkloadIdentity."""
    return f"aml-identity {owner.namespace}/{owner.name}"


def _still_valid(view: View, now: datetime) -> str | None:
    active = next((k for k in view.keys if k.key_id == view.active), None)
    return view.active if active is not None and active.not_after > now else None


@dataclass
class VaultStore:
    """A Key Vault certificate; its private key never leaves the vault."""

    deps: Deps
    owner: Owner
    app: Application
    vault_url: str
    name: str
    keys: AppKeys = field(init=False)
    _current: VaultCertificate | None = None  # as the last read() saw them
    _pending: PendingRequest | None = None

    @property
    def kind(self) -> str:
        return "Certificate"

    def __post_init__(self) -> None:
        self.keys = AppKeys(self.deps, self.app, list(self.app.keys))

    @property
    def where(self) -> str:
        return f"Key Vault certificate {self.name} in {self.vault_url}"

    @property
    def location(self) -> dict[str, str]:
        return {"vaultUrl": self.vault_url, "certificateName": self.name}

    def _owner_tags(self) -> dict[str, str]:
        o = self.owner
        return ownership_tags(o.cluster_id, "WorkloadIdentity", o.namespace, o.name, o.uid)

    async def read(self, now: datetime) -> View:
        vault = self.deps.vault
        current = self._current = await vault.current(self.vault_url, self.name)
        pending = self._pending = await vault.pending(self.vault_url, self.name)
        tags = current.tags if current else (self._owner_tags() if pending else {})
        if (current or pending) and tags.get("aml-identity.uid") != self.owner.uid:
            raise NotOwnedError(f"{self.where} exists and was not created by this WorkloadIdentity")
        if current is not None:
            written = secretstore.parse_time(tags.get(secretstore.ISSUED_AT))
            await self.keys.confirm(tags.get(secretstore.KEY_ID), written, now, self.where)
        served = self.keys.by_thumbprint(thumbprint(current.der)) if current else None
        switchable: frozenset[str] = frozenset()
        if pending is not None:
            # Keys already certified for the open request: a merge would serve them.
            switchable = frozenset(
                k.key_id
                for k in self.keys.managed()
                if k.der and same_public_key(k.der, pending.csr)
            )
        return _view(
            self.keys.managed(),
            served,
            tags.get(secretstore.PREVIOUS_KEY_ID),
            secretstore.parse_time(tags.get(secretstore.SWITCHED_AT)),
            switchable,
        )

    async def issue(
        self, view: View, now: datetime, not_before: datetime, not_after: datetime
    ) -> str:
        vault = self.deps.vault
        pending = self._pending or await vault.request(
            self.vault_url,
            self.name,
            subject_of(self.owner),
            self._owner_tags(),
        )
        der = certificate_for_request(
            pending.csr,
            subject_of(self.owner),
            not_before,
            not_after,
        )
        key_id = str(uuid.uuid4())
        label = secretstore.key_display_name(self.owner.namespace, self.owner.name, not_after)
        await self.keys.add(key_id, label, der, not_before, not_after)
        # Merged only once Graph shows the key: a workload never fetches a certificate
        # Entra might not accept yet. Until then the request stays open, and the next pass
        # finds the key certified for it and merges it (a switch).
        await self.keys.verify(key_id, self.where)
        await self._merge(key_id, der, _still_valid(view, now), now)
        return f"certificate {thumbprint(der)} (key {key_id})"

    async def switch(self, view: View, key_id: str, now: datetime) -> None:
        key = next(k for k in self.keys.keys if k.key_id == key_id)
        assert key.der is not None
        await self._merge(key_id, key.der, _still_valid(view, now), now)

    async def _merge(self, key_id: str, der: bytes, previous: str | None, now: datetime) -> None:
        facts = {
            k: v
            for k, v in secretstore.rotation_annotations(key_id, previous, now).items()
            if v is not None
        }
        await self.deps.vault.merge(self.vault_url, self.name, der, self._owner_tags() | facts)

    async def remove(self, key_id: str) -> None:
        await self.keys.remove(key_id)

    async def forget_previous(self) -> None:
        current = self._current
        if current is None:
            return
        tags = {
            k: v
            for k, v in current.tags.items()
            if k not in (secretstore.PREVIOUS_KEY_ID, secretstore.SWITCHED_AT)
        }
        await self.deps.vault.set_tags(self.vault_url, self.name, current.version, tags)

    async def delete(self) -> str | None:
        current = await self.deps.vault.current(self.vault_url, self.name)
        if current is None:
            # Never merged (issuing stopped half-way): only the request is left.
            return await self.cancel()
        if current.tags.get("aml-identity.uid") != self.owner.uid:
            return None
        await self.deps.vault.delete(self.vault_url, self.name)
        return f"Deleted {self.where}"

    async def cancel(self) -> str | None:
        """Close a signing request a rotation left open (it will never be merged now):
        Key Vault would otherwise keep its key pair waiting."""
        if await self.deps.vault.pending(self.vault_url, self.name) is None:
            return None
        await self.deps.vault.cancel(self.vault_url, self.name)
        return f"Cancelled the open certificate request of {self.where}"
