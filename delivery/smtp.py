"""SMTP sender: TLS or nothing, verified server certificate, AUTH, one reused connection (wire: smtp_wire.py)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from delivery.errors import DeliveryError, SmtpAuthFailed, TlsRequired
from delivery.outer import WireMessage
from delivery.smtp_wire import Connection, ReplyError, open_connection, wire_payload
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

    Sends are serialised by a lock: SMTP is one transaction at a time per connection. Where the
    server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go in one write (smtp_wire.py).
    """

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls = tls_context or verifying_context(settings.ca_file)
        self._smtp: Connection | None = None
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
        # a WireMessage is canonical CRLF with no line starting with "." by construction: checking
        # and dot-stuffing a 370 KB message costs a quarter of the per-message budget
        payload = message if isinstance(message, WireMessage) else wire_payload(message)
        async with self._lock:
            try:
                return await self._send_once(payload, sender, recipients)
            except _Stale:
                # the kept-open connection died while idle; the transaction had not begun
                await self._drop()
                return await self._send_once(payload, sender, recipients)

    async def close(self) -> None:
        """QUIT politely if connected; safe to call twice."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_open:
            try:
                await smtp.quit()
            except SMTP_FAULTS:
                smtp.close()

    async def _send_once(self, payload: bytes, sender: str, recipients: Sequence[str]) -> str:
        fresh = self._smtp is None or not self._smtp.is_open
        smtp = await self._connection()
        try:
            reply = await smtp.transaction(sender, recipients, payload)
        except SMTP_FAULTS as exc:
            mail = smtp.mail_reply
            lost = not isinstance(exc, ReplyError)
            if not fresh and ((mail is None and lost) or (mail is not None and mail.code == 421)):
                # lost before MAIL was answered, or "closing channel" (an idle timeout): nothing began
                raise _Stale() from None
            error = smtp_transaction_error(exc)
            if error.code is not None:
                await self._reset(smtp)  # the server refused; the connection is still good
            else:
                await self._drop()
            raise error from None
        return reply.text

    async def _connection(self) -> Connection:
        if self._smtp is not None and self._smtp.is_open:
            return self._smtp
        s = self._settings
        smtp: Connection | None = None
        try:
            smtp = await open_connection(s.host, s.port, timeout=s.timeout, local_hostname=s.local_hostname,
                                         implicit_tls=self._tls if s.tls is TlsMode.IMPLICIT else None)
            if s.tls is TlsMode.STARTTLS:
                if not smtp.supports("starttls"):
                    raise TlsRequired(f"{s.host}:{s.port} does not offer STARTTLS; nothing sent")
                await smtp.starttls(self._tls, s.host)
            if not smtp.over_tls:  # belt and braces: nothing goes out in clear
                raise TlsRequired(f"{s.host}:{s.port}: the connection is not encrypted; nothing sent")
            if s.username is not None:
                await smtp.login(s.username, s.password.get_secret_value() if s.password is not None else "")
        except DeliveryError:
            if smtp is not None:
                smtp.close()
            raise
        except SMTP_FAULTS as exc:
            if smtp is not None:
                smtp.close()
            raise smtp_connect_error(exc, host=s.host, port=s.port) from None
        log.info("smtp connected to %s:%s over TLS%s", s.host, s.port,
                 ", pipelining" if smtp.supports("pipelining") else "")
        self._smtp = smtp
        return smtp

    async def _reset(self, smtp: Connection) -> None:
        # after a refused MAIL/RCPT/DATA the connection is still good for the next message
        try:
            await smtp.command(b"RSET", stage="rset")
        except SMTP_FAULTS:
            await self._drop()

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()


class _Stale(Exception):
    """The kept-open connection was found closed before the transaction started."""


def verifying_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that verifies the relay's certificate (the system trust store, or `ca_file`)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
