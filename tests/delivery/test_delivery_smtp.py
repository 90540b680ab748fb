"""The SMTP sender against a real aiosmtpd on 127.0.0.1: TLS or nothing, typed errors, one connection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from delivery_testkit import RecordingHandler
from pydantic import SecretStr

from delivery.errors import RelayUnreachable, SmtpAuthFailed, SmtpPermanent, SmtpTransient, TlsRequired
from delivery.smtp import SmtpSender, SmtpSettings
from sandbox.testca import LocalCA

if TYPE_CHECKING:
    from delivery_testkit import ServeFactory

MESSAGE = (b"From: postbud@example.com\r\nTo: alice@example.com\r\nSubject: Encrypted message\r\n"
           b"Message-ID: <outbox-1@postbud.example>\r\n\r\n" + b"A" * 76 + b"\r\n.\r\n..x\r\n")


def sender_for(port: int, ca_file: Path, **extra: object) -> SmtpSender:
    return SmtpSender(SmtpSettings(host="127.0.0.1", port=port, ca_file=ca_file, timeout=5,
                                   **extra))  # type: ignore[arg-type]


async def test_message_is_received_over_tls(smtp_server: ServeFactory) -> None:
    server = await smtp_server()
    async with sender_for(server.port, server.ca_file) as smtp:
        reply = await smtp.send(MESSAGE, sender="postbud@example.com",
                                recipients=["alice@example.com"])
    assert "queued as test" in reply
    [(content, over_tls)] = server.handler.messages
    assert over_tls
    assert content == MESSAGE  # dot-stuffing undone, bytes intact


async def test_implicit_tls(smtp_server: ServeFactory, tmp_path: Path) -> None:
    server = await smtp_server(implicit_tls=True)
    async with sender_for(server.port, server.ca_file, tls="implicit") as smtp:
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert server.handler.messages == [(MESSAGE, True)]
    stranger = LocalCA(tmp_path / "other-ca")
    async with sender_for(server.port, stranger.cert_path, tls="implicit") as smtp:
        with pytest.raises(TlsRequired):
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert len(server.handler.messages) == 1 and len(server.handler.mails) == 1


async def test_server_without_starttls_receives_nothing(smtp_server: ServeFactory) -> None:
    server = await smtp_server(tls=False)
    async with sender_for(server.port, server.ca_file) as smtp:
        with pytest.raises(TlsRequired):
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert server.handler.mails == []
    assert server.handler.messages == []


async def test_untrusted_server_certificate_receives_nothing(smtp_server: ServeFactory,
                                                             tmp_path: Path) -> None:
    server = await smtp_server()
    stranger = LocalCA(tmp_path / "other-ca")  # we trust a CA that did not issue the server's cert
    async with sender_for(server.port, stranger.cert_path) as smtp:
        with pytest.raises(TlsRequired):
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert server.handler.mails == []
    assert server.handler.messages == []


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
@pytest.mark.parametrize(
    ("stage", "reply", "error", "code"),
    [
        ("mail_reply", "451 4.3.0 try again later", SmtpTransient, 451),
        ("rcpt_reply", "450 4.2.0 mailbox busy", SmtpTransient, 450),
        ("data_reply", "452 4.3.1 insufficient storage", SmtpTransient, 452),
        ("mail_reply", "553 5.1.8 sender rejected", SmtpPermanent, 553),
        ("rcpt_reply", "550 5.1.1 no such user", SmtpPermanent, 550),
        ("data_reply", "554 5.7.1 message refused", SmtpPermanent, 554),
    ],
)
async def test_replies_are_typed_with_code_and_text(
    smtp_server: ServeFactory, stage: str, reply: str, error: type[Exception], code: int, pipelining: bool,
) -> None:
    server = await smtp_server(pipelining=pipelining)
    setattr(server.handler, stage, reply)
    async with sender_for(server.port, server.ca_file) as smtp:
        with pytest.raises(error) as caught:
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
        assert caught.value.code == code  # type: ignore[attr-defined]
        assert reply.split(" ", 1)[1] in caught.value.text  # type: ignore[attr-defined]
        # the same connection is still good for the next message once the server recovers
        setattr(server.handler, stage, None)
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert len(server.handler.messages) == 1
    assert len(server.handler.peers) == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
async def test_many_messages_share_one_connection(smtp_server: ServeFactory, pipelining: bool) -> None:
    server = await smtp_server(pipelining=pipelining)
    async with sender_for(server.port, server.ca_file) as smtp:
        for i in range(25):
            await smtp.send(MESSAGE.replace(b"outbox-1", f"outbox-{i}".encode()),
                            sender="postbud@example.com", recipients=["a@example.com"])
    assert len(server.handler.messages) == 25
    assert len(server.handler.peers) == 1  # one TCP connection (one client address/port)


async def test_reconnects_after_the_server_dropped_the_connection(
    smtp_server: ServeFactory,
) -> None:
    server = await smtp_server()
    async with sender_for(server.port, server.ca_file) as smtp:
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
        # simulate an idle timeout on the server side: close our transport under the client
        assert smtp._smtp is not None and smtp._smtp.transport is not None
        smtp._smtp.transport.close()
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert len(server.handler.messages) == 2
    assert len(server.handler.peers) == 2


async def test_connection_refused_is_the_channels_fault(tmp_path: Path, test_ca: LocalCA) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connect is refused
        async with sender_for(port, test_ca.cert_path) as smtp:
            with pytest.raises(RelayUnreachable):  # the relay is down: pause the channel, not the letter
                await smtp.send(MESSAGE, sender="p@example.com", recipients=["a@example.com"])


async def test_auth_is_used_and_bad_credentials_are_typed(smtp_server: ServeFactory) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen: list[bytes] = []

    def authenticator(server: object, session: object, envelope: object, mechanism: str,
                      auth_data: object) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        seen.append(auth_data.login)
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    server = await smtp_server(authenticator=authenticator)
    async with sender_for(server.port, server.ca_file, username="postbud",
                          password=SecretStr("s3cret")) as smtp:
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert seen == [b"postbud"]
    assert len(server.handler.messages) == 1
    async with sender_for(server.port, server.ca_file, username="postbud",
                          password=SecretStr("wrong")) as smtp:
        with pytest.raises(SmtpAuthFailed) as caught:
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert caught.value.code == 535
    assert len(server.handler.messages) == 1



async def test_refused_greeting_phase_keeps_the_message_for_later(smtp_server: ServeFactory) -> None:
    server = await smtp_server(handler=RecordingHandler(ehlo_reply="554 5.3.2 not now"))
    async with sender_for(server.port, server.ca_file) as smtp:
        with pytest.raises(RelayUnreachable) as caught:  # the server's state, not this message's fault
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert caught.value.code == 554
    assert server.handler.mails == []


async def test_refused_recipient_in_a_pipelined_group_sends_no_message(smtp_server: ServeFactory) -> None:
    # GIVEN a server that offers PIPELINING and refuses the recipient
    server = await smtp_server(handler=RecordingHandler(rcpt_reply="550 5.1.1 no such user"))
    async with sender_for(server.port, server.ca_file) as smtp:
        # WHEN MAIL, RCPT and DATA go out together
        with pytest.raises(SmtpPermanent) as caught:
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com", "b@example.com"])
        # THEN the refusal is the recipient's, no message was taken, and the session goes on
        assert caught.value.code == 550
        assert server.handler.messages == []
        server.handler.rcpt_reply = None
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com", "b@example.com"])
    assert server.handler.messages == [(MESSAGE, True)]
    assert len(server.handler.peers) == 1


async def test_addresses_cannot_smuggle_commands(smtp_server: ServeFactory) -> None:
    server = await smtp_server()
    async with sender_for(server.port, server.ca_file) as smtp:
        with pytest.raises(ValueError):
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com>\r\nRCPT TO:<b@x"])
    assert server.handler.mails == []


class _SlowOnce(RecordingHandler):
    """Answers the first DATA only after the client's timeout."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.messages and not getattr(self, "slept", False):
            self.slept = True
            await asyncio.sleep(2)
        return await super().handle_DATA(server, session, envelope)


