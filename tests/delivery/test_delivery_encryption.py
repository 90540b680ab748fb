"""S/MIME and PGP/MIME output decrypts with the real openssl and gpg tools to the original documents."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import os
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from delivery.envelope import Cover, base64_lines, build_inner
from delivery.errors import EncryptionError
from delivery.outer import WireMessage
from delivery.pgp import encrypt_pgp
from delivery.smime import encrypt_smime
from core.domain import File

if TYPE_CHECKING:
    from delivery_testkit import Gpg, SmimeRecipient

PDF = b"%PDF-1.7\n" + os.urandom(200_000) + b"\n%%EOF\n"
TEXT = "Kære kunde,\r\nlinje to\nlinje tre uden CR".encode()  # mixed line ends must survive
FILES = (
    File("Årsopgørelse 2025.pdf", "application/pdf", PDF),
    File("bilag.txt", "text/plain", TEXT),
    File("data.bin", "application/octet-stream", bytes(range(256)) * 4),
)
RECEIVED = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


def inner_message(message_id: str = "<outbox-42@postbud.example>") -> bytes:
    return build_inner(
        from_addr="postbud <postbud@example.com>", to_addrs=["Alice <alice@example.com>"],
        message_id=message_id, date=RECEIVED,
        cover=Cover(sender="Skattestyrelsen", title="Årsopgørelse 2025", received_at=RECEIVED,
                    trace_id="tt-0042"),
        files=FILES,
    )


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def assert_wire_ready(outer: bytes) -> None:
    """What WireMessage promises the SMTP sender: canonical CRLF, no line starting with a dot."""
    assert isinstance(outer, WireMessage)
    assert outer.count(b"\r\n") == outer.count(b"\n") == outer.count(b"\r")
    assert not outer.startswith(b".") and outer.find(b"\r\n.") == -1
    assert outer.endswith(b"\r\n")


def assert_documents(inner: bytes) -> None:
    msg = parse(inner)
    got = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
           for p in msg.iter_attachments()]
    assert got == [(f.name, f.media_type, f.content) for f in FILES]


def test_inner_message_has_cover_and_documents_but_no_letter_text() -> None:
    msg = parse(inner_message())
    assert msg["Message-ID"] == "<outbox-42@postbud.example>"
    assert msg["Subject"] == "Årsopgørelse 2025"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    cover = body.get_content()
    for expected in ("Skattestyrelsen", "Årsopgørelse 2025", "2026-03-01T09:30:00+00:00", "tt-0042"):
        assert expected in cover
    assert "Kære kunde" not in cover
    assert_documents(inner_message())
    assert b"\n" not in inner_message().replace(b"\r\n", b"")


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 57 * 77, 200_001])
def test_base64_lines_match_the_stdlib_with_crlf(size: int) -> None:
    data = os.urandom(size)
    assert base64_lines(data) == base64.encodebytes(data).replace(b"\n", b"\r\n")


@pytest.mark.parametrize("bad", ["outbox-1@postbud", "<a@b>\r\nBcc: x@y", "<no-at>"])
def test_message_id_must_be_well_formed(bad: str) -> None:
    with pytest.raises(ValueError):
        inner_message(bad)


def test_headers_cannot_be_smuggled_through_the_title() -> None:
    inner = build_inner(from_addr="p@example.com", to_addrs=["a@example.com"],
                        message_id="<x@postbud.example>", date=RECEIVED,
                        cover=Cover("S", "Title\r\nBcc: evil@example.com", RECEIVED, "tt"),
                        files=())
    head = inner.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head
    assert parse(inner)["Bcc"] is None


def test_smime_decrypts_with_openssl_cms(tmp_path: Path, openssl: str,
                                          smime_recipient: SmimeRecipient) -> None:
    # GIVEN an inner message encrypted to Alice's certificate
    inner = inner_message()
    outer = encrypt_smime(inner, smime_recipient.cert_pem)
    assert_wire_ready(outer)
    (tmp_path / "msg.eml").write_bytes(outer)
    # THEN the outer headers leak no title and carry the deterministic Message-ID
    head = parse(outer)
    assert head["Subject"] == "Encrypted message"
    assert head["Message-ID"] == "<outbox-42@postbud.example>"
    assert head.get_content_type() == "application/pkcs7-mime"
    assert head.get_param("smime-type") == "enveloped-data"
    assert outer.find(b"rsopg") == -1 and outer.find(b"Skattestyrelsen") == -1
    # WHEN openssl decrypts it with Alice's private key
    done = subprocess.run(
        [openssl, "cms", "-decrypt", "-binary", "-in", str(tmp_path / "msg.eml"),
         "-recip", str(smime_recipient.cert_path), "-inkey", str(smime_recipient.key_path)],
        capture_output=True, check=False)
    # THEN the inner message comes back byte for byte, documents included
    assert done.returncode == 0, done.stderr
    assert done.stdout == inner
    assert_documents(done.stdout)


def test_smime_uses_aes256(tmp_path: Path, openssl: str, smime_recipient: SmimeRecipient) -> None:
    (tmp_path / "msg.eml").write_bytes(encrypt_smime(b"x\r\n", smime_recipient.cert_pem))
    printed = subprocess.run([openssl, "cms", "-cmsout", "-print", "-in", str(tmp_path / "msg.eml")],
                             capture_output=True, check=True).stdout
    assert b"aes-256-cbc" in printed


def test_smime_refuses_non_rsa_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    with pytest.raises(EncryptionError):
        encrypt_smime(b"x\r\n", cert.public_bytes(serialization.Encoding.PEM))


def test_pgp_mime_decrypts_with_gpg(gpg: Gpg) -> None:
    # GIVEN an inner message encrypted to Bob's gpg-made public key
    inner = inner_message("<outbox-43@postbud.example>")
    outer = encrypt_pgp(inner, gpg.public_key)
    assert_wire_ready(outer)
    # THEN the outer message is RFC 3156 PGP/MIME with generic headers
    msg = parse(outer)
    assert msg.get_content_type() == "multipart/encrypted"
    assert msg.get_param("protocol") == "application/pgp-encrypted"
    assert msg["Subject"] == "Encrypted message"
    assert msg["Message-ID"] == "<outbox-43@postbud.example>"
    version, payload = list(msg.iter_parts())
    assert version.get_content_type() == "application/pgp-encrypted"
    assert b"Version: 1" in version.get_content()
    assert payload.get_content_type() == "application/octet-stream"
    ciphertext = payload.get_content()
    assert isinstance(ciphertext, bytes)
    assert ciphertext.startswith(b"-----BEGIN PGP MESSAGE-----")
    # WHEN gpg decrypts the second part
    done = gpg.run("--decrypt", input=ciphertext)
    # THEN it yields the inner message byte for byte
    assert done.returncode == 0, done.stderr
    assert done.stdout == inner
    assert_documents(done.stdout)


def test_pgp_refuses_garbage_key() -> None:
    with pytest.raises(EncryptionError) as caught:
        encrypt_pgp(b"x\r\n", b"not a key")
    assert "backtrace" not in str(caught.value).lower()  # pysequoia appends one; we drop it
