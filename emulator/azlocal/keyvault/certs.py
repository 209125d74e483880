"""Issue a self-signed certificate from a Key Vault certificate policy (`Self` issuer)."""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import hashlib
import ipaddress
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .model import CertificateVersion

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
RSA_SIZES = (2048, 3072, 4096)
CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_NAME_OIDS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
}
_KEY_USAGES = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
    "encipherOnly": "encipher_only",
    "decipherOnly": "decipher_only",
}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def pkcs8_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class PolicyError(ValueError):
    """The policy cannot be issued; the message is Key Vault's BadParameter text."""


def parse_subject(subject: str) -> x509.Name:
    attributes = []
    for part in (p.strip() for p in subject.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        oid = _NAME_OIDS.get(key.strip().upper())
        if not sep or oid is None or not value.strip():
            raise PolicyError(f"Invalid subject name: '{subject}'.")
        attributes.append(x509.NameAttribute(oid, value.strip()))
    if not attributes:
        raise PolicyError(f"Invalid subject name: '{subject}'.")
    return x509.Name(attributes)


def add_months(start: dt.datetime, months: int) -> dt.datetime:
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def new_key(key_props: dict[str, Any]) -> PrivateKey:
    kty = str(key_props.get("kty") or "RSA")
    if kty in ("RSA", "RSA-HSM"):
        size = int(key_props.get("key_size") or 2048)
        if size not in RSA_SIZES:
            raise PolicyError(f"The key size {size} is not supported for key type {kty}.")
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if kty in ("EC", "EC-HSM"):
        curve = CURVES.get(str(key_props.get("crv") or "P-256"))
        if curve is None:
            raise PolicyError(f"The curve {key_props.get('crv')} is not supported.")
        return ec.generate_private_key(curve)
    raise PolicyError(f"The key type {kty} is not supported for certificates.")


def _extensions(
    builder: x509.CertificateBuilder, x509_props: dict[str, Any], key: PrivateKey
) -> x509.CertificateBuilder:
    sans = x509_props.get("sans") or {}
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.get("dns_names") or []]
    names += [x509.RFC822Name(e) for e in sans.get("emails") or []]
    names += [x509.UniformResourceIdentifier(u) for u in sans.get("uris") or []]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in sans.get("ipAddresses") or []]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    usages = x509_props.get("key_usage")
    if usages is None:
        usages = (
            ["digitalSignature", "keyEncipherment"]
            if isinstance(key, rsa.RSAPrivateKey)
            else ["digitalSignature"]
        )
    flags = dict.fromkeys(_KEY_USAGES.values(), False)
    for usage in usages:
        if usage in _KEY_USAGES:
            flags[_KEY_USAGES[usage]] = True
    builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    ekus = x509_props.get("ekus")
    if ekus is None:
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH.dotted_string]
        ekus.append(ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string)
    if ekus:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.ObjectIdentifier(e) for e in ekus]), critical=False
        )
    return builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )


def issue_self_signed(policy: dict[str, Any], now: float) -> tuple[CertificateVersion, str]:
    """A new version issued under `policy`, and its CSR (DER, base64)."""
    key_props = policy.get("key_props") or {}
    x509_props = policy.get("x509_props") or {}
    subject_text = x509_props.get("subject") or ""
    sans = x509_props.get("sans") or {}
    if not subject_text and not any(sans.get(k) for k in ("dns_names", "emails", "upns", "uris")):
        raise PolicyError("Either subject or subject alternative names must be provided.")
    subject = parse_subject(subject_text) if subject_text else x509.Name([])
    key = new_key(key_props)
    months = int(x509_props.get("validity_months") or 12)
    start = dt.datetime.fromtimestamp(int(now), dt.UTC)
    end = add_months(start, months)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    cert = _extensions(builder, x509_props, key).sign(key, hashes.SHA256())
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    version = CertificateVersion(
        version=uuid.uuid4().hex,
        created=now,
        not_before=start.timestamp(),
        expires=end.timestamp(),
        cer_b64=base64.b64encode(der).decode(),
        key_pem=pkcs8_pem(key),
        policy=policy,
    )
    return version, base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def request_for_unknown_issuer(
    policy: dict[str, Any], now: float
) -> tuple[CertificateVersion, str]:
    """A key and a signing request only; the certificate comes later with a merge."""
    key_props = policy.get("key_props") or {}
    subject_text = (policy.get("x509_props") or {}).get("subject") or ""
    if not subject_text:
        raise PolicyError("Either subject or subject alternative names must be provided.")
    key = new_key(key_props)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(parse_subject(subject_text))
        .sign(key, hashes.SHA256())
    )
    placeholder = CertificateVersion(
        version=uuid.uuid4().hex,
        created=now,
        not_before=now,
        expires=now,
        cer_b64="",
        key_pem=pkcs8_pem(key),
        policy=policy,
    )
    return placeholder, base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def merged(pending: CertificateVersion, der: bytes, now: float) -> CertificateVersion:
    """The pending version completed with a certificate for its key."""
    cert = x509.load_der_x509_certificate(der)
    key = serialization.load_pem_private_key(pending.key_pem.encode(), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise PolicyError("Public key from x509 certificate and key of this instance doesn't match")
    return CertificateVersion(
        version=pending.version,
        created=now,
        not_before=cert.not_valid_before_utc.timestamp(),
        expires=cert.not_valid_after_utc.timestamp(),
        cer_b64=base64.b64encode(der).decode(),
        key_pem=pending.key_pem,
        policy=pending.policy,
    )


def x5t(der_b64: str) -> str:
    """SHA-1 thumbprint of the DER certificate, base64url without padding (Key Vault's x5t)."""
    digest = hashlib.sha1(base64.b64decode(der_b64)).digest()  # noqa: S324 (x5t is SHA-1)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secret_value(version: CertificateVersion, content_type: str, exportable: bool) -> str:
    """The secret view: PEM (key + certificate) or PKCS#12 (base64, no password).

    A non-exportable key is never released: the value then holds the certificate only,
    as Key Vault does.
    """
    cert = x509.load_der_x509_certificate(base64.b64decode(version.cer_b64))
    key = (
        serialization.load_pem_private_key(version.key_pem.encode(), password=None)
        if exportable
        else None
    )
    if content_type == PEM:
        text = ""
        if key is not None:
            text += version.key_pem
        return text + cert.public_bytes(serialization.Encoding.PEM).decode()
    blob = pkcs12.serialize_key_and_certificates(
        None,
        key,  # type: ignore[arg-type]
        cert,
        None,
        serialization.NoEncryption(),
    )
    return base64.b64encode(blob).decode()
