"""The SMTP client's wire: one connection's replies, STARTTLS, AUTH, and a mail transaction, pipelined when offered.

smtp.py decides policy (TLS or nothing, reconnecting, typed errors); this module only speaks the
protocol. It replaces aiosmtplib on the send path because aiosmtplib reads one reply per command
written, so it cannot pipeline (RFC 2920), and its per-command work (address parsing, a lock, a
timer per reply) cost more CPU per letter than composing the letter. With PIPELINING a letter is
two round trips (MAIL + RCPT + DATA in one write, then the body and its end in one write), not four.

Faults: a refusal is a ReplyError (the server's code and text; the connection stays usable unless
`closed` says otherwise), a lost or timed-out connection is a ConnectionError/TimeoutError (both
OSError), a TLS failure is ssl.SSLError (an OSError too). translate.py maps them.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from email.utils import parseaddr

_MAX_REPLY = 1 << 16  # bytes of one reply; a server sending more is broken or hostile
_LINE_ENDS = re.compile(rb"\r\n|\n|\r(?!\n)")
_PLAIN_ADDRESS = re.compile(r"^[^\s<>()\[\],;:\"\\]*$")  # no display name, comment or quoting to take apart


@dataclass(frozen=True)
class Reply:
    code: int
    text: str


class ReplyError(Exception):
    """The server refused (or answered what the protocol does not allow here)."""

    def __init__(self, code: int, text: str, *, stage: str) -> None:
        super().__init__(f"{code} {text}")
        self.code, self.text, self.stage = code, text, stage


class AuthRefused(ReplyError):
    """AUTH was refused: the credentials, not the message."""


class _Protocol(asyncio.Protocol):
    """Collects complete replies in arrival order, however the server's bytes are cut into reads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.replies: deque[Reply] = deque()
        self.lost: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            reply = self._complete_reply()
            if reply is None:
                break
            self.replies.append(reply)
        if len(self.buffer) > _MAX_REPLY:
            self._fail(ConnectionError("the server's reply is too long"))
            return
        self._wake()

    def _complete_reply(self) -> Reply | None:
        """The first whole reply off the buffer, or None when its last line has not come yet."""
        lines: list[bytes] = []
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end < 0:
                return None
            line = bytes(self.buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                self._fail(ConnectionError(f"malformed SMTP reply {line[:40]!r}"))
                return None
            lines.append(line[4:])
            if line[3:4] != b"-":
                del self.buffer[:start]
                text = b"\n".join(lines).decode("utf-8", "replace").strip()
                return Reply(int(line[:3]), text)

    def eof_received(self) -> bool:
        self._fail(ConnectionError("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the connection is closed"))
        self.transport = None

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done() and (self.replies or self.lost is not None):
            waiter.set_result(None)


class Connection:
    """One open SMTP session, after its greeting and EHLO (and STARTTLS, AUTH when asked for)."""

    def __init__(self, protocol: _Protocol, timeout: float) -> None:
        self._protocol = protocol
        self._timeout = timeout
        self.extensions: dict[str, str] = {}
        self.local_name = "localhost"
        self.mail_reply: Reply | None = None  # the current transaction's MAIL reply, once read

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._protocol.transport

    @property
    def is_open(self) -> bool:
        t = self._protocol.transport
        return t is not None and not t.is_closing() and self._protocol.lost is None

    @property
    def over_tls(self) -> bool:
        t = self._protocol.transport
        return t is not None and t.get_extra_info("ssl_object") is not None

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()

    async def reply(self) -> Reply:
        """The next reply, waiting up to the timeout for it."""
        p = self._protocol
        if not p.replies:
            if p.lost is None:
                waiter = p.waiter = p.loop.create_future()
                timer = p.loop.call_later(self._timeout, _expire, waiter)
                try:
                    await waiter
                except BaseException:
                    # timed out or cancelled mid-exchange: a reply that came late would be taken for
                    # the next command's, so this connection is done
                    self.close()
                    raise
                finally:
                    timer.cancel()
                    p.waiter = None
            if not p.replies:
                raise ConnectionError(f"connection lost: {p.lost}") from p.lost
        return p.replies.popleft()

    def write(self, data: bytes) -> None:
        t = self._protocol.transport
        if t is None or t.is_closing() or self._protocol.lost is not None:
            raise ConnectionError("connection lost")
        t.write(data)

    async def command(self, line: bytes, *, stage: str, expect: tuple[int, ...] = (250,)) -> Reply:
        if b"\r" in line or b"\n" in line:
            raise ValueError("an SMTP command is one line")
        self.write(line + b"\r\n")
        reply = await self.reply()
        if reply.code not in expect:
            raise ReplyError(reply.code, reply.text, stage=stage)
        return reply

    async def ehlo(self, name: str) -> None:
        self.local_name = name
        reply = await self.command(b"EHLO " + name.encode("ascii"), stage="ehlo")
        extensions = {}
        for line in reply.text.splitlines()[1:]:
            keyword, _, params = line.strip().partition(" ")
            extensions[keyword.lower()] = params
        self.extensions = extensions

    async def starttls(self, context: ssl.SSLContext, host: str) -> None:
        await self.command(b"STARTTLS", stage="starttls", expect=(220,))
        p = self._protocol
        if p.buffer or p.replies:
            # anything sent after the 220 in clear would be taken as if it came over TLS (CVE-2011-0411)
            self.close()
            raise ConnectionError("the server sent data after agreeing to STARTTLS")
        assert p.transport is not None
        p.transport = await p.loop.start_tls(p.transport, p, context, server_hostname=host,
                                             ssl_handshake_timeout=self._timeout)
        self.extensions = {}
        await self.ehlo(self.local_name)  # what the server offers over TLS, asked again (RFC 3207)

    async def login(self, username: str, password: str) -> None:
        """One mechanism, one attempt (PLAIN, else LOGIN), so a wrong secret is not tried several times."""
        methods = self.extensions.get("auth", "").lower().split()
        try:
            if "plain" in methods:
                token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
                await self.command(f"AUTH PLAIN {token}".encode("ascii"), stage="auth", expect=(235,))
            elif "login" in methods:
                user = base64.b64encode(username.encode()).decode("ascii")
                await self.command(f"AUTH LOGIN {user}".encode("ascii"), stage="auth", expect=(334,))
                await self.command(base64.b64encode(password.encode()), stage="auth", expect=(235,))
            else:
                raise AuthRefused(504, f"server offers no PLAIN or LOGIN authentication ({methods})", stage="auth")
        except AuthRefused:
            raise
        except ReplyError as exc:
            raise AuthRefused(exc.code, exc.text, stage="auth") from None

    async def transaction(self, sender: str, recipients: Sequence[str], payload: bytes) -> Reply:
        """MAIL, RCPT for each recipient, DATA and the message (already CRLF and dot-stuffed).

        All recipients or none: a refused one ends the transaction before the message is sent.
        """
        self.mail_reply = None
        utf8 = not sender.isascii() or not all(r.isascii() for r in recipients)
        if utf8 and not self.supports("smtputf8"):
            raise ReplyError(553, "a non-ASCII address and the relay offers no SMTPUTF8", stage="mail")
        mail = b"MAIL FROM:" + envelope_address(sender).encode() + (b" SMTPUTF8" if utf8 else b"")
        commands = [mail] + [b"RCPT TO:" + envelope_address(r).encode() for r in recipients]
        replies: list[Reply] = []
        try:
            if self.supports("pipelining"):
                self.write(b"\r\n".join([*commands, b"DATA", b""]))
                for _ in range(len(commands) + 1):
                    replies.append(await self.reply())
                    self.mail_reply = replies[0]
            else:
                for line in [*commands, b"DATA"]:
                    self.write(line + b"\r\n")
                    replies.append(await self.reply())
                    self.mail_reply = replies[0]
                    if replies[-1].code not in (250, 251, 354):
                        break
        except OSError:
            if _refusal(replies, len(commands)) is None:
                raise
            self.close()  # refused, then hung up (421 closing channel): the refusal says more
        refusal = _refusal(replies, len(commands))
        if refusal is not None:
            if len(replies) > len(commands) and replies[-1].code == 354:
                self.close()  # the server waits for a message we will not send: only hanging up aborts it
            raise refusal
        self.write(payload + (b".\r\n" if payload.endswith(b"\r\n") else b"\r\n.\r\n"))
        reply = await self.reply()
        if reply.code != 250:
            raise ReplyError(reply.code, reply.text, stage="data")
        return reply

    async def quit(self) -> None:
        try:
            await self.command(b"QUIT", stage="quit", expect=(221,))
        finally:
            self.close()


def _refusal(replies: list[Reply], commands: int) -> ReplyError | None:
    """The first refusal among the replies to MAIL, each RCPT and DATA, or None."""
    stages = ["mail"] + ["rcpt"] * (commands - 1) + ["data"]
    for stage, reply in zip(stages, replies, strict=False):
        wanted = (250,) if stage == "mail" else (250, 251) if stage == "rcpt" else (354,)
        if reply.code not in wanted:
            return ReplyError(reply.code, reply.text, stage=stage)
    return None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("the server did not answer in time"))


