"""Delivery channels: the Channel protocol, and the email and webhook channels over smtp.py and webhook.py."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Mapping

from dataclasses import replace
from typing import Protocol, runtime_checkable

import httpx
from pydantic import SecretStr

from core.config import DeliverySettings
from core.domain import File, NormalizedMessage
from core.settings import SecretRef
from delivery.compose import cover_for, encrypted_email, message_id_for
from delivery.envelope import cover_text
from delivery.errors import EncryptionError, TransientDeliveryError
from delivery.notifying import notification_for
from delivery.outbound import Composed
from delivery.outbound import Outbound as Outbound
from delivery.outbound import Sent as Sent
from delivery.plain import tls_only_forward
from delivery.post import PostChannel, post_client
from delivery.recipients import Recipient
from delivery.smtp import MailSender, SmtpSettings, TlsMode
from delivery.smtp_pool import SmtpPool
from delivery.webhook import build_envelope, post_webhook, webhook_client


class Channel(Protocol):
    """A way to hand an encrypted message to a recipient.

    `send` SHALL encrypt to `item.key` and send nothing in clear; it SHALL return only once the
    remote side accepted the message, and SHALL raise only DeliveryErrors from delivery/errors.py,
    chosen by what the worker must do: TransientDeliveryError (retry later),
    ChannelUnavailable (nothing sent; the channel is at fault, e.g. TlsRequired),
    RecipientUnusable (the key cannot be used: hold the recipient) or PermanentDeliveryError
    (dead letter, with the reply). Every retry of one outbox row SHALL carry the same identity
    (Message-ID, webhook id) so receivers deduplicate. `aclose` releases pooled connections and
    MAY be called twice.
    """

    name: str

    async def send(self, item: Outbound) -> Sent: ...

    async def aclose(self) -> None: ...


def delivery_token(idempotency_key: str) -> str:
    """A plain token for an outbox row's idempotency key (which holds ':' and recipient ids)."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


@runtime_checkable
class Composing(Protocol):
    """A channel whose CPU work (encryption) can be done ahead of `send`, in a worker thread.

    `compose` SHALL return the item with `composed` set, raising only the DeliveryErrors `send`
    may raise; `send` SHALL then send exactly that, and compose itself when `composed` is None.
    """

    def compose(self, item: Outbound) -> Outbound: ...


class EmailChannel:
    """S/MIME or PGP/MIME e-mail over kept-open, TLS-only SMTP connections (a pool)."""

    name = "email"

    def __init__(self, sender: MailSender, *, from_address: str, message_id_domain: str,
                 console_url: str = "http://127.0.0.1:9464") -> None:
        self._sender = sender
        self._from = from_address
        self._domain = message_id_domain
        self._console = console_url

    @property
    def sender(self) -> MailSender:
        """The TLS-only sender, for the few plain notices postbud mails itself (confirmation codes)."""
        return self._sender

    def compose(self, item: Outbound) -> Outbound:
        """The item with its e-mail made (encrypted): CPU work, done by the worker in a thread."""
        recipient = item.recipient
        message_id = message_id_for(item.token, domain=self._domain)
        if recipient.notify != "letter":
            return replace(item, composed=notification_for(item, from_addr=self._from, message_id=message_id,
                                                           console_url=self._console))
        if recipient.email is None:
            raise EncryptionError(f"recipient {recipient.id} has no e-mail address")
        if recipient.tls_only:
            # the administrator marked this forward target TLS-only: the trace records it per letter
            plain = tls_only_forward(item.message, from_addr=self._from, to_addr=recipient.email,
                                     message_id=message_id, trace_id=item.trace_id, received_at=item.received_at)
            return replace(item, composed=Composed(plain, recipient.email, message_id,
                                                   {"encrypted": False, "tls_only": True}))
        wire = encrypted_email(item.message, recipient, key=item.key, from_addr=self._from, message_id=message_id,
                               trace_id=item.trace_id, received_at=item.received_at)
        return replace(item, composed=Composed(wire, recipient.email, message_id))

    async def send(self, item: Outbound) -> Sent:
        if item.composed is None:
            # encryption is CPU work: keep the event loop (HTTP, other channels) responsive
            item = await asyncio.to_thread(self.compose, item)
        assert item.composed is not None
        mail = item.composed
        if mail.reply is not None:
            return Sent(mail.reply, None, mail.detail)  # nothing to send now (notifying.py)
        reply = await self._sender.send(mail.data, sender=self._from, recipients=[mail.to])
        return Sent(reply, mail.message_id, mail.detail)

    async def aclose(self) -> None:
        await self._sender.close()


