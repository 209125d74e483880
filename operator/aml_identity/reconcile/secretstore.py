"""The layout of a credential Secret, and the rotation facts it remembers. Pure.

The Secret is written so that azure-identity consumes it as-is: mounted as files (point
AZURE_CLIENT_CERTIFICATE_PATH at client-certificate.pem) and as environment variables
(`envFrom`: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_AUTHORITY_HOST, and
AZURE_CLIENT_SECRET for the secret form). The rotation state lives in the Secret's own
annotations, so it survives a lost status (a restore, a re-created resource).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aml_identity.api import GROUP

CERTIFICATE_FILE = "client-certificate.pem"
OWNER_LABEL = f"{GROUP}/workload-identity-uid"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "aml-identity-operator"
KEY_ID = f"{GROUP}/key-id"
PREVIOUS_KEY_ID = f"{GROUP}/previous-key-id"
SWITCHED_AT = f"{GROUP}/switched-at"
# When the served key was written here: a key registered that recently may still be
# missing from a read of the application (Graph's replicas lag).
ISSUED_AT = f"{GROUP}/issued-at"
KEY_DISPLAY_PREFIX = "aml-identity "  # display names of the keys the operator manages


def key_display_name(namespace: str, name: str, not_after: datetime) -> str:
    return f"{KEY_DISPLAY_PREFIX}{namespace}/{name} until {not_after:%Y-%m-%dT%H:%M:%SZ}"


def is_managed_key(display_name: str) -> bool:
    return display_name.startswith(KEY_DISPLAY_PREFIX)


@dataclass(frozen=True)
class Identity:
    client_id: str
    tenant_id: str
    authority_host: str


def _common(identity: Identity) -> dict[str, bytes]:
    return {
        "AZURE_CLIENT_ID": identity.client_id.encode(),
        "AZURE_TENANT_ID": identity.tenant_id.encode(),
        "AZURE_AUTHORITY_HOST": identity.authority_host.encode(),
    }


def certificate_data(identity: Identity, cert_pem: bytes, key_pem: bytes) -> dict[str, bytes]:
    return {
        **_common(identity),
        CERTIFICATE_FILE: cert_pem + key_pem,
        "tls.crt": cert_pem,
        "tls.key": key_pem,
    }


def client_secret_data(identity: Identity, secret_text: str) -> dict[str, bytes]:
    return {**_common(identity), "AZURE_CLIENT_SECRET": secret_text.encode()}


def rotation_annotations(
    key_id: str, previous: str | None, switched_at: datetime | None
) -> dict[str, str | None]:
    """The Secret's rotation facts, written when it starts serving `key_id` (at
    `switched_at`); None removes a fact that no longer holds."""
    written = switched_at.strftime("%Y-%m-%dT%H:%M:%SZ") if switched_at is not None else None
    if previous and switched_at is not None:
        return {
            KEY_ID: key_id,
            ISSUED_AT: written,
            PREVIOUS_KEY_ID: previous,
            SWITCHED_AT: written,
        }
    return {KEY_ID: key_id, ISSUED_AT: written, PREVIOUS_KEY_ID: None, SWITCHED_AT: None}


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
