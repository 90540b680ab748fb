"""The collector's bookkeeping: mailbox rows, what is stored already, acknowledgement intents and their completion.

Storing letters is `collector.storing`; every letter is persisted before it is acknowledged."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from collector.addressing import FOREIGN
from connectors.base import AcknowledgePolicy, Fetched, MessageRef
from connectors.registry import discover
from core import codec
from core.config import Config, MailboxConfig
from core.lifecycle import event_row, insert_events, record
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
    """The dialect's INSERT, which knows ON CONFLICT (both PostgreSQL and SQLite have it). Imported
    here: the one not in use costs a start 15 ms (PostgreSQL's loads every driver module it has)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


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
    return find_many(store, mailbox, [key]).get(key)


def find_many(store: Store, mailbox: MailboxKey, keys: Sequence[str]) -> dict[str, Known]:
    """Which of these provider messages are stored already, by key (one query per 500 keys)."""
    found: dict[str, Known] = {}
    with store.read() as session:
        for start in range(0, len(keys), 500):
            rows = session.execute(
                sa_select(col(Message.provider_message_id), col(Message.id), col(Message.acknowledged_at),
                          col(Message.status), col(Message.status_reason)).where(
                    col(Message.mailbox_id) == mailbox.id,
                    col(Message.provider_message_id).in_(keys[start:start + 500]),
                )
            ).all()
            for key, message_id, acknowledged_at, status, reason in rows:
                foreign = status == MessageStatus.QUARANTINED and (reason or "").startswith(FOREIGN)
                found[key] = Known(message_id, acknowledged_at is not None, status, foreign)
    return found


def sealed_ack_ref(store: Store, message_id: str, ref: MessageRef) -> bytes:
    """How to acknowledge the message again, sealed for its row's `ack_ref`."""
    plain = json.dumps({"key": ref.key, "handle": ref.handle, "meta": dict(ref.meta)}).encode("utf-8")
    return store.vault.encrypt(plain, codec.ack_ref_aad(message_id))


def mark_ack_intent(store: Store, intents: Sequence[tuple[str, MessageRef]]) -> None:
    """Record, before acting at the provider, that these messages are being acknowledged and how to do
    it again: a crash after the provider forgot them (moved, deleted, marked read) is then reconciled."""
    if intents:
        with store.transaction() as session:
            write_ack_intents(session, store, intents)


def write_ack_intents(session: Session, store: Store, intents: Sequence[tuple[str, MessageRef]]) -> None:
    """`mark_ack_intent` in the caller's transaction."""
    refs = dict(intents)
    for row in session.exec(select(Message).where(col(Message.id).in_(refs))):
        if row.acknowledged_at is not None:
            continue
        if row.ack_requested_at is None:
            row.ack_requested_at = utcnow()
        row.ack_ref = sealed_ack_ref(store, row.id, refs[row.id])
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


def mark_acknowledged(store: Store, message_ids: Sequence[str], *, reconciled: bool = False) -> None:
    """The provider has forgotten these messages: each recorded once, with the intent's ref dropped, in
    one transaction."""
    if message_ids:
        with store.transaction() as session:
            write_acknowledged(session, message_ids, reconciled=reconciled)


_M = Message.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
# Built once: a message recorded acknowledged, unless it was already (then it is not returned).
_RECORD_ACKNOWLEDGED = (update(Message.__table__)  # type: ignore[attr-defined]
                        .where(_M.id.in_(bindparam("ids", expanding=True)), _M.acknowledged_at.is_(None))
                        .values(acknowledged_at=bindparam("at"), ack_ref=None)
                        .returning(_M.id))


def write_acknowledged(session: Session, message_ids: Sequence[str], *, reconciled: bool = False) -> None:
    """`mark_acknowledged` in the caller's transaction."""
    session.flush()  # what the session holds goes first (the ORM's rows of `write_ack_intents`)
    connection = session.connection()
    done: list[str] = []
    for start in range(0, len(message_ids), 500):
        done += connection.execute(_RECORD_ACKNOWLEDGED, {"ids": list(message_ids[start:start + 500]),
                                                          "at": utcnow()}).scalars().all()
    detail = {"reconciled_after_restart": True} if reconciled else {}
    order = {message_id: n for n, message_id in enumerate(message_ids)}
    insert_events(session, [event_row(message_id, "acknowledged", actor=ACTOR, detail=detail)
                            for message_id in sorted(done, key=order.__getitem__)])


def save_cursor(store: Store, mailbox: MailboxKey, cursor: str | None) -> None:
    with store.transaction() as session:
        row = session.get(Mailbox, mailbox.id)
        assert row is not None
        row.cursor = cursor


def load_cursor(store: Store, mailbox: MailboxKey) -> str | None:
    with store.read() as session:
        row = session.get(Mailbox, mailbox.id)
        return None if row is None else row.cursor