def resolve_secret(reference: SecretRef) -> bytes:
    """A webhook secret from its reference (`{ env = "NAME" }` or `{ file = "path" }`)."""
    try:
        return reference.reveal().encode("utf-8")
    except LookupError as exc:
        raise TransientDeliveryError(f"webhook secret: {exc}") from None


class WebhookChannel:
    """Signed JSON envelope over HTTPS, every document encrypted to the recipient's key."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient | Callable[[], httpx.AsyncClient]) -> None:
        # A factory is called at the first send: loading the trust store would cost every start of the
        # daemon ~20 ms, and most runs send nothing by webhook.
        self._client = client if isinstance(client, httpx.AsyncClient) else None
        self._make = client if not isinstance(client, httpx.AsyncClient) else None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            assert self._make is not None
            self._client = self._make()
        return self._client

    async def send(self, item: Outbound) -> Sent:
        target, kind = item.recipient.webhook, item.recipient.key_kind
        if target is None or kind is None:
            raise EncryptionError(f"recipient {item.recipient.id} has no webhook target or no key")
        message = item.message
        body = await asyncio.to_thread(
            build_envelope, delivery_id=item.token, trace_id=item.trace_id,
            sender=message.sender.name or message.sender.id or "", title=message.title,
            received_at=item.received_at, files=_files_with_text(item), key_kind=kind, key=item.key,
            sealed=target.envelope == "sealed",
        )
        secret = resolve_secret(target.secret)
        status = await post_webhook(self.client, target.url, body, secret)
        return Sent(f"HTTP {status}", None)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _files_with_text(item: Outbound) -> tuple[File, ...]:
    """The documents, plus the cover note as an encrypted `message.txt` when the message carries text
    no document holds (a NemSMS, a notice, a MeMo without files): that content must arrive too."""
    message = item.message
    files = message.files()
    if not (message.notification or "").strip() and (files or not message.text.strip()):
        return files
    cover = cover_for(message, trace_id=item.trace_id, received_at=item.received_at)
    return (*files, File("message.txt", "text/plain", cover_text(cover).encode("utf-8"), None))


def smtp_settings(settings: DeliverySettings) -> SmtpSettings:
    password = settings.smtp_password.reveal() if settings.smtp_password is not None else None
    return SmtpSettings(
        host=settings.smtp_host, port=settings.smtp_port, tls=TlsMode(settings.smtp_tls),
        ca_file=settings.smtp_ca_file, username=settings.smtp_username,
        password=SecretStr(password) if password is not None else None,
        timeout=settings.smtp_timeout_seconds,
    )


def build_channels(settings: DeliverySettings) -> Mapping[str, Channel]:
    """The enabled channels, each with its own pooled connection (opened on first use)."""
    channels: dict[str, Channel] = {}
    if "email" in settings.channels:
        channels["email"] = EmailChannel(SmtpPool(smtp_settings(settings), size=settings.smtp_connections),
                                         from_address=settings.from_address,
                                         message_id_domain=settings.message_id_domain,
                                         console_url=settings.approval_base_url)
    if "post" in settings.channels and settings.post is not None:
        channels["post"] = PostChannel(post_client(settings.post), settings.post)
    if "webhook" in settings.channels:
        channels["webhook"] = WebhookChannel(functools.partial(
            webhook_client, ca_file=settings.webhook_ca_file, timeout=settings.webhook_timeout_seconds))
    return channels
