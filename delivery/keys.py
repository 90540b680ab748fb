"""Key checks at approval and before every send: can this certificate or OpenPGP key be encrypted to?"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pysequoia
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from pysequoia.packet import Packet, PacketPile, SignatureType, Tag

from delivery.recipients import KeyKind, Recipient

_ENCRYPTING_EKUS = {ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}


@dataclass(frozen=True)
class KeyStatus:
    """The verdict on one key: usable or not, why, and when it stops being usable."""

    valid: bool
    reason: str
    expires_at: dt.datetime | None
    days_left: int | None

    def expires_within(self, days: int) -> bool:
        """True when the key is valid today but expires in fewer than `days` days (warn the operator)."""
        return self.valid and self.days_left is not None and self.days_left < days


def check_recipient_key(recipient: Recipient, *, trust_store: Path | None = None,
                        now: dt.datetime | None = None, key: bytes | None = None) -> KeyStatus:
    """Check whatever key material the recipient has (`key`: the one they uploaded, when the file
    names none); no key at all is not valid."""
    kind, path = recipient.key_kind, recipient.key_path
    if kind is None or (path is None and key is None):
        return KeyStatus(False, "no key material (smime_cert or pgp_key)", None, None)
    try:
        data = path.read_bytes() if path is not None else key or b""
    except OSError as exc:
        return KeyStatus(False, f"cannot read {path}: {exc.strerror}", None, None)
    if kind is KeyKind.SMIME:
        anchors = trust_store.read_bytes() if trust_store is not None else None
        return check_smime_cert(data, trust_store=anchors, now=now)
    return check_pgp_key(data, now=now)


def check_smime_cert(cert_pem: bytes, *, trust_store: bytes | None = None,
                     now: dt.datetime | None = None) -> KeyStatus:
    """Validity dates, encryption key usage, RSA key (what the envelope builder supports), chain."""
    when = now or dt.datetime.now(dt.UTC)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        return KeyStatus(False, "not a PEM certificate", None, None)
    cert, intermediates = chain[0], chain[1:]
    expires = cert.not_valid_after_utc

    def bad(reason: str) -> KeyStatus:
        return KeyStatus(False, reason, expires, _days_left(expires, when))

    if when < cert.not_valid_before_utc:
        return bad(f"certificate not valid before {cert.not_valid_before_utc.isoformat()}")
    if when >= expires:
        return bad(f"certificate expired {expires.isoformat()}")
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        return bad("only RSA certificates can be encrypted to (CMS key transport)")
    reason = usage_problem(cert)
    if reason:
        return bad(reason)
    if trust_store is not None:
        try:
            anchors = x509.load_pem_x509_certificates(trust_store)
        except ValueError:
            return bad("trust store is not a PEM certificate bundle")
        verifier = (
            PolicyBuilder()
            .store(Store(anchors))
            .time(when)
            # S/MIME leaves carry emailProtection, not the TLS EKUs the default policy wants;
            # usage was checked above.
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            verifier.verify(cert, intermediates)
        except VerificationError as exc:
            return bad(f"certificate does not chain to the trust store: {exc}")
    return KeyStatus(True, "ok", expires, _days_left(expires, when))


def smime_cert_addresses(cert_pem: bytes) -> set[str]:
    """The e-mail addresses a certificate names (subjectAltName rfc822Name, subject emailAddress),
    lower-cased; empty when it names none or is unreadable."""
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except (ValueError, IndexError):
        return set()
    names = {str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.EMAIL_ADDRESS)}
    try:
        names.update(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                     .get_values_for_type(x509.RFC822Name))
    except x509.ExtensionNotFound:
        pass
    return {n.strip().lower() for n in names}


def usage_problem(cert: x509.Certificate) -> str | None:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    # RSA key transport needs keyEncipherment; keyAgreement is what an (EC)DH key would need.
    if ku is not None and not (ku.key_encipherment or ku.key_agreement):
        return "key usage allows neither keyEncipherment nor keyAgreement"
    if ku is not None and isinstance(cert.public_key(), rsa.RSAPublicKey) and not ku.key_encipherment:
        return "RSA certificate without keyEncipherment key usage"
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not _ENCRYPTING_EKUS.intersection(eku):
        return "extended key usage does not include emailProtection"
    return None


def check_pgp_key(key: bytes, *, now: dt.datetime | None = None) -> KeyStatus:
    """Primary key not revoked or expired, and a live encryption-capable (sub)key."""
    when = now or dt.datetime.now(dt.UTC)
    try:
        cert = pysequoia.Cert.from_bytes(key)
        packets = list(PacketPile.from_bytes(key))
    except (RuntimeError, ValueError) as exc:  # pysequoia's parse errors
        return KeyStatus(False, f"not an OpenPGP certificate: {first_line(exc)}", None, None)
    expires = cert.expiration
    days = _days_left(expires, when) if expires else None
    if any(p.tag in (Tag.SecretKey, Tag.SecretSubkey) for p in packets):
        # a secret key in the recipients' key folder is a leak waiting to happen
        return KeyStatus(False, "file holds secret key material; give the public key only",
                         expires, days)
    if cert.is_revoked:
        return KeyStatus(False, "OpenPGP key is revoked", expires, days)
    if expires is not None and when >= expires:
        return KeyStatus(False, f"OpenPGP key expired {expires.isoformat()}", expires, days)
    sub_expires = _encryption_key_expiry(packets, when)
    if sub_expires is False and _primary_encrypts(packets):
        sub_expires = None  # the primary key itself encrypts; it lives as long as the cert
    if sub_expires is False:
        return KeyStatus(False, "no live encryption-capable subkey", expires, days)
    if isinstance(sub_expires, dt.datetime) and (expires is None or sub_expires < expires):
        expires, days = sub_expires, _days_left(sub_expires, when)
    return KeyStatus(True, "ok", expires, days)


def _encryption_key_expiry(packets: list[Packet],
                           when: dt.datetime) -> dt.datetime | None | bool:
    """The latest expiry among live encryption-capable subkeys; None: one never expires; False: none."""
    best: dt.datetime | None | bool = False
    for created, binding, revoked in _subkeys(packets):
        if revoked or binding is None:
            continue
        flags = binding.key_flags
        if flags is None or not (flags.transport_encryption or flags.storage_encryption):
            continue
        period = binding.key_validity_period
        expiry = created + period if (created is not None and period) else None
        if expiry is not None and when >= expiry:
            continue
        if expiry is None:
            return None
        if best is False or (isinstance(best, dt.datetime) and expiry > best):
            best = expiry
    return best


def _primary_encrypts(packets: list[Packet]) -> bool:
    """Whether the primary key's self-signatures allow encryption (old RSA "SCEA" keys)."""
    for p in packets:
        if p.tag == Tag.PublicSubkey:
            return False
        flags = p.key_flags if p.tag == Tag.Signature else None
        if flags is not None and (flags.transport_encryption or flags.storage_encryption):
            return True
    return False


def _subkeys(packets: list[Packet]
             ) -> list[tuple[dt.datetime | None, Packet | None, bool]]:
    """(creation, newest binding signature, revoked) per subkey, read from the packet stream."""
    out: list[tuple[dt.datetime | None, Packet | None, bool]] = []
    idx: int | None = None
    for p in packets:
        if p.tag == Tag.PublicSubkey:
            idx = len(out)
            out.append((p.key_created, None, False))
        elif p.tag in (Tag.PublicKey, Tag.UserID, Tag.UserAttribute):
            idx = None
        elif p.tag == Tag.Signature and idx is not None:
            created, binding, revoked = out[idx]
            if p.signature_type == SignatureType.SubkeyRevocation:
                revoked = True
            elif p.signature_type == SignatureType.SubkeyBinding and (
                binding is None
                or (p.signature_created or _EPOCH) >= (binding.signature_created or _EPOCH)
            ):
                binding = p
            out[idx] = (created, binding, revoked)
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def first_line(exc: BaseException) -> str:
    """An exception's message without the Rust backtrace pysequoia may append to it."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _days_left(expires: dt.datetime, when: dt.datetime) -> int:
    return (expires - when).days
