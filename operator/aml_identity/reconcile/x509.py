"""X.509 certificates for application credentials (no I/O, clock passed in).

Entra checks only that a client assertion is signed by the key of a registered
certificate that is within its validity: it never builds a chain. So the operator
issues self-signed certificates, and for Key Vault it signs the vault's certificate
request with a throwaway key that is discarded at once.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_SIZE = 2048  # Entra accepts RSA keys of 2048 bits or more


@dataclass(frozen=True)
class Issued:
    """A new certificate and its private key (PEM). The key is for the store only."""

    der: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.der)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def thumbprint(der: bytes) -> str:
    """SHA-1 of the DER certificate, upper-case hex: what Entra and Key Vault show."""
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 (an identifier, not a signature)


def _builder(
    common_name: str, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )


def issue_self_signed(common_name: str, not_before: datetime, not_after: datetime) -> Issued:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    certificate = (
        _builder(common_name, not_before, not_after)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .public_key(key.public_key())
        .sign(key, hashes.SHA256())
    )
    return Issued(
        der=certificate.public_bytes(serialization.Encoding.DER),
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
    )


def certificate_for_request(
    csr_der: bytes, common_name: str, not_before: datetime, not_after: datetime
) -> bytes:
    """A certificate for a key that lives elsewhere (Key Vault): the request's public
    key, signed by a throwaway issuer key. Returns DER."""
    request = x509.load_der_x509_csr(csr_der)
    if not request.is_signature_valid:
        raise ValueError("the certificate signing request is not signed by its own key")
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    certificate = (
        _builder(common_name, not_before, not_after)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} issuer")]))
        .public_key(request.public_key())
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def pem_certificate_der(pem: bytes) -> bytes:
    """The first certificate of a PEM bundle, as DER."""
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def der_to_pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def same_public_key(certificate_der: bytes, csr_der: bytes) -> bool:
    """Does the certificate certify the key of this signing request?"""
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    certificate = x509.load_der_x509_certificate(certificate_der)
    request = x509.load_der_x509_csr(csr_der)
    return certificate.public_key().public_bytes(*spki) == request.public_key().public_bytes(*spki)


@dataclass(frozen=True)
class Serving:
    """A TLS server certificate, its key, and the CA that signed it (for a caBundle)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def serving_certificate(host: str, not_before: datetime, not_after: datetime) -> Serving:
    """A throwaway CA and a server certificate for `host` (a DNS name or an IP), for the
    admission webhook when no certificate is mounted (development, tests, the demo)."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aml-identity webhook CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .public_key(ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Serving(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=leaf.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
    )
