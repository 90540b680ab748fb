"""SMTP sender: TLS or nothing, verified server certificate, AUTH, one reused connection."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from delivery.errors import DeliveryError, SmtpAuthFailed, TlsRequired
from delivery.outer import WireMessage
from delivery.translate import SMTP_FAULTS, smtp_connect_error, smtp_transaction_error

log = logging.getLogger(__name__)


class TlsMode(StrEnum):
    STARTTLS = "starttls"  # plain connect, STARTTLS mandatory before anything else
    IMPLICIT = "implicit"  # TLS from the first byte (port 465)


class SmtpSettings(BaseModel):
    """The SMTP relay of the email channel; there is deliberately no "no TLS" mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    tls: TlsMode = TlsMode.STARTTLS
    ca_file: Path | None = None  # None: the system trust store
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = Field(default=30.0, gt=0)
    local_hostname: str | None = None


class MailSender(Protocol):
    """What sends a finished message over SMTP: one connection (SmtpSender) or several (SmtpPool)."""

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str: ...

    async def close(self) -> None: ...


class SmtpSender:
    """Sends messages over one kept-open connection, reconnecting when the server dropped it.

    Sends are serialised by a lock: SMTP is one transaction at a time per connection.
    """

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls = tls_context or verifying_context(settings.ca_file)
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str:
        """Hand one message to the server; returns the server's final reply text (its queue id).

        Raises SmtpTransient (retry), SmtpPermanent (dead-letter), TlsRequired or SmtpAuthFailed
        (the channel's fault; nothing sent).
        All recipients are accepted or none: one refused recipient aborts the transaction.
        A connection lost after the message was written but before the server's reply is
        SmtpTransient although the server may have accepted it: the retry then resends the same
        Message-ID, which receivers deduplicate.
        """
        if not recipients:
            raise ValueError("no recipients")
        async with self._lock:
            try:
                return await self._send_once(message, sender, recipients)
            except _Stale:
                # the kept-open connection died while idle; the transaction had not begun
                await self._drop()
                return await self._send_once(message, sender, recipients)

    async def close(self) -> None:
        """QUIT politely if connected; safe to call twice."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def _send_once(self, message: bytes, sender: str, recipients: Sequence[str]) -> str:
        fresh = self._smtp is None or not self._smtp.is_connected
        smtp = await self._connection()
        try:
            try:
                await smtp.mail(sender)
            except aiosmtplib.SMTPServerDisconnected:
                if fresh:
                    raise
                raise _Stale() from None
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 and not fresh:  # idle timeout announced as "closing channel"
                    raise _Stale() from None
                raise
            for rcpt in recipients:
                await smtp.rcpt(rcpt)
            reply = await _data(smtp, message, self._settings.timeout)
        except SMTP_FAULTS as exc:
            error = smtp_transaction_error(exc)
            if error.code is not None:
                await self._reset(smtp)  # the server refused; the connection is still good
            else:
                await self._drop()
            raise error from None
        return reply.message

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout, local_hostname=s.local_hostname,
            use_tls=s.tls is TlsMode.IMPLICIT, start_tls=False, tls_context=self._tls,
        )
        try:
            await smtp.connect()
            await smtp.ehlo()
            if s.tls is TlsMode.STARTTLS:
                if not smtp.supports_extension("starttls"):
                    smtp.close()
                    raise TlsRequired(f"{s.host}:{s.port} does not offer STARTTLS; nothing sent")
                await smtp.starttls(tls_context=self._tls)
                await smtp.ehlo()
            if s.username is not None:
                await self._login(smtp)
        except DeliveryError:
            smtp.close()
            raise
        except SMTP_FAULTS as exc:
            smtp.close()
            raise smtp_connect_error(exc, host=s.host, port=s.port) from None
        log.info("smtp connected to %s:%s over TLS", s.host, s.port)
        self._smtp = smtp
        return smtp

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        # one mechanism, one attempt: aiosmtplib's login() would retry the same secret through
        # every advertised mechanism
        s = self._settings
        secret = s.password.get_secret_value() if s.password is not None else ""
        methods = smtp.supported_auth_methods
        if "plain" in methods:
            await smtp.auth_plain(s.username or "", secret)
        elif "login" in methods:
            await smtp.auth_login(s.username or "", secret)
        else:
            raise SmtpAuthFailed(f"server offers no PLAIN or LOGIN authentication ({methods})")

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        # after a refused MAIL/RCPT/DATA the connection is still good for the next message
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._drop()

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()


async def _data(smtp: aiosmtplib.SMTP, message: bytes, timeout: float) -> aiosmtplib.SMTPResponse:
    """DATA without aiosmtplib's per-line regex when the message is already canonical CRLF.

    aiosmtplib's data() re-normalises every line ending with a regex, which for a 370 KB
    encrypted message costs more than the encryption. A WireMessage is canonical and has no
    leading dots by construction; other bytes are checked with three counts and dot-stuffed with
    one replace, or, when not canonical, go through aiosmtplib's own data().
    """
    protocol = smtp.protocol
    if isinstance(message, WireMessage):
        payload: bytes = message
    else:
        crlf = message.count(b"\r\n")
        if protocol is None or crlf != message.count(b"\n") or crlf != message.count(b"\r"):
            return await smtp.data(message)
        payload = message.replace(b"\r\n.", b"\r\n..")
        if payload.startswith(b"."):
            payload = b"." + payload
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost before DATA")
    start = await smtp.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol.write(payload)
    protocol.write(b".\r\n" if payload.endswith(b"\r\n") else b"\r\n.\r\n")
    reply = await protocol.read_response(timeout=timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply


class _Stale(Exception):
    """The kept-open connection was found closed before the transaction started."""


def verifying_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that verifies the relay's certificate (the system trust store, or `ca_file`)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
