"""The collector's writes: each listed message persisted (or quarantined) in one transaction, before any ack."""

from __future__ import annotations

import json
from dataclasses import dataclass

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from collector.addressing import FOREIGN
from connectors.base import AcknowledgePolicy, Fetched, MessageRef
from connectors.registry import discover
from core import codec
from core.config import Config, MailboxConfig
from core.lifecycle import record
from core.logs import mask_cpr
from core.storage.db import Store
from core.storage.models import Mailbox, MailboxStatus, Message, MessageStatus, Organisation, utcnow

ACTOR = "collector"


@dataclass(frozen=True)
class MailboxKey:
    """What the collector needs to know about a mailbox row without holding a session."""

    id: int
    organisation_cvr: str
    name: str
    provider: str
    # Acknowledge at the provider only once every delivery is confirmed (else: once committed).
    ack_after_delivery: bool = False


def sync_mailboxes(store: Store, config: Config) -> list[MailboxKey]:
    """Make the organisation and mailbox rows match the configuration (new ones added, none deleted).

    Upserts (INSERT ... ON CONFLICT), so instances starting together on one database never trip
    over each other's rows.
    """
    keys = []
    with store.transaction() as session:
        insert = _insert_for(session)
        for org_config in config.organisations:
            session.execute(
                insert(Organisation)
                .values(cvr=org_config.cvr, name=org_config.name)
                .on_conflict_do_update(index_elements=["cvr"], set_={"name": org_config.name})
            )
            org = session.exec(select(Organisation).where(Organisation.cvr == org_config.cvr)).one()
            assert org.id is not None
            for mb_config in org_config.mailboxes:
                session.execute(
                    insert(Mailbox)
                    .values(organisation_id=org.id, name=mb_config.name, provider=mb_config.type,
                            status=MailboxStatus.ACTIVE, consecutive_failures=0)
                    .on_conflict_do_update(index_elements=["organisation_id", "name"],
                                           set_={"provider": mb_config.type})
                )
                mailbox = session.exec(
                    select(Mailbox).where(Mailbox.organisation_id == org.id, Mailbox.name == mb_config.name)
                ).one()
                assert mailbox.id is not None
                if mb_config.enabled:
                    keys.append(MailboxKey(mailbox.id, org.cvr, mailbox.name, mailbox.provider,
                                           acknowledge_policy(mb_config) is AcknowledgePolicy.AFTER_DELIVERY))
    return keys


def _insert_for(session: Session) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (both PostgreSQL and SQLite have it)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def acknowledge_policy(mailbox: MailboxConfig) -> AcknowledgePolicy:
    """The mailbox's own setting, else its connector's declared default (see connectors/base.py)."""
    if mailbox.acknowledge is not None:
        return AcknowledgePolicy(mailbox.acknowledge)
    registered = discover().get(mailbox.type)
    # A plug-in written before the contract declared a default keeps the safe one.
    default = getattr(registered.factory, "default_acknowledge", None) if registered else None
    return AcknowledgePolicy(default or AcknowledgePolicy.AFTER_DELIVERY)


@dataclass(frozen=True)
class Known:
    message_id: str
    acknowledged: bool
    status: str = MessageStatus.COLLECTED
    foreign: bool = False  # another company's mail: it stays at the provider for its owner

    def may_acknowledge(self, mailbox: MailboxKey) -> bool:
        """Committed is enough, unless the mailbox waits for delivery; a quarantined message's
        evidence is kept, so the provider need not hold it either (unless it is another company's:
        that stays at the provider for its owner); an expired or erased letter will never be
        delivered, and its tombstone keeps it from being collected again."""
        if self.foreign:
            return False
        if self.acknowledged or not mailbox.ack_after_delivery:
            return True
        return self.status in (MessageStatus.DELIVERED, MessageStatus.QUARANTINED, MessageStatus.EXPIRED,
                               MessageStatus.ERASED)


def find(store: Store, mailbox: MailboxKey, key: str) -> Known | None:
    """Is this provider message already stored? (checked before the expensive fetch)"""
    with store.read() as session:
        row = session.exec(
            select(Message.id, Message.acknowledged_at, Message.status, Message.status_reason).where(
                Message.mailbox_id == mailbox.id, Message.provider_message_id == key
            )
        ).first()
    if row is None:
        return None
    foreign = row[2] == MessageStatus.QUARANTINED and (row[3] or "").startswith(FOREIGN)
    return Known(row[0], row[1] is not None, row[2], foreign)