async def open_connection(host: str, port: int, *, timeout: float, implicit_tls: ssl.SSLContext | None,
                          local_hostname: str | None) -> Connection:
    """Connect, read the greeting and say EHLO (over TLS from the first byte with `implicit_tls`)."""
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: _Protocol(loop), host, port, ssl=implicit_tls,
                               server_hostname=host if implicit_tls is not None else None),
        timeout)
    connection = Connection(protocol, timeout)
    try:
        greeting = await connection.reply()
        if greeting.code != 220:
            raise ReplyError(greeting.code, greeting.text, stage="greeting")
        if local_hostname is None:  # getfqdn may ask DNS: not on the loop
            local_hostname = await asyncio.to_thread(_local_name)
        await connection.ehlo(local_hostname)
    except BaseException:
        connection.close()
        raise
    return connection


@lru_cache(maxsize=1)
def _local_name() -> str:
    name: str = socket.getfqdn()
    return name if name.isascii() and name else "localhost"


@lru_cache(maxsize=1024)
def envelope_address(value: str) -> str:
    """`<addr>` for MAIL FROM/RCPT TO, from a bare address or one with a display name."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("an address is one line")
    if not _PLAIN_ADDRESS.match(value):
        value = parseaddr(value)[1]
    return f"<{value}>"


def wire_payload(message: bytes) -> bytes:
    """Any message as DATA needs it: CRLF line ends, a leading dot doubled on every line."""
    crlf = message.count(b"\r\n")
    if crlf != message.count(b"\n") or crlf != message.count(b"\r"):
        message = _LINE_ENDS.sub(b"\r\n", message)
    payload = message.replace(b"\r\n.", b"\r\n..")
    return b"." + payload if payload.startswith(b".") else payload
