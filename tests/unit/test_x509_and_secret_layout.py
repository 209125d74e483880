"""Certificates the operator issues and the Secret layout azure-identity reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from aml_identity.reconcile import secretstore
from aml_identity.reconcile.names import (
    application_unique_name,
    owned_by_list,
    ownership_tag_list,
    ownership_tags,
)
from aml_identity.reconcile.x509 import (
    certificate_for_request,
    issue_self_signed,
    pem_certificate_der,
    thumbprint,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spki(public_key: object) -> bytes:
    assert isinstance(public_key, rsa.RSAPublicKey)
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_self_signed_certificate_matches_its_key_and_window() -> None:
    issued = issue_self_signed("aml-identity ns/app", T0, T0 + timedelta(days=30))
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert spki(cert.public_key()) == spki(key.public_key())
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (T0, T0 + timedelta(days=30))
    assert issued.thumbprint == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    assert pem_certificate_der(issued.cert_pem + issued.key_pem) == issued.der
    assert "PRIVATE" not in repr(issued)
    assert issued.key_pem.decode() not in repr(issued)


def test_certificate_for_a_request_carries_the_requesters_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vault")]))
        .sign(key, hashes.SHA256())
    )
    der = certificate_for_request(
        csr.public_bytes(serialization.Encoding.DER), "ns/app", T0, T0 + timedelta(hours=1)
    )
    cert = x509.load_der_x509_certificate(der)
    assert spki(cert.public_key()) == spki(key.public_key())
    assert thumbprint(der) == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303


def test_a_forged_request_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vault")]))
        .sign(key, hashes.SHA256())
    )
    raw = bytearray(csr.public_bytes(serialization.Encoding.DER))
    raw[-10] ^= 0xFF  # break the signature
    with pytest.raises(ValueError, match="not signed"):
        certificate_for_request(bytes(raw), "x", T0, T0 + timedelta(hours=1))


def test_secret_layout_is_what_azure_identity_reads() -> None:
    who = secretstore.Identity("app-id", "tenant-id", "https://login.example")
    data = secretstore.certificate_data(who, b"CERT\n", b"KEY\n")
    assert data[secretstore.CERTIFICATE_FILE] == b"CERT\nKEY\n"
    assert (data["tls.crt"], data["tls.key"]) == (b"CERT\n", b"KEY\n")
    assert data["AZURE_CLIENT_ID"] == b"app-id"
    assert data["AZURE_TENANT_ID"] == b"tenant-id"
    secret = secretstore.client_secret_data(who, "s3cret")
    assert secret["AZURE_CLIENT_SECRET"] == b"s3cret"


def test_rotation_annotations_round_trip() -> None:
    notes = secretstore.rotation_annotations("new", "old", T0)
    assert notes[secretstore.PREVIOUS_KEY_ID] == "old"
    assert secretstore.parse_time(notes[secretstore.SWITCHED_AT]) == T0
    assert secretstore.rotation_annotations("new", None, T0)[secretstore.PREVIOUS_KEY_ID] is None
    assert secretstore.parse_time("not a time") is None


def test_application_names_and_tags() -> None:
    name = application_unique_name("c1", "ns", "app", "uid-1")
    assert name == application_unique_name("c1", "ns", "app", "uid-1")
    assert name != application_unique_name("c1", "ns", "app", "uid-2")
    tags = ownership_tag_list(ownership_tags("c1", "WorkloadIdentity", "ns", "app", "uid-1"))
    assert owned_by_list(tags, "uid-1")
    assert not owned_by_list(tags, "uid-2")
    assert not owned_by_list([t for t in tags if "managed-by" not in t], "uid-1")
    label = secretstore.key_display_name("ns", "app", T0)
    assert secretstore.is_managed_key(label)
    assert not secretstore.is_managed_key("manual key")
