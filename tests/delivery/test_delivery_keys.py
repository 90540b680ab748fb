"""Key checks: S/MIME certificate dates, usage, chain; OpenPGP revocation, expiry, encryption subkey."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pysequoia
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from delivery_testkit import make_smime_cert

from delivery.keys import check_pgp_key, check_recipient_key, check_smime_cert
from delivery.recipients import Recipient

if TYPE_CHECKING:
    from delivery_testkit import Gpg

NOW = dt.datetime.now(dt.UTC)


def test_good_certificate_is_valid_with_days_left(tmp_path: Path) -> None:
    status = check_smime_cert(make_smime_cert(tmp_path, days=40).cert_pem)
    assert status.valid, status.reason
    assert status.days_left in (39, 40)
    assert status.expires_at is not None and status.expires_at > NOW
    assert status.expires_within(60) and not status.expires_within(10)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"days": -1, "not_before_days": -30}, "expired"),
        ({"not_before_days": 2, "days": 30}, "not valid before"),
        ({"key_encipherment": False}, "keyEncipherment"),
        ({"eku": ExtendedKeyUsageOID.SERVER_AUTH}, "emailProtection"),
    ],
)
def test_unusable_certificates_are_invalid(tmp_path: Path, options: dict[str, object],
                                           reason: str) -> None:
    status = check_smime_cert(make_smime_cert(tmp_path, **options).cert_pem)
    assert not status.valid
    assert reason in status.reason


def test_expired_certificate_reports_negative_days(tmp_path: Path) -> None:
    status = check_smime_cert(make_smime_cert(tmp_path, days=10).cert_pem,
                              now=NOW + dt.timedelta(days=20))
    assert not status.valid and status.days_left is not None and status.days_left < 0


def test_non_rsa_certificate_is_invalid() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=9))
            .sign(key, hashes.SHA256()))
    status = check_smime_cert(cert.public_bytes(serialization.Encoding.PEM))
    assert not status.valid and "RSA" in status.reason


def _ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test S/MIME CA")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def test_chain_to_the_trust_store(tmp_path: Path) -> None:
    ca = _ca()
    store = ca[0].public_bytes(serialization.Encoding.PEM)
    issued = make_smime_cert(tmp_path / "issued", issuer=ca)
    assert check_smime_cert(issued.cert_pem, trust_store=store).valid
    stranger = make_smime_cert(tmp_path / "self")
    status = check_smime_cert(stranger.cert_pem, trust_store=store)
    assert not status.valid and "trust store" in status.reason
    assert check_smime_cert(stranger.cert_pem).valid  # no trust store configured: dates+usage only


def test_gpg_made_key_is_valid(gpg: Gpg) -> None:
    status = check_pgp_key(gpg.public_key)
    assert status.valid, status.reason
    assert status.days_left is not None and 700 < status.days_left <= 731


def test_revoked_pgp_key_is_invalid() -> None:
    tsk = pysequoia.Tsk.generate("Revoked <r@example.com>", profile=pysequoia.Profile.RFC4880)
    cert = tsk.extract_certificate()
    assert check_pgp_key(bytes(cert)).valid
    revoked = pysequoia.Cert.from_bytes(bytes(cert) + bytes(cert.revoke(tsk.certifier())))
    status = check_pgp_key(bytes(revoked))
    assert not status.valid and "revoked" in status.reason


def test_expired_pgp_key_is_invalid() -> None:
    tsk = pysequoia.Tsk.generate("Short <s@example.com>", validity_seconds=3600)
    cert = bytes(tsk.extract_certificate())
    assert check_pgp_key(cert).valid
    status = check_pgp_key(cert, now=NOW + dt.timedelta(hours=2))
    assert not status.valid and "expired" in status.reason


def test_pgp_key_without_encryption_subkey_is_invalid(gpg: Gpg) -> None:
    made = gpg.run("--passphrase", "", "--quick-gen-key", "Signer <signer@example.com>",
                   "ed25519", "sign", "1y")
    assert made.returncode == 0, made.stderr
    status = check_pgp_key(gpg.run("--armor", "--export", "signer@example.com").stdout)
    assert not status.valid and "encryption" in status.reason


def test_secret_key_is_refused_as_recipient_key() -> None:
    tsk = pysequoia.Tsk.generate("Oops <oops@example.com>", profile=pysequoia.Profile.RFC4880)
    status = check_pgp_key(bytes(tsk))
    assert not status.valid and "secret" in status.reason


def test_garbage_is_invalid_not_an_exception() -> None:
    assert not check_pgp_key(b"hello").valid
    assert not check_smime_cert(b"hello").valid


def test_check_recipient_key_reads_the_configured_file(tmp_path: Path, gpg: Gpg) -> None:
    (tmp_path / "bob.asc").write_bytes(gpg.public_key)
    smime = make_smime_cert(tmp_path)
    bob = Recipient(id="bob", name="Bob", email="bob@example.com", pgp_key=tmp_path / "bob.asc")
    alice = Recipient(id="alice", name="Alice", email="a@example.com", smime_cert=smime.cert_path)
    nokey = Recipient(id="carl", name="Carl", email="c@example.com")
    missing = Recipient(id="dan", name="Dan", smime_cert=tmp_path / "absent.pem")
    assert check_recipient_key(bob).valid
    assert check_recipient_key(alice).valid
    assert not check_recipient_key(nokey).valid
    assert "cannot read" in check_recipient_key(missing).reason