def save_collected(store: Store, mailbox: MailboxKey, fetched: Fetched, *, organisation: str | None = None,
                   held: str | None = None) -> Known:
    """Persist a fetched message with its trace event; idempotent on (mailbox, provider message id).

    `organisation` files it under another organisation than the mailbox's, `held` holds it there for a
    person with that reason (mail addressed to another configured organisation)."""
    row = Message(
        mailbox_id=mailbox.id,
        organisation_cvr=organisation or mailbox.organisation_cvr,
        provider=mailbox.provider,
        provider_message_id=fetched.ref.key,
        raw_media_type=fetched.raw_media_type,
        status=MessageStatus.COLLECTED,
    )
    try:
        with store.transaction() as session:
            attachments = codec.seal(store.vault, row, fetched.message, fetched.raw)
            session.add(row)
            session.flush()
            session.add_all(attachments)
            record(
                session,
                row.id,
                "collected",
                actor=ACTOR,
                to_status=MessageStatus.COLLECTED,
                detail={
                    "mailbox": mailbox.name,
                    "provider": mailbox.provider,
                    "provider_message_id": fetched.ref.key,
                    "format": fetched.message.format,
                    "documents": sum(len(d.files) for d in fetched.message.documents),
                },
            )
            if held is not None:
                row.status, row.status_reason = MessageStatus.HELD, held
                record(session, row.id, "held", actor=ACTOR, reason=held, from_status=MessageStatus.COLLECTED,
                       to_status=MessageStatus.HELD, detail={"organisation": row.organisation_cvr})
    except IntegrityError:
        existing = find(store, mailbox, fetched.ref.key)
        if existing is None:
            raise
        return existing
    return Known(row.id, False, row.status)


def save_quarantined(store: Store, mailbox: MailboxKey, ref: MessageRef, reason: str, raw: bytes | None) -> Known:
    """Keep an unusable message as evidence, with the reason in its trace; never lose it silently."""
    row = Message(
        mailbox_id=mailbox.id,
        organisation_cvr=mailbox.organisation_cvr,
        provider=mailbox.provider,
        provider_message_id=ref.key,
        status=MessageStatus.QUARANTINED,
        status_reason=mask_cpr(reason),
        title=ref.meta.get("title", ""),
    )
    if raw is not None:
        row.raw = store.vault.encrypt(raw, codec.raw_aad(row.id))
    try:
        with store.transaction() as session:
            session.add(row)
            session.flush()
            record(
                session,
                row.id,
                "quarantined",
                actor=ACTOR,
                reason=reason,
                to_status=MessageStatus.QUARANTINED,
                detail={"mailbox": mailbox.name, "provider": mailbox.provider, "provider_message_id": ref.key},
            )
    except IntegrityError:
        existing = find(store, mailbox, ref.key)
        if existing is None:
            raise
        return existing
    return Known(row.id, False, MessageStatus.QUARANTINED, reason.startswith(FOREIGN))


def mark_ack_intent(store: Store, message_id: str, ref: MessageRef) -> None:
    """Record, before acting at the provider, that this message is being acknowledged and how to do it
    again: a crash after the provider forgot it (moved, deleted, marked read) is then reconciled."""
    sealed_ref = json.dumps({"key": ref.key, "handle": ref.handle, "meta": dict(ref.meta)}).encode("utf-8")
    with store.transaction() as session:
        row = session.get(Message, message_id)
        if row is None or row.acknowledged_at is not None:
            return
        if row.ack_requested_at is None:
            row.ack_requested_at = utcnow()
        row.ack_ref = store.vault.encrypt(sealed_ref, codec.ack_ref_aad(message_id))
        session.add(row)


def pending_acks(store: Store, mailbox: MailboxKey) -> list[tuple[str, MessageRef]]:
    """Acknowledgements begun but never recorded (the process died in between), oldest first."""
    with store.read() as session:
        rows = session.exec(
            select(Message.id, Message.ack_ref).where(
                Message.mailbox_id == mailbox.id,
                col(Message.ack_requested_at).is_not(None),
                col(Message.acknowledged_at).is_(None),
            ).order_by(col(Message.ack_requested_at))
        ).all()
    pending = []
    for message_id, blob in rows:
        if blob is None:
            continue
        data = json.loads(store.vault.decrypt(blob, codec.ack_ref_aad(message_id)))
        pending.append((message_id, MessageRef(data["key"], data["handle"], data.get("meta") or {})))
    return pending


def mark_acknowledged(store: Store, message_id: str, *, reconciled: bool = False) -> None:
    """The provider has forgotten the message: recorded once, with the intent's ref dropped."""
    with store.transaction() as session:
        row = session.get(Message, message_id)
        if row is None or row.acknowledged_at is not None:
            return
        row.acknowledged_at = utcnow()
        row.ack_ref = None
        session.add(row)
        record(session, message_id, "acknowledged", actor=ACTOR,
               detail={"reconciled_after_restart": True} if reconciled else {})


def save_cursor(store: Store, mailbox: MailboxKey, cursor: str | None) -> None:
    with store.transaction() as session:
        row = session.get(Mailbox, mailbox.id)
        assert row is not None
        row.cursor = cursor


def load_cursor(store: Store, mailbox: MailboxKey) -> str | None:
    with store.read() as session:
        row = session.get(Mailbox, mailbox.id)
        return None if row is None else row.cursor
