"""Storing what a poll fetched: a group of letters in one transaction, each with its trace events, before any ack.

A group's rows, attachments, trace events and acknowledgement intents are one transaction: the
group is stored entirely or not at all, and nothing of it is acknowledged at the provider before the
commit. Content is sealed before the transaction, so the write lock is held for the writes only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from collector.addressing import FOREIGN
from collector.ledger import (
    ACTOR,
    Known,
    MailboxKey,
    find,
    mark_ack_intent,
    mark_acknowledged,
    sealed_ack_ref,
    write_ack_intents,
    write_acknowledged,
)
from connectors.base import Fetched, MessageRef
from core import codec
from core.lifecycle import event_row, insert_events
from core.logs import mask_cpr
from core.storage.db import Store
from core.storage.models import Attachment, Message, MessageStatus, new_id, utcnow

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Collect:
    """A fetched letter to store; `organisation` files it under another configured organisation than the
    mailbox's, `held` holds it there for a person with that reason (collector.addressing)."""

    fetched: Fetched
    organisation: str | None = None
    held: str | None = None

    @property
    def ref(self) -> MessageRef:
        return self.fetched.ref


@dataclass(frozen=True)
class Quarantine:
    """An unusable letter, kept as evidence (its raw bytes when there are any) with the reason."""

    ref: MessageRef
    reason: str
    raw: bytes | None = None


Outcome = Collect | Quarantine


@dataclass
class _Rows:
    """One letter's columns for the bulk inserts (no ORM objects: building those cost more than the writes)."""

    message: dict[str, Any]
    known: Known
    attachments: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _model_defaults(model: type[SQLModel]) -> tuple[dict[str, Any], dict[str, Callable[[], Any]]]:
    """A table model's column defaults as the ORM would fill them: values, and factories called per row."""
    values: dict[str, Any] = {}
    factories: dict[str, Callable[[], Any]] = {}
    for name, info in model.model_fields.items():
        if info.default_factory is not None:
            factories[name] = info.default_factory  # type: ignore[assignment]
        elif info.default is not PydanticUndefined:
            values[name] = info.default
    return values, factories


_MESSAGE_DEFAULTS = _model_defaults(Message)


def _message_row(**columns: Any) -> dict[str, Any]:
    """Every column of a new message row: the given values over the model's defaults."""
    values, factories = _MESSAGE_DEFAULTS
    row = dict(values)
    for name, factory in factories.items():
        if name not in columns:
            row[name] = factory()
    row.update(columns)
    return row


def _collected(store: Store, mailbox: MailboxKey, outcome: Collect) -> _Rows:
    fetched = outcome.fetched
    message_id = new_id()
    sealed, attachments = codec.seal_columns(store.vault, message_id, fetched.message, fetched.raw,
                                               fetched.document)
    row = _message_row(id=message_id, mailbox_id=mailbox.id,
                       organisation_cvr=outcome.organisation or mailbox.organisation_cvr,
                       provider=mailbox.provider, provider_message_id=fetched.ref.key,
                       raw_media_type=fetched.raw_media_type, status=MessageStatus.COLLECTED, **sealed)
    events = [event_row(message_id, "collected", actor=ACTOR, to_status=MessageStatus.COLLECTED, detail={
        "mailbox": mailbox.name,
        "provider": mailbox.provider,
        "provider_message_id": fetched.ref.key,
        "format": fetched.message.format,
        "documents": sum(len(d.files) for d in fetched.message.documents),
    })]
    if outcome.held is not None:
        row["status"], row["status_reason"] = MessageStatus.HELD, outcome.held
        events.append(event_row(message_id, "held", actor=ACTOR, reason=outcome.held,
                                from_status=MessageStatus.COLLECTED, to_status=MessageStatus.HELD,
                                detail={"organisation": row["organisation_cvr"]}))
    return _Rows(row, Known(message_id, False, row["status"]), attachments, events)


