"""Checks on a key a recipient uploads on the confirmation page: an S/MIME certificate (PEM or DER) or an
OpenPGP public key, refused with one line (in Danish, the page's language) and a reason code.

Checked: it is readable and public only; valid today; usable for encryption (S/MIME keyEncipherment
and, when it has an extended key usage, emailProtection; OpenPGP a live, unrevoked encryption
subkey); it names the recipient's address (certificate subjectAltName/emailAddress, OpenPGP user
id); it is not revoked (an OpenPGP revocation; for a certificate the organisation's CA issued, that
CA's CRL when configured). Delivery checks the same key again before every send (keys.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

import pysequoia
from pysequoia.packet import PacketPile, Tag
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from delivery.keys import check_pgp_key, check_smime_cert, smime_cert_addresses, usage_problem
from delivery.recipients import KeyKind

MAX_KEY_BYTES = 256 * 1024  # a public key or certificate chain is a few KB; anything larger is not one


class Refusal(StrEnum):
    """Why a key was refused: what a test (and the trace) can tell apart."""

    UNREADABLE = "unreadable"
    SECRET = "secret"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    USAGE = "usage"
    ADDRESS = "address"
    REVOKED = "revoked"
    UNTRUSTED = "untrusted"


class KeyRefused(Exception):
    """The uploaded key cannot be used; `str()` is the one line the page shows."""

    def __init__(self, code: Refusal, text: str) -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class OfferedKey:
    """A key that passed every check: what the onboarding row stores."""

    kind: KeyKind
    data: bytes  # a PEM certificate, or the OpenPGP public key as given
    fingerprint: str  # SHA-256 of `data`, what approval binds
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class IssuingCa:
    """The organisation's own CA as far as uploads are concerned: whose CRL to consult."""

    cert: x509.Certificate
    crl: x509.CertificateRevocationList | None


def check_offered_key(data: bytes, email: str, *, now: dt.datetime, trust_store: bytes | None = None,
                      ca: IssuingCa | None = None) -> OfferedKey:
    """The key in `data` if it may be encrypted to for `email`; KeyRefused otherwise."""
    if not data.strip():
        raise KeyRefused(Refusal.UNREADABLE, "Filen er tom.")
    if len(data) > MAX_KEY_BYTES:
        raise KeyRefused(Refusal.UNREADABLE, "Filen er for stor til at være en offentlig nøgle.")
    if b"PRIVATE KEY" in data or b"PGP PRIVATE KEY BLOCK" in data:
        raise KeyRefused(Refusal.SECRET, "Filen indeholder en privat nøgle; send kun den offentlige del.")
    certs = _certificates(data)
    if certs is not None:
        return _check_certificate(certs, email, now=now, trust_store=trust_store, ca=ca)
    return _check_pgp(data, email, now=now)


def _certificates(data: bytes) -> list[x509.Certificate] | None:
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            raise KeyRefused(Refusal.UNREADABLE, "Certifikatet kan ikke læses (beskadiget PEM).") from None
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return None  # not DER either: perhaps OpenPGP


def _check_certificate(chain: list[x509.Certificate], email: str, *, now: dt.datetime,
                       trust_store: bytes | None, ca: IssuingCa | None) -> OfferedKey:
    cert = chain[0]
    if now < cert.not_valid_before_utc:
        raise KeyRefused(Refusal.NOT_YET_VALID, f"Certifikatet gælder først fra {cert.not_valid_before_utc:%Y-%m-%d}.")
    if now >= cert.not_valid_after_utc:
        raise KeyRefused(Refusal.EXPIRED, f"Certifikatet udløb {cert.not_valid_after_utc:%Y-%m-%d}.")
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise KeyRefused(Refusal.USAGE, "Kun RSA-certifikater kan bruges til krypteret e-mail her.")
    if usage_problem(cert) is not None:
        raise KeyRefused(Refusal.USAGE, "Certifikatet må ikke bruges til kryptering af e-mail "
                                        "(keyEncipherment eller emailProtection mangler).")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    named = smime_cert_addresses(pem)
    if email.lower() not in named:
        shown = ", ".join(sorted(named)) or "ingen adresse"
        raise KeyRefused(Refusal.ADDRESS, f"Certifikatet er udstedt til {shown}, ikke til {email}.")
    if ca is not None and ca.crl is not None and cert.issuer == ca.cert.subject:
        if ca.crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise KeyRefused(Refusal.REVOKED, "Certifikatet er tilbagekaldt af organisationens CA.")
    status = check_smime_cert(pem, trust_store=trust_store, now=now)
    if not status.valid:
        raise KeyRefused(Refusal.UNTRUSTED, f"Certifikatet kan ikke godkendes: {status.reason}.")
    return OfferedKey(KeyKind.SMIME, pem, hashlib.sha256(pem).hexdigest(), cert.not_valid_after_utc)


_ADDRESS = re.compile(r"<([^<>\s]+@[^<>\s]+)>|([^<>\s]+@[^<>\s]+)")


def _check_pgp(data: bytes, email: str, *, now: dt.datetime) -> OfferedKey:
    try:
        cert = pysequoia.Cert.from_bytes(data)
        packets = list(PacketPile.from_bytes(data))
    except (RuntimeError, ValueError):
        raise KeyRefused(Refusal.UNREADABLE, "Filen er hverken et S/MIME-certifikat (PEM/DER) eller en "
                                             "offentlig OpenPGP-nøgle.") from None
    if any(p.tag in (Tag.SecretKey, Tag.SecretSubkey) for p in packets):
        raise KeyRefused(Refusal.SECRET, "Filen indeholder en privat nøgle; send kun den offentlige del.")
    if cert.is_revoked:
        raise KeyRefused(Refusal.REVOKED, "OpenPGP-nøglen er tilbagekaldt.")
    if cert.expiration is not None and now >= cert.expiration:
        raise KeyRefused(Refusal.EXPIRED, f"OpenPGP-nøglen udløb {cert.expiration:%Y-%m-%d}.")
    addresses = {m.group(1) or m.group(2) for uid in cert.user_ids for m in _ADDRESS.finditer(str(uid))}
    if email.lower() not in {a.lower() for a in addresses}:
        shown = ", ".join(sorted(addresses)) or "ingen adresse"
        raise KeyRefused(Refusal.ADDRESS, f"OpenPGP-nøglens bruger-id nævner {shown}, ikke {email}.")
    status = check_pgp_key(data, now=now)
    if not status.valid:
        raise KeyRefused(Refusal.USAGE, "OpenPGP-nøglen har ingen gyldig undernøgle til kryptering "
                                        "(udløbet, tilbagekaldt eller mangler).")
    return OfferedKey(KeyKind.PGP, data, hashlib.sha256(data).hexdigest(), status.expires_at)
