"""Issuing a recipient an S/MIME certificate from the organisation's own CA, handed over as a PKCS#12 file.

The private key exists only inside the PKCS#12 file, encrypted (PBES2, AES-256, SHA-256 MAC) with a
passphrase that travels by another way than the file (the confirmation page shows the passphrase once,
the file goes by mail); postbud keeps the certificate, never the key or the passphrase.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from delivery.key_offer import IssuingCa

# no 0/o, 1/l/i: a passphrase people read off a screen and type into a mail client
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class IssuingError(Exception):
    """The organisation's CA cannot issue (files missing or unreadable); the message says which."""


@dataclass(frozen=True)
class IssuedIdentity:
    cert_pem: bytes
    pkcs12: bytes
    passphrase: str  # shown once; stored nowhere
    expires_at: dt.datetime


def new_passphrase(groups: int = 5) -> str:
    """Five groups of five letters and digits: about 122 bits, typed without ambiguity."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(groups))


_SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


def load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, _SigningKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise IssuingError(f"the organisation's CA cannot be read ({cert_path}, {key_path}): "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey,
                            ed448.Ed448PrivateKey)):
        raise IssuingError(f"{key_path}: the CA key must be RSA, EC or EdDSA")
    return cert, key


def load_issuing_ca(cert_path: Path | None, crl_path: Path | None) -> IssuingCa | None:
    """The CA and its CRL for checking uploads; None when the organisation names no CA."""
    if cert_path is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        crl = x509.load_pem_x509_crl(crl_path.read_bytes()) if crl_path is not None else None
    except (OSError, ValueError) as exc:
        raise IssuingError(f"the organisation's CA or CRL cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    return IssuingCa(cert, crl)


def smime_certificate(public_key: rsa.RSAPublicKey, subject: x509.Name, email: str, *, issuer: x509.Name,
                      signer: _SigningKey, now: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    """An S/MIME encryption certificate for `email` (keyEncipherment, emailProtection), signed by
    `signer` in `issuer`'s name (the subject itself for a self-signed one)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        .sign(signer, None if isinstance(signer, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
              else hashes.SHA256())
    )


def issue_smime(ca_cert: x509.Certificate, ca_key: _SigningKey, *, name: str, email: str, days: int,
                now: dt.datetime, organisation: str) -> IssuedIdentity:
    """A new RSA key and certificate for `email` (keyEncipherment, emailProtection), as PKCS#12."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])
    cert = smime_certificate(key.public_key(), subject, email, issuer=ca_cert.subject, signer=ca_key, now=now,
                             not_after=min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
    passphrase = new_passphrase()
    protection = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(200_000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                  .hmac_hash(hashes.SHA256())
                  .build(passphrase.encode("ascii")))
    bundle = pkcs12.serialize_key_and_certificates(email.encode("utf-8"), key, cert, [ca_cert], protection)
    return IssuedIdentity(cert.public_bytes(serialization.Encoding.PEM), bundle, passphrase,
                          cert.not_valid_after_utc)
