"""The sandbox's mail server on the wire: pipelined replies, addresses read as aiosmtpd reads them, mail kept."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from sandbox.mailserver import BulkDataSMTP, MaildirHandler, SandboxMailServer


class _Client:
    """A blocking STARTTLS client; `record()` is one TLS record's plaintext (one SSL_read)."""

    def __init__(self, server: SandboxMailServer) -> None:
        plain = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self._file = plain.makefile("rb")
        assert self._file.readline().startswith(b"220 ")
        plain.sendall(b"EHLO client.example\r\n")
        while not self._file.readline().startswith(b"250 "):
            pass
        plain.sendall(b"STARTTLS\r\n")
        assert self._file.readline().startswith(b"220 ")
        context = ssl.create_default_context(cafile=str(server.ca_file))
        self.tls = context.wrap_socket(plain, server_hostname="127.0.0.1")
        self.send(b"EHLO client.example\r\n")
        self.lines(lambda got: b"\r\n250 " in b"\r\n" + got)

    def send(self, data: bytes) -> None:
        self.tls.sendall(data)

    def record(self) -> bytes:
        return self.tls.recv(65536)

    def lines(self, done: object) -> list[bytes]:
        got = b""
        while not done(got):  # type: ignore[operator]
            got += self.record()
        return got.splitlines()


def _replies(n: int) -> object:
    return lambda got: got.count(b"\r\n") >= n


async def test_pipelined_mail_rcpt_data_are_answered_in_one_record(mail_server: SandboxMailServer) -> None:
    # GIVEN a client past STARTTLS that pipelines MAIL, RCPT and DATA in one write
    def session() -> tuple[bytes, list[bytes]]:
        client = _Client(mail_server)
        client.send(b"MAIL FROM:<postbud@postbud.example>\r\nRCPT TO:<demo@example.invalid>\r\nDATA\r\n")
        first = client.record()
        rest = client.lines(lambda got: b"354 " in first + got)
        client.send(b"Subject: hej\r\n\r\n..prikken\r\nlinje\r\n.\r\n")
        accepted = client.lines(_replies(1))
        client.send(b"QUIT\r\n")
        client.lines(_replies(1))
        return first, rest + accepted

    first, later = await asyncio.to_thread(session)
    # THEN its three replies come in one TLS record (one send), as postfix answers a pipeline
    assert first.splitlines() == [b"250 OK", b"250 OK", b"354 End data with <CR><LF>.<CR><LF>"]
    assert later[-1].startswith(b"250 Message accepted for delivery as ")
    # AND the message is kept as it was sent, the transparency dot removed
    [kept] = mail_server.mail_dir.glob("*.eml")
    assert kept.read_bytes() == b"Subject: hej\r\n\r\n.prikken\r\nlinje\r\n"
    assert later[-1].endswith(kept.name.encode())
    assert [p.name for p in mail_server.mail_dir.iterdir()] == [kept.name]  # no temporary file left


async def test_a_refusal_in_a_pipeline_is_answered_in_order(mail_server: SandboxMailServer) -> None:
    # GIVEN a pipeline whose third command is refused, and a fourth after it
    def session() -> list[bytes]:
        client = _Client(mail_server)
        client.send(b"RSET\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<c@d.example>\r\nNOOP\r\n")
        return client.lines(_replies(4))

    # THEN every reply comes, in the commands' order, none held back
    assert await asyncio.to_thread(session) == [b"250 OK", b"250 OK", b"503 Error: nested MAIL command", b"250 OK"]


async def test_a_command_sent_alone_is_answered_at_once(mail_server: SandboxMailServer) -> None:
    # GIVEN a client that waits for each reply before the next command (no pipelining)
    def session() -> list[bytes]:
        client = _Client(mail_server)
        replies = []
        for command in (b"MAIL FROM:<a@b.example>", b"RCPT TO:<c@d.example>", b"RSET"):
            client.send(command + b"\r\n")
            replies += client.lines(_replies(1))
        return replies

    # THEN each reply is sent without waiting for more input
    assert await asyncio.to_thread(session) == [b"250 OK"] * 3


@pytest.mark.parametrize("arg", [
    "<a@b.example>", "<postbud@postbud.example> SIZE=7000 BODY=8BITMIME", "<a@b.example>  ",
    "<a@b.example>\t SMTPUTF8", "<first.last+tag@sub.b-c.example>", "<a!#$%&'*/=?^_`{|}~-@b.example>",
    # not plain: aiosmtpd's parser decides (so these must come out as it says, too)
    "<>", "<a..b@c.example>", "<.a@c.example>", "<a@b..c>", "<a@[127.0.0.1]>", "< a@b.example >",
    '<"x y"@b.example>', "<a@b.example>SIZE=1", "<a@b.example> (comment) SIZE=1", "a@b.example",
    "<a@b.example", "<æ@b.example>", "<a@b.example> \x0bSIZE=1", "<a@b.example>\n", "<" + "x" * 65 + "@b.example>",
])
async def test_an_address_is_read_as_aiosmtpds_parser_reads_it(arg: str, tmp_path: Path) -> None:
    server = BulkDataSMTP(MaildirHandler(tmp_path), loop=asyncio.get_running_loop())
    assert server._getaddr(arg) == SMTP._getaddr(server, arg)