def _quarantined(store: Store, mailbox: MailboxKey, outcome: Quarantine) -> _Rows:
    ref = outcome.ref
    message_id = new_id()
    row = _message_row(id=message_id, mailbox_id=mailbox.id, organisation_cvr=mailbox.organisation_cvr,
                       provider=mailbox.provider, provider_message_id=ref.key, status=MessageStatus.QUARANTINED,
                       status_reason=mask_cpr(outcome.reason), title=ref.meta.get("title", ""))
    if outcome.raw is not None:
        row["raw"] = store.vault.encrypt(outcome.raw, codec.raw_aad(message_id))
    events = [event_row(message_id, "quarantined", actor=ACTOR, reason=outcome.reason,
                        to_status=MessageStatus.QUARANTINED,
                        detail={"mailbox": mailbox.name, "provider": mailbox.provider,
                                "provider_message_id": ref.key})]
    return _Rows(row, Known(message_id, False, MessageStatus.QUARANTINED, outcome.reason.startswith(FOREIGN)), [],
                 events)


def _rows(store: Store, mailbox: MailboxKey, outcome: Outcome) -> _Rows:
    if isinstance(outcome, Collect):
        return _collected(store, mailbox, outcome)
    return _quarantined(store, mailbox, outcome)


_MESSAGE_TABLE: Table = Message.__table__  # type: ignore[attr-defined]
_ATTACHMENT_TABLE: Table = Attachment.__table__  # type: ignore[attr-defined]


def save_group(store: Store, mailbox: MailboxKey, outcomes: Sequence[Outcome],
               intents: Sequence[tuple[str, MessageRef]] = (), acknowledged: Sequence[str] = ()) -> list[Known]:
    """Store `outcomes` in their order (each received later than the one before) with their trace
    events, in one transaction, and return what each became. The rows the provider may forget at once
    (`Known.may_acknowledge`) carry their acknowledgement intent; `intents` adds it to rows stored
    earlier; `acknowledged` records messages the provider has forgotten since (as `mark_acknowledged`),
    so the group before's record needs no transaction of its own. Idempotent on (mailbox, provider
    message id): when another instance stored one of them meanwhile, the group is stored one letter at
    a time and that one is what the other stored."""
    prepared = [_rows(store, mailbox, outcome) for outcome in outcomes]
    previous = None
    for rows, outcome in zip(prepared, outcomes, strict=True):
        row = rows.message
        if previous is not None and row["received_at"] <= previous:
            row["received_at"] = previous + _TICK  # the listing's order, even within one clock tick
        previous = row["received_at"]
        if rows.known.may_acknowledge(mailbox):
            row["ack_requested_at"] = utcnow()
            row["ack_ref"] = sealed_ack_ref(store, row["id"], outcome.ref)
    try:
        # durable: the provider is told it may forget these letters as soon as this returns
        with store.transaction(durable=True) as session:
            # Core inserts of the tables (not the ORM's bulk path): the rows are complete already.
            if prepared:
                session.execute(_MESSAGE_TABLE.insert(), [rows.message for rows in prepared])
            attachments = [a for rows in prepared for a in rows.attachments]
            if attachments:
                session.execute(_ATTACHMENT_TABLE.insert(), attachments)
            insert_events(session, [event for rows in prepared for event in rows.events])
            if intents:
                write_ack_intents(session, store, intents)
            if acknowledged:
                write_acknowledged(session, acknowledged)
    except IntegrityError:
        mark_acknowledged(store, acknowledged)  # rolled back with the group, which goes on without it
        if len(outcomes) == 1 and not intents:
            existing = find(store, mailbox, outcomes[0].ref.key)
            if existing is None:
                raise
            return [existing]
        return _one_by_one(store, mailbox, outcomes, intents)
    return [rows.known for rows in prepared]


def _one_by_one(store: Store, mailbox: MailboxKey, outcomes: Sequence[Outcome],
                intents: Sequence[tuple[str, MessageRef]]) -> list[Known]:
    knowns = [save_group(store, mailbox, [outcome])[0] for outcome in outcomes]
    mark_ack_intent(store, intents)
    return knowns


def save_collected(store: Store, mailbox: MailboxKey, fetched: Fetched, *, organisation: str | None = None,
                   held: str | None = None) -> Known:
    """Persist one fetched message with its trace event (see `save_group`)."""
    return save_group(store, mailbox, [Collect(fetched, organisation, held)])[0]


def save_quarantined(store: Store, mailbox: MailboxKey, ref: MessageRef, reason: str, raw: bytes | None) -> Known:
    """Keep an unusable message as evidence, with the reason in its trace; never lose it silently."""
    return save_group(store, mailbox, [Quarantine(ref, reason, raw)])[0]
