"""The route stage: takes collected messages in groups and records their decisions in one transaction per group."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, bindparam
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from core import codec
from core.lifecycle import EncodedDetail, EncodedJSON, Stated, insert_events, transition, update_status
from core.logs import correlation_id
from core.metrics import Metrics
from core.recipients import RecipientResolver
from core.storage.db import Store
from core.storage.models import (
    Delivery,
    DeliveryStatus,
    Mailbox,
    Message,
    MessageStatus,
    RoutingDecision,
    new_id,
    utcnow,
)
from router.decision import Action, Decider, Decision, Facts

log = logging.getLogger(__name__)

ACTOR = "router"
DEFAULT_CHANNEL = "email"
UNREADABLE = "content cannot be read"


def route_next(store: Store, decider: Decider, metrics: Metrics, *, directory: RecipientResolver | None = None,
               channels: Collection[str] | None = None) -> bool:
    """Route the oldest collected message; False when there is none left (see apply_decision for
    `directory` and `channels`)."""
    return route_batch(store, decider, metrics, directory=directory, channels=channels, limit=1) > 0


def route_batch(store: Store, decider: Decider, metrics: Metrics, *, directory: RecipientResolver | None = None,
                channels: Collection[str] | None = None, limit: int = 50) -> int:
    """Route up to `limit` of the oldest collected messages in one transaction; how many were taken.

    Each message gets its decision, outbox rows and status change (with its trace event) as
    `apply_decision` writes them for one message, but the group's rows go in a few statements; the
    group commits together, so delivery sees every one of them or none, and a crash before the
    commit leaves them all collected.

    On SQLite, whose one writer at a time holds everyone else up, the group is read and decided
    first, outside the write transaction; that transaction then takes those of them still collected
    (a person's placement or an erasure may have moved one meanwhile) and writes their rows, so the
    write lock is held for the writes only. On PostgreSQL the group's rows are locked as they are read
    (FOR UPDATE SKIP LOCKED) and decided in the transaction: instances sharing the database take
    different groups, none decides a letter another one routes, and none waits for another.
    """
    outcomes = None
    while outcomes is None:  # every letter read moved on before the write took them: the next ones
        outcomes = _route_group(store, decider, limit, directory, channels)
    if not outcomes:
        return 0
    counts: Counter[str] = Counter()
    for message_id, decision, provider in outcomes:
        if decision is None:
            metrics.messages_quarantined.labels(provider, "route").inc()
            counts["quarantined"] += 1
            continue
        metrics.routing_decisions.labels(decision.decided_by, decision.action.value).inc()
        counts[decision.action.value] += 1
        # Each letter's line only when debugging: the trace has every decision, and a line per letter
        # cost more than deciding it at a morning's volume.
        log.debug("message %s id=%s by=%s", decision.action.value, message_id, decision.decided_by)
    log.info("routed a group of %d: %s", len(outcomes), ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
    return len(outcomes)


def _route_group(store: Store, decider: Decider, limit: int, directory: RecipientResolver | None,
                 channels: Collection[str] | None) -> list[tuple[str, Decision | None, str]] | None:
    """One group read, decided and written (`route_batch`): each letter's outcome, none when no letter
    is collected, or None when every one read moved on before the write transaction (SQLite only)."""
    if not store.is_sqlite:
        with store.transaction() as session:
            letters, mailboxes = _read_group(session.connection(), limit)
            if not letters:
                return []
            return _write_group(session, letters, _decide_all(store, decider, letters, mailboxes),
                                directory, channels)
    with store.read() as session:
        letters, mailboxes = _read_group(session.connection(), limit)
    if not letters:
        return []
    decided = _decide_all(store, decider, letters, mailboxes)
    with store.transaction(immediate=True) as session:
        still = _still_collected(session.connection(), letters)
        return _write_group(session, still, decided, directory, channels) if still else None


def _read_group(connection: Connection, limit: int) -> tuple[list[Collected], dict[int, str]]:
    """The oldest collected letters (locked where the database locks rows) and their mailboxes' names."""
    letters = [Collected(*row) for row in connection.execute(_COLLECTED.limit(limit))]
    if not letters:
        return [], {}
    return letters, {row.id: row.name for row in connection.execute(
        _MAILBOX_NAMES, {"ids": list({m.mailbox_id for m in letters})})}


def _still_collected(connection: Connection, letters: list[Collected]) -> list[Collected]:
    """Those of `letters` still collected, as they stand now (read in the write transaction)."""
    now = {row.id: row for row in connection.execute(_STILL_COLLECTED, {"ids": [m.id for m in letters]})}
    return [letter._replace(status=now[letter.id].status, purged_at=now[letter.id].purged_at)
            for letter in letters if letter.id in now]


def _decide_all(store: Store, decider: Decider, letters: list[Collected],
                mailboxes: dict[int, str]) -> dict[str, Decision | str]:
    decided: dict[str, Decision | str] = {}
    for letter in letters:
        correlation_id.set(letter.id)
        decided[letter.id] = _decide(store, decider, letter, mailboxes.get(letter.mailbox_id, ""))
    return decided


def _write_group(session: Session, letters: list[Collected], decided: dict[str, Decision | str],
                 directory: RecipientResolver | None,
                 channels: Collection[str] | None) -> list[tuple[str, Decision | None, str]]:
    """The group's decisions, outbox rows and moves, in the caller's transaction; (id, decision or
    None when quarantined, provider) per letter."""
    connection = session.connection()
    # One query for the group's outbox rows (a collected letter has none unless it was routed and sent
    # back): a query per letter would also flush the session before each. Their letters' ids first,
    # so a group without any (every group, as letters move now) builds no ORM query or rows.
    existing: dict[str, list[Delivery]] = {m.id: [] for m in letters}
    having = [row.message_id for row in connection.execute(_WITH_OUTBOX_ROWS, {"ids": list(existing)})]
    if having:
        for row in session.exec(select(Delivery).where(col(Delivery.message_id).in_(having))):
            existing[row.message_id].append(row)
    group = _Group(actor=ACTOR, directory=directory, channels=channels)
    outcomes: list[tuple[str, Decision | None, str]] = []
    for letter in letters:
        decision = decided[letter.id]
        if isinstance(decision, str):
            group.quarantine(letter, decision)
            outcomes.append((letter.id, None, letter.provider))
        else:
            group.add(letter, decision, existing[letter.id])
            outcomes.append((letter.id, decision, letter.provider))
    group.write(session)
    return outcomes


class Collected(NamedTuple):
    """What routing reads of a collected letter (`_COLLECTED`): the state machine's columns, where and
    when it arrived, and its sealed content."""

    id: str
    status: str
    purged_at: datetime | None
    mailbox_id: int
    organisation_cvr: str
    provider: str
    received_at: datetime
    content: bytes | None


_M = Message.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
# Columns, not ORM objects (the original `raw` is never read): building and tracking a Message per
# letter cost routing more than its status update. Add the LIMIT.
_COLLECTED = (select_columns(_M.id, _M.status, _M.purged_at, _M.mailbox_id, _M.organisation_cvr, _M.provider,
                             _M.received_at, _M.content)
              .where(_M.status == MessageStatus.COLLECTED).order_by(_M.received_at)
              .with_for_update(skip_locked=True))
_STILL_COLLECTED = (select_columns(_M.id, _M.status, _M.purged_at)
                    .where(_M.id.in_(bindparam("ids", expanding=True)), _M.status == MessageStatus.COLLECTED))
_WITH_OUTBOX_ROWS = (select_columns(Delivery.__table__.c.message_id).distinct()  # type: ignore[attr-defined]
                     .where(Delivery.__table__.c.message_id.in_(bindparam("ids", expanding=True))))  # type: ignore[attr-defined]
_MAILBOX_NAMES = (select_columns(Mailbox.__table__.c.id, Mailbox.__table__.c.name)  # type: ignore[attr-defined]
                  .where(Mailbox.__table__.c.id.in_(bindparam("ids", expanding=True))))  # type: ignore[attr-defined]


def _decide(store: Store, decider: Decider, letter: Collected, mailbox: str) -> Decision | str:
    """The decider's decision on one message, or why it is quarantined (its content cannot be read)."""
    try:
        if letter.content is None:
            raise ValueError(f"message {letter.id} has no content (purged or quarantined)")
        # The sealed content only (with the extracted text and each file's name and media type): rules
        # and the model never read a file's bytes, so they are neither read nor decrypted here;
        # delivery decrypts the files it sends.
        normalized = codec.unseal_columns(store.vault, letter.id, letter.content, [])
    except Exception as exc:  # undecryptable content is bad input for this message only
        return f"content cannot be read: {type(exc).__name__}"
    facts = Facts(
        message=normalized,
        organisation=letter.organisation_cvr,
        mailbox=mailbox,
        provider=letter.provider,
        received_at=letter.received_at,
    )
    return decider.decide(facts)


def _targets(org: str, recipients: tuple[str, ...], directory: RecipientResolver | None,
             channels: Collection[str] | None) -> list[tuple[str, str]]:
    """(recipient, channel) per outbox row: groups expanded and each recipient's channel chosen when a
    recipients file is given; ids it does not know stay as named (delivery holds them)."""
    if directory is None:
        return [(r, DEFAULT_CHANNEL) for r in recipients]
    enabled = list(channels) if channels is not None else ["email", "webhook", "post"]
    out: dict[tuple[str, str], None] = {}
    for named in recipients:
        try:
            members = directory.members(org, named)
        except KeyError:
            out[(named, DEFAULT_CHANNEL)] = None
            continue
        for rid in members:
            out[(rid, str(directory.channel(org, rid, enabled=enabled)))] = None
    return list(out)


class Routable(Stated, Protocol):
    """A letter as a group writes it: a `Message`, or its `Collected` columns."""

    @property
    def organisation_cvr(self) -> str: ...


# Who routed a letter, as the routing_decision trigger derives it (migration 0008's ROUTED_BY): written
# with the status so the trigger need not rewrite the message row.
_ROUTED_BY = frozenset({"rule", "model", "hand", "default"})

# A status change of the group: (target, trace kind, reason, routed_by) -> the messages and each one's
# event detail.
_Moves = dict[tuple[MessageStatus, str, str | None, str | None], tuple[list[Routable], list[dict[str, Any]]]]
_INSERT_DECISIONS = RoutingDecision.__table__.insert().values(  # type: ignore[attr-defined]
    explanation=bindparam("explanation", type_=EncodedJSON()))
_INSERT_DELIVERIES = Delivery.__table__.insert()  # type: ignore[attr-defined]


@dataclass
class _Group:
    """Decisions of one transaction as rows: written by a few statements (one per table, and one
    status move per target, kind and reason) instead of ORM objects flushed one by one."""

    actor: str
    kind: str = "routed"
    directory: RecipientResolver | None = None
    channels: Collection[str] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    reopened: list[Delivery] = field(default_factory=list)
    moves: _Moves = field(default_factory=dict)

    def add(self, message: Routable, decision: Decision, existing: list[Delivery]) -> None:
        """The decision's rows, its outbox rows and its status move (routed or held)."""
        now = utcnow()
        # The explanation (a rule set's ~2 KB) encoded once, for the decision's column and inside the
        # event's detail, whose text is `json.dumps` of that detail put together from its parts.
        explanation, recipients = json.dumps(decision.explanation), list(decision.recipients)
        self.decisions.append({
            "message_id": message.id, "created_at": now, "action": decision.action.value,
            "decided_by": decision.decided_by, "rule": decision.rule, "recipients": recipients,
            "explanation": explanation, "actor": self.actor,
        })
        detail = EncodedDetail({
            "decided_by": decision.decided_by,
            "rule": decision.rule,
            "recipients": recipients,
            "explanation": decision.explanation,
        }, f'{{"decided_by": {json.dumps(decision.decided_by)}, "rule": {json.dumps(decision.rule)}, '
           f'"recipients": {json.dumps(recipients)}, "explanation": {explanation}}}')
        if decision.action is Action.ROUTE and decision.recipients:
            # A held message re-routed to a recipient it already had (e.g. approved again) reuses the row.
            rows = {(d.recipient, d.channel): d for d in existing}
            org = message.organisation_cvr
            for recipient, channel in _targets(org, decision.recipients, self.directory, self.channels):
                row = rows.get((recipient, channel))
                if row is None:
                    self.deliveries.append({
                        "id": new_id(), "message_id": message.id, "organisation_cvr": org,
                        "recipient": recipient, "channel": channel, "status": DeliveryStatus.PENDING,
                        "idempotency_key": f"{message.id}:{recipient}:{channel}", "attempts": 0,
                        "created_at": now, "next_attempt_at": now,
                    })
                elif row.status in (DeliveryStatus.HELD, DeliveryStatus.FAILED):
                    row.status, row.attempts, row.next_attempt_at = DeliveryStatus.PENDING, 0, now
                    row.lease_owner = row.lease_expires_at = None
                    self.reopened.append(row)
            routed_by = decision.decided_by if decision.decided_by in _ROUTED_BY else None
            self._move(message, MessageStatus.ROUTED, self.kind, decision.reason, detail, routed_by)
        else:
            self._move(message, MessageStatus.HELD, "held", decision.reason or "held for manual placement", detail)

    def quarantine(self, message: Routable, reason: str) -> None:
        self._move(message, MessageStatus.QUARANTINED, "quarantined", reason, None)

    def _move(self, message: Routable, target: MessageStatus, kind: str, reason: str | None,
              detail: dict[str, Any] | None, routed_by: str | None = None) -> None:
        messages, details = self.moves.setdefault((target, kind, reason, routed_by), ([], []))
        messages.append(message)
        details.append(detail or {})

    def write(self, session: Session) -> None:
        """The status moves first (one UPDATE each, their trace events in one INSERT), then the rows."""
        events: list[dict[str, Any]] = []
        for (target, kind, reason, routed_by), (messages, details) in self.moves.items():
            events += update_status(session, messages, target, kind=kind, actor=self.actor, reason=reason,
                                    details=details, routed_by=routed_by)
        insert_events(session, events)
        self.write_rows(session)

    def write_rows(self, session: Session) -> None:
        """The decisions and outbox rows (the moves are the caller's)."""
        session.flush()  # what the session holds goes first, as the ORM inserts' autoflush did
        connection = session.connection()
        if self.decisions:
            connection.execute(_INSERT_DECISIONS, self.decisions)
        if self.deliveries:
            connection.execute(_INSERT_DELIVERIES, self.deliveries)
        for row in self.reopened:
            session.add(row)


def apply_decision(session: Session, message: Message, decision: Decision, *, actor: str,
                   kind: str = "routed", directory: RecipientResolver | None = None,
                   channels: Collection[str] | None = None, existing: list[Delivery] | None = None) -> None:
    """Write the decision, its outbox rows and the status change, all in the caller's transaction.

    With `directory` groups are expanded and each recipient gets its preferred channel among
    `channels` (default: all), else the organisation's. `existing`: the message's outbox rows when the
    caller read them already (else they are read here). The message object is moved as `transition`
    moves it (a person's placement: one letter, its object used on by the caller).
    """
    if existing is None:
        existing = list(session.exec(select(Delivery).where(Delivery.message_id == message.id)))
    group = _Group(actor=actor, kind=kind, directory=directory, channels=channels)
    group.add(message, decision, existing)
    group.write_rows(session)
    (target, event_kind, reason, _), (_, details) = next(iter(group.moves.items()))
    transition(session, message, target, kind=event_kind, actor=actor, reason=reason, detail=details[0])
