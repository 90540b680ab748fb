"""Helpers shared by the delivery tests (a plain module: conftest.py is not importable by name)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.mailserver import over_tls


@dataclass(frozen=True)
class SmimeRecipient:
    cert_pem: bytes
    cert_path: Path
    key_path: Path


def make_smime_cert(folder: Path, *, name: str = "alice", email: str = "alice@example.com",
                    key_encipherment: bool = True, days: int = 365, not_before_days: int = -1,
                    eku: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.EMAIL_PROTECTION,
                    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
                    ) -> SmimeRecipient:
    """An RSA S/MIME certificate (self-signed unless `issuer`), written as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=not_before_days))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=key_encipherment,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return SmimeRecipient(pem, cert_path, key_path)


@dataclass(frozen=True)
class Gpg:
    """A throwaway GnuPG home holding one recipient's secret key."""

    home: Path
    public_key: bytes
    email: str

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["gpg", "--batch", *args], input=input, capture_output=True,
                              env={**os.environ, "GNUPGHOME": str(self.home)}, timeout=60,
                              check=False)


@dataclass
class RecordingHandler:
    """aiosmtpd handler that records every command it sees and can be told to refuse."""

    ehlo_reply: str | None = None
    mail_reply: str | None = None
    rcpt_reply: str | None = None
    data_reply: str | None = None
    mails: list[str] = field(default_factory=list)
    messages: list[tuple[bytes, bool]] = field(default_factory=list)  # (content, over TLS)
    peers: set[Any] = field(default_factory=set)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        if self.ehlo_reply:
            return [self.ehlo_reply]
        session.host_name = hostname  # aiosmtpd leaves this to a handler that hooks EHLO
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        self.mails.append(address)
        self.peers.add(session.peer)
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.messages.append((envelope.original_content or b"", over_tls(server, session)))
        return "250 queued as test"


@dataclass(frozen=True)
class RunningSmtp:
    port: int
    handler: RecordingHandler
    ca_file: Path


ServeFactory = Callable[..., Awaitable[RunningSmtp]]