async def test_a_reply_that_does_not_come_in_time_is_transient_and_the_connection_is_replaced(
        smtp_server: ServeFactory) -> None:
    # GIVEN a server that takes longer than the timeout to answer the end of a message
    server = await smtp_server(handler=_SlowOnce())
    async with SmtpSender(SmtpSettings(host="127.0.0.1", port=server.port, ca_file=server.ca_file,
                                       timeout=0.5)) as smtp:
        # WHEN a message is sent
        with pytest.raises(SmtpTransient) as caught:
            await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
        # THEN it is retried later (no code: it may have arrived), over a new connection, never
        # mistaking the late reply for the next message's
        assert caught.value.code is None
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
    assert len(server.handler.peers) == 2


class _ClosingOnce(RecordingHandler):
    """Says "421 closing channel" to the second MAIL (an idle timeout), then accepts as usual."""

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if len(self.mails) == 1 and not getattr(self, "closed_once", False):
            self.closed_once = True
            self.mails.append(address)
            return "421 4.4.2 idle too long, closing channel"
        return await super().handle_MAIL(server, session, envelope, address, options)


async def test_closing_channel_on_a_kept_connection_reconnects_and_sends(smtp_server: ServeFactory) -> None:
    server = await smtp_server(handler=_ClosingOnce())
    async with sender_for(server.port, server.ca_file) as smtp:
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])
        await smtp.send(MESSAGE, sender="postbud@example.com", recipients=["a@example.com"])  # no error
    assert len(server.handler.messages) == 2
    assert len(server.handler.peers) == 2
