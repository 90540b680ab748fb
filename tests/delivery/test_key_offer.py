"""A key uploaded on the confirmation page: accepted as PEM, DER or OpenPGP; refused with one line and a
reason code when expired, unusable for encryption, for another address, revoked, secret or garbage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pysequoia
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from delivery_testkit import make_smime_cert

from delivery.key_offer import IssuingCa, KeyRefused, Refusal, check_offered_key
from delivery.recipients import KeyKind

NOW = dt.datetime.now(dt.UTC)
EMAIL = "carol@example.com"


def refused(data: bytes, *, email: str = EMAIL, now: dt.datetime = NOW, ca: IssuingCa | None = None) -> KeyRefused:
    with pytest.raises(KeyRefused) as caught:
        check_offered_key(data, email, now=now, ca=ca)
    assert "\n" not in str(caught.value) and str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def carol(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_smime_cert(tmp_path_factory.mktemp("carol"), name="carol", email=EMAIL).cert_pem


def test_a_certificate_is_accepted_as_pem_and_as_der(carol: bytes) -> None:
    offered = check_offered_key(carol, "Carol@Example.com", now=NOW)
    assert offered.kind is KeyKind.SMIME and offered.data == carol
    der = x509.load_pem_x509_certificate(carol).public_bytes(serialization.Encoding.DER)
    as_der = check_offered_key(der, EMAIL, now=NOW)
    # stored as PEM whatever came in, so delivery reads one format
    assert as_der.data == carol and as_der.fingerprint == offered.fingerprint


def test_an_expired_or_not_yet_valid_certificate_is_refused(carol: bytes) -> None:
    assert refused(carol, now=NOW + dt.timedelta(days=400)).code is Refusal.EXPIRED
    assert refused(carol, now=NOW - dt.timedelta(days=3)).code is Refusal.NOT_YET_VALID


@pytest.mark.parametrize("options", [{"key_encipherment": False}, {"eku": ExtendedKeyUsageOID.SERVER_AUTH}])
def test_a_certificate_without_encryption_usage_is_refused(tmp_path: Path, options: dict[str, object]) -> None:
    cert = make_smime_cert(tmp_path, email=EMAIL, **options).cert_pem  # type: ignore[arg-type]
    problem = refused(cert)
    assert problem.code is Refusal.USAGE and "keyEncipherment" in str(problem)


def test_a_certificate_for_another_address_is_refused(tmp_path: Path) -> None:
    problem = refused(make_smime_cert(tmp_path, email="mallory@example.com").cert_pem)
    assert problem.code is Refusal.ADDRESS and "mallory@example.com" in str(problem) and EMAIL in str(problem)


def test_a_certificate_the_organisations_ca_revoked_is_refused(tmp_path: Path) -> None:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test ApS CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
               .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=900))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(ca_key, hashes.SHA256()))
    leaf = make_smime_cert(tmp_path, email=EMAIL, issuer=(ca_cert, ca_key))
    serial = x509.load_pem_x509_certificate(leaf.cert_pem).serial_number

    def crl(*serials: int) -> x509.CertificateRevocationList:
        builder = (x509.CertificateRevocationListBuilder().issuer_name(name).last_update(NOW)
                   .next_update(NOW + dt.timedelta(days=7)))
        for s in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(s).revocation_date(NOW).build())
        return builder.sign(ca_key, hashes.SHA256())

    assert check_offered_key(leaf.cert_pem, EMAIL, now=NOW, ca=IssuingCa(ca_cert, crl(12345))).kind is KeyKind.SMIME
    assert refused(leaf.cert_pem, ca=IssuingCa(ca_cert, crl(serial))).code is Refusal.REVOKED


def _pgp(uid: str = f"Carol <{EMAIL}>", **options: object) -> tuple[pysequoia.Tsk, bytes]:
    tsk = pysequoia.Tsk.generate(uid, profile=pysequoia.Profile.RFC4880, **options)
    return tsk, bytes(tsk.extract_certificate())


def test_an_openpgp_key_is_accepted_armored_and_binary() -> None:
    tsk, public = _pgp()
    assert check_offered_key(public, EMAIL, now=NOW).kind is KeyKind.PGP
    armored = str(tsk.extract_certificate()).encode()
    assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK") and check_offered_key(armored, EMAIL, now=NOW).kind is KeyKind.PGP


def test_openpgp_refusals_expired_revoked_address_secret() -> None:
    _, short = _pgp(validity_seconds=3600)
    assert refused(short, now=NOW + dt.timedelta(hours=2)).code is Refusal.EXPIRED
    tsk, public = _pgp()
    revoked = bytes(pysequoia.Cert.from_bytes(public + bytes(tsk.extract_certificate().revoke(tsk.certifier()))))
    assert refused(revoked).code is Refusal.REVOKED
    assert refused(public, email="someone@example.com").code is Refusal.ADDRESS
    assert refused(bytes(tsk)).code is Refusal.SECRET


def test_an_openpgp_key_without_an_encryption_subkey_is_refused(gpg: object) -> None:
    from delivery_testkit import Gpg

    assert isinstance(gpg, Gpg)
    made = gpg.run("--passphrase", "", "--quick-gen-key", f"Carol <{EMAIL}>", "ed25519", "sign", "1y")
    assert made.returncode == 0, made.stderr
    assert refused(gpg.run("--armor", "--export", EMAIL).stdout).code is Refusal.USAGE


@pytest.mark.parametrize("data", [b"", b"hello, this is not a key", b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
                                  bytes(range(256)) * 4])
def test_garbage_is_refused_not_an_exception(data: bytes) -> None:
    assert refused(data).code is Refusal.UNREADABLE


def test_a_private_key_file_is_refused(tmp_path: Path) -> None:
    made = make_smime_cert(tmp_path, email=EMAIL)
    assert refused(made.key_path.read_bytes() + made.cert_pem).code is Refusal.SECRET
