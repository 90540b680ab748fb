"""The sandbox: a local STARTTLS mail server that keeps what it receives, and demo recipient keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr

import pysequoia
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from delivery.issue import smime_certificate
from sandbox.testca import LocalCA

log = logging.getLogger(__name__)

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# A dot-atom address in angle brackets, then the end or blanks before a visible character other than
# "(" (a comment): what email._header_value_parser.get_angle_addr, aiosmtpd's parser, reads as the
# same address and the same rest
_PLAIN_PATH = re.compile(
    rf"<(?P<address>{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*)>(?:[ \t]+(?=[!-'*-~])|[ \t]*\Z)")


class BulkDataSMTP(SMTP):
    """aiosmtpd's server with a DATA phase that reads the message in bulk, not line by line.

    Stock aiosmtpd spends ~6 µs per line in DATA; an encrypted message with a 200 KB PDF is ~5,000
    base64 lines, which caps it near 40 messages/s and made the test server, not postbud, the
    bottleneck of the sandbox and the bench. Everything else (EHLO, STARTTLS, AUTH, MAIL, RCPT,
    handler hooks) is aiosmtpd's own. Differences: no 1,000-byte line-length check in DATA, and
    EHLO offers PIPELINING (RFC 2920) as postfix and other MTAs do: aiosmtpd reads commands from a
    stream and answers them in order, so a client may send MAIL, RCPT and DATA in one write.
    """

    pipelining = True
    _offer_pipelining = False
    _replies = b""

    async def smtp_EHLO(self, hostname: str) -> None:
        self._offer_pipelining = self.pipelining
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._offer_pipelining = False

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd's push, except that a 250 reply waits while a pipelined next command is already read.

        RFC 2920 §3.2 lets a server hold replies until it would wait for input; held here only
        while the reader holds a whole next line, whose handling always pushes its own reply, so
        a pipelined MAIL, RCPT, DATA is answered in one TLS record and one send instead of three.
        """
        line = status if isinstance(status, str) else status.decode("ascii", "replace")
        response = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") if isinstance(status, str) else status
        replies = self._replies + response + b"\r\n"
        if self._offer_pipelining and line.startswith("250-"):
            # right after EHLO's first line (a hook that refuses EHLO answers with no "250-" line)
            self._offer_pipelining = False
            replies += b"250-PIPELINING\r\n"
        # aiosmtpd reads its StreamReader's buffer too (connection_made after STARTTLS)
        if line.startswith("250") and b"\n" in self._reader._buffer:  # type: ignore[attr-defined]
            self._replies = replies
            return
        self._replies = b""
        self._writer.write(replies)
        await self._writer.drain()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's, without its RFC 5322 parser for the everyday `<local@domain>`.

        aiosmtpd's costs 40-85 µs an address (it also defines a typing.Protocol class each call).
        """
        plain = _PLAIN_PATH.match(arg)
        if plain is None:  # quoted, non-ASCII, comments, literals, no angle brackets: aiosmtpd decides
            return super()._getaddr(arg)
        address = plain["address"]
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, arg[plain.end():]

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            raw, too_much = await self._read_until_dot()
        except asyncio.IncompleteReadError:
            self._writer.close()  # the client hung up mid-DATA: nothing was accepted
            return
        except asyncio.CancelledError:
            self._writer.close()  # the connection went away mid-DATA
            raise
        if too_much:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd's own method, unannotated
            return
        # RFC 5321 §4.5.2: drop the transparency dot at the start of each line
        content = raw[1:] if raw.startswith(b".") else raw
        content = content.replace(b"\r\n.", b"\r\n")
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        await self.push("250 OK" if status is MISSING else status)
        self._set_post_data_state()  # type: ignore[no-untyped-call]

    async def _read_until_dot(self) -> tuple[bytes, bool]:
        """The DATA payload without the final ".CRLF", and whether it exceeded the size limit."""
        acc = bytearray()
        limit = self.data_size_limit
        too_much = False
        while True:
            try:
                # ".CRLF" ends the data only at a line start; readuntil never reads past it,
                # so a pipelined next command stays in the reader
                acc += await self._reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:
                acc += await self._reader.read(exc.consumed)
            if acc == b".\r\n" or acc.endswith(b"\r\n.\r\n"):
                return (b"" if too_much else bytes(acc[:-3])), too_much
            if limit and len(acc) > limit + 5:
                too_much = True
                del acc[:-5]  # keep only what the end-of-data check needs


async def serve_smtp(handler: Any, *, host: str = "127.0.0.1", port: int = 0,
                     tls_context: ssl.SSLContext | None = None,
                     require_starttls: bool = True, authenticator: Any = None,
                     data_size_limit: int = 64 * 1024 * 1024,
                     implicit_tls: bool = False, pipelining: bool = True) -> asyncio.Server:
    """An aiosmtpd server in the running loop (port 0: pick a free one).

    With a `tls_context`: STARTTLS (required before MAIL), or TLS from the first byte with
    `implicit_tls`. With an `authenticator` (aiosmtpd's callback), AUTH is required before MAIL.
    `pipelining=False`: EHLO does not offer PIPELINING (a server that answers one command at a time).
    """
    loop = asyncio.get_running_loop()
    starttls = tls_context if not implicit_tls else None

    def session() -> BulkDataSMTP:
        server = BulkDataSMTP(handler, hostname="postbud-sandbox", tls_context=starttls,
                              require_starttls=require_starttls and starttls is not None,
                              authenticator=authenticator,
                              auth_required=authenticator is not None,
                              data_size_limit=data_size_limit, loop=loop)
        server.pipelining = pipelining
        return server

    return await loop.create_server(session, host=host, port=port, ssl=tls_context if implicit_tls else None)


def over_tls(server: SMTP, session: Session) -> bool:
    """True after STARTTLS and on implicit-TLS connections (aiosmtpd only notes the former)."""
    transport = server.transport
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None)


def server_tls_context(ca: LocalCA, name: str = "sandbox-smtp") -> ssl.SSLContext:
    """A server-side TLS context with a leaf issued by `ca` for 127.0.0.1/localhost."""
    issued = ca.issue(name)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(issued.cert_path, issued.key_path)
    return ctx


class MaildirHandler:
    """aiosmtpd handler storing each accepted message as one .eml file, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._prefix = f"{folder}{os.sep}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not over_tls(server, session):  # require_starttls already refuses this; belt and braces
            return "530 Must issue a STARTTLS command first"
        data = envelope.original_content or b""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{secrets.token_hex(4)}.eml"
        # os calls on str paths, not pathlib's write_bytes and replace: a third of the file's CPU
        tmp = f"{self._prefix}.{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, f"{self._prefix}{name}")
        return f"250 Message accepted for delivery as {name}"


class SandboxMailServer:
    """`make run`'s mail server: STARTTLS with a LocalCA under `ca_dir`, mail kept under `mail_dir`."""

    def __init__(self, mail_dir: Path, ca_dir: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mail_dir = mail_dir
        self.ca = LocalCA(ca_dir)
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    @property
    def ca_file(self) -> Path:
        """What the SMTP sender must trust (SmtpSettings.ca_file)."""
        return self.ca.cert_path

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("sandbox mail server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        ctx = await asyncio.to_thread(server_tls_context, self.ca)
        self._server = await serve_smtp(MaildirHandler(self.mail_dir), host=self._host,
                                        port=self._port, tls_context=ctx)
        log.info("sandbox mail server on %s:%s, storing under %s", self._host, self.port,
                 self.mail_dir)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()


@dataclass(frozen=True)
class DemoKeys:
    """Public parts (for the recipients file) and private parts (for the newcomer) of a demo recipient."""

    smime_cert: Path
    smime_key: Path
    pgp_public: Path
    pgp_secret: Path


def ensure_demo_recipient(keys_dir: Path, *, name: str = "Demo Recipient",
                          email: str = "demo@example.invalid", slug: str = "demo") -> DemoKeys:
    """Create the demo recipient's S/MIME and OpenPGP keys on first run; reuse them afterwards."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = DemoKeys(
        smime_cert=keys_dir / f"{slug}-smime-cert.pem",
        smime_key=keys_dir / f"{slug}-smime-key.pem",
        pgp_public=keys_dir / f"{slug}-pgp-public.asc",
        pgp_secret=keys_dir / f"{slug}-pgp-secret.asc",
    )
    if not (keys.smime_cert.exists() and keys.smime_key.exists()):
        cert, key = _smime_pair(name, email)
        _write_private(keys.smime_key, key)
        keys.smime_cert.write_bytes(cert)
    if not (keys.pgp_public.exists() and keys.pgp_secret.exists()):
        public, secret = _pgp_pair(name, email)
        _write_private(keys.pgp_secret, secret)
        keys.pgp_public.write_bytes(public)
    return keys


def _smime_pair(name: str, email: str) -> tuple[bytes, bytes]:
    # RSA: the only key type cryptography's CMS envelope builder encrypts to
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.EMAIL_ADDRESS, email)])
    now = dt.datetime.now(dt.UTC)
    cert = smime_certificate(key.public_key(), subject, email, issuer=subject, signer=key, now=now,
                             not_after=now + dt.timedelta(days=825))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _pgp_pair(name: str, email: str) -> tuple[bytes, bytes]:
    """(armored public, armored secret). Made by gpg when installed, so gpg can read what we send.

    Keys made by Sequoia advertise SEIPDv2 (RFC 9580), which GnuPG cannot decrypt; a gpg-made key
    advertises SEIPDv1 only, and pysequoia then encrypts with that.
    """
    gpg = shutil.which("gpg")
    if gpg is None:
        tsk = pysequoia.Tsk.generate(f"{name} <{email}>", profile=pysequoia.Profile.RFC4880)
        return str(tsk.extract_certificate()).encode(), str(tsk).encode()
    with tempfile.TemporaryDirectory(prefix="postbud-gnupg-") as home:
        env = {**os.environ, "GNUPGHOME": home}
        run = _runner(gpg, env)
        try:
            run("--passphrase", "", "--quick-gen-key", f"{name} <{email}>", "future-default",
                "default", "3y")
            public = run("--armor", "--export", email)
            secret = run("--armor", "--pinentry-mode", "loopback", "--passphrase", "",
                         "--export-secret-keys", email)
        finally:
            # the agent gpg started for this throwaway home must not outlive it
            gpgconf = shutil.which("gpgconf")
            if gpgconf is not None:
                subprocess.run([gpgconf, "--kill", "gpg-agent"], env=env, check=False,
                               capture_output=True)
    return public, secret


def _runner(gpg: str, env: dict[str, str]) -> Callable[..., bytes]:
    def run(*args: str) -> bytes:
        done = subprocess.run([gpg, "--batch", "--quiet", *args], env=env, capture_output=True,
                              check=False, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"gpg {args[-1]} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout
    return run


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
