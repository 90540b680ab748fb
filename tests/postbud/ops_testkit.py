"""Builds stored messages with chosen times, parties, decisions and outbox rows, for trace/ops tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlmodel import select

from core import codec
from core.config import Config
from core.domain import Attention, Document, DocumentKind, File, MessageType, NormalizedMessage, Party
from postbud.runtime import open_store
from core.storage.db import Store
from core.storage.models import (
    Delivery,
    Mailbox,
    Message,
    MessageStatus,
    Organisation,
    RoutingDecision,
    TraceEvent,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
ORG_A = "12345678"
ORG_B = "87654321"
SKAT = Party(id="29188548", id_type="CVR", name="Skattestyrelsen")


@dataclass(frozen=True)
class Out:
    """One outbox row: recipient, channel, status and (if delivered) seconds after collection."""

    recipient: str
    channel: str = "email"
    status: str = "delivered"
    after_seconds: float | None = 60.0


@dataclass
class Spec:
    received_at: datetime
    org: str = ORG_A
    title: str = "Momsangivelse"
    sender: Party = SKAT
    recipient: Party | None = None
    attention: Attention | None = None
    content_data: dict[str, str] = field(default_factory=dict)
    text: str = "Et brev."
    status: str = MessageStatus.COLLECTED
    raw: bytes | None = b"<memo>original</memo>"
    files: Sequence[tuple[str, bytes]] = (("brev.pdf", b"%PDF-1.4 brev"),)
    decided_by: str | None = None
    action: str = "route"
    outbox: Sequence[Out] = ()
    quarantined: bool = False
    id: str | None = None  # default: a new random id


def store_for(config: Config) -> Store:
    return open_store(config)


def mailbox(store: Store, cvr: str, name: str = "inbox", provider: str = "folder") -> int:
    with store.transaction() as session:
        org = session.exec(select(Organisation).where(Organisation.cvr == cvr)).first()
        if org is None:
            org = Organisation(cvr=cvr, name=f"Org {cvr}")
            session.add(org)
            session.flush()
        box = session.exec(select(Mailbox).where(Mailbox.organisation_id == org.id, Mailbox.name == name)).first()
        if box is None:
            box = Mailbox(organisation_id=org.id, name=name, provider=provider)  # type: ignore[arg-type]
            session.add(box)
            session.flush()
        assert box.id is not None
        return box.id


def add(store: Store, spec: Spec) -> str:
    """Store one message as the collector and router would have, at the spec's times."""
    box = mailbox(store, spec.org)
    received = spec.received_at
    row = Message(
        mailbox_id=box, organisation_cvr=spec.org, provider="folder", provider_message_id=uuid.uuid4().hex,
        status=spec.status, received_at=received, updated_at=received, raw_media_type="application/xml",
        **({"id": spec.id} if spec.id else {}),
    )
    message = NormalizedMessage(
        message_id=uuid.uuid4().hex, message_type=MessageType.DIGITALPOST, title=spec.title,
        sender=spec.sender, recipient=spec.recipient or Party(id=spec.org, id_type="CVR", name="Modtager"),
        format="memo-1.2", attention=spec.attention,
        documents=(Document(kind=DocumentKind.MAIN, files=tuple(File(n, "application/pdf", c) for n, c in spec.files)),)
        if spec.files else (),
        content_data=dict(spec.content_data), text=spec.text,
    )
    with store.transaction() as session:
        if spec.quarantined:
            row.title = spec.title
            row.raw = store.vault.encrypt(spec.raw or b"", codec.raw_aad(row.id))
            attachments = []
        else:
            attachments = codec.seal(store.vault, row, message, spec.raw)
        session.add(row)
        session.flush()
        session.add_all(attachments)
        session.add(TraceEvent(message_id=row.id, at=received, kind="collected", actor="collector",
                               to_status="collected", detail={"mailbox": "inbox"}))
        decided = received + timedelta(seconds=1)
        if spec.decided_by:
            session.add(RoutingDecision(
                message_id=row.id, created_at=decided, action=spec.action, decided_by=spec.decided_by,
                recipients=[o.recipient for o in spec.outbox], explanation={"matched": spec.title},
            ))
            session.add(TraceEvent(message_id=row.id, at=decided, kind="routed", actor="router",
                                   detail={"recipients": [o.recipient for o in spec.outbox]}))
        for out in spec.outbox:
            at = received + timedelta(seconds=out.after_seconds) if out.after_seconds is not None else None
            session.add(Delivery(
                message_id=row.id, organisation_cvr=spec.org, recipient=out.recipient, channel=out.channel,
                status=out.status, idempotency_key=f"{row.id}:{out.recipient}:{out.channel}",
                created_at=decided, next_attempt_at=decided, delivered_at=at if out.status == "delivered" else None,
                last_reply="250 ok",
            ))
            if at is not None:
                session.add(TraceEvent(message_id=row.id, at=at, kind=out.status, actor="delivery",
                                       detail={"recipient": out.recipient, "channel": out.channel}))
    return row.id


def days_ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)
