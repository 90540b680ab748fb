"""The sandbox server's bulk DATA reader keeps SMTP's transparency rules and size limit."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiosmtplib
import pytest

from delivery.errors import SmtpPermanent
from delivery.smtp import SmtpSender, SmtpSettings

if TYPE_CHECKING:
    from delivery_testkit import ServeFactory


@pytest.mark.parametrize(
    "content",
    [
        b"single line without dot\r\n",
        b".\r\n..\r\n...\r\n",  # lines that are only dots
        b"ends with a dot.\r\n.starts with one\r\nmiddle . dot\r\n",
        b"\r\n\r\n.\r\n\r\n",
        b"x" * 5000 + b".\r\n" + b"y" * 70_000 + b"\r\n",  # lines longer than a read chunk
    ],
)
async def test_content_arrives_exactly(smtp_server: ServeFactory, content: bytes) -> None:
    server = await smtp_server(tls=False)  # plain SMTP: we test the server's DATA phase here
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False, timeout=5)
    async with client:
        await client.sendmail("a@example.com", ["b@example.com"], content)
        await client.sendmail("a@example.com", ["b@example.com"], b"second\r\n")
    assert [m for m, _ in server.handler.messages] == [content, b"second\r\n"]


async def test_empty_data_phase(smtp_server: ServeFactory) -> None:
    server = await smtp_server(tls=False)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False, timeout=5)
    async with client:
        await client.ehlo()
        await client.mail("a@example.com")
        await client.rcpt("b@example.com")
        assert (await client.execute_command(b"DATA")).code == 354
        assert client.protocol is not None
        client.protocol.write(b".\r\n")  # the terminator right away: zero bytes of content
        assert (await client.protocol.read_response(timeout=5)).code == 250
    assert [m for m, _ in server.handler.messages] == [b""]


async def test_oversized_message_is_refused_and_the_session_goes_on(
    smtp_server: ServeFactory,
) -> None:
    server = await smtp_server(data_size_limit=10_000)
    async with SmtpSender(SmtpSettings(host="127.0.0.1", port=server.port,
                                       ca_file=server.ca_file, timeout=5)) as smtp:
        with pytest.raises(SmtpPermanent) as caught:
            await smtp.send(b"z" * 50_000 + b"\r\n", sender="a@example.com",
                            recipients=["b@example.com"])
        assert caught.value.code == 552
        await smtp.send(b"small\r\n", sender="a@example.com", recipients=["b@example.com"])
    assert server.handler.messages == [(b"small\r\n", True)]


async def test_non_canonical_message_is_normalised_by_the_sender(smtp_server: ServeFactory) -> None:
    server = await smtp_server()
    async with SmtpSender(SmtpSettings(host="127.0.0.1", port=server.port,
                                       ca_file=server.ca_file, timeout=5)) as smtp:
        await smtp.send(b"Subject: x\n\n.bare LF\nline", sender="a@example.com",
                        recipients=["b@example.com"])
    assert server.handler.messages == [(b"Subject: x\r\n\r\n.bare LF\r\nline\r\n", True)]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_ehlo_offers_pipelining_like_an_mta(smtp_server: ServeFactory, pipelining: bool) -> None:
    server = await smtp_server(tls=False, pipelining=pipelining)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False, timeout=5)
    async with client:
        await client.ehlo()
        assert client.supports_extension("pipelining") is pipelining
        assert client.supports_extension("8bitmime")  # aiosmtpd's own extensions are all still there


async def test_pipelined_commands_are_answered_in_order(smtp_server: ServeFactory) -> None:
    # GIVEN the sandbox server; WHEN a client writes MAIL, RCPT and DATA at once (RFC 2920)
    server = await smtp_server(tls=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await reader.readline()
    writer.write(b"EHLO client\r\n")
    while not (await reader.readline()).startswith(b"250 "):
        pass
    writer.write(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    replies = [await reader.readline() for _ in range(3)]
    writer.write(b"pipelined\r\n.\r\nQUIT\r\n")
    replies += [await reader.readline() for _ in range(2)]
    writer.close()
    # THEN each command got its own reply, in order, and the message arrived
    assert [r[:3] for r in replies] == [b"250", b"250", b"354", b"250", b"221"]
    assert [m for m, _ in server.handler.messages] == [b"pipelined\r\n"]
