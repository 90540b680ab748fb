"""Mailbox leases: which instance polls which mailbox, held in the database with an expiry.

A due mailbox is claimed with `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL) and a conditional
UPDATE that only takes a free or expired lease, so two instances never hold the same mailbox and a
dead instance's mailboxes fall to the others once its leases expire. On SQLite the same statements
serve the single instance.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, or_, true, update
from sqlmodel import col, select

from core.storage.db import Store
from core.storage.models import Mailbox, MailboxStatus


# A paused mailbox (its circuit open after repeated failures) is polled again when its pause ends.
POLLED = (MailboxStatus.ACTIVE, MailboxStatus.PAUSED)


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(col(Mailbox.lease_owner).is_(None), col(Mailbox.lease_expires_at) < now)


def claim_due(
    store: Store,
    owner: str,
    *,
    now: datetime,
    ttl: timedelta,
    limit: int,
    candidates: Collection[int],
    due_before: datetime | None = None,
    unpolled_since: datetime | None = None,
) -> list[int]:
    """Lease up to `limit` active mailboxes among `candidates` due by `due_before` (default `now`);
    returns the ids now held by `owner`."""
    due_before = due_before or now
    if limit <= 0 or not candidates:
        return []
    with store.transaction() as session:
        due = session.exec(
            select(Mailbox.id)
            .where(
                col(Mailbox.id).in_(list(candidates)),
                col(Mailbox.status).in_(POLLED),
                or_(col(Mailbox.next_poll_at).is_(None), col(Mailbox.next_poll_at) <= due_before),
                _free(now),
                true() if unpolled_since is None else or_(
                    col(Mailbox.last_success_at).is_(None), col(Mailbox.last_success_at) < unpolled_since),
            )
            .order_by(col(Mailbox.next_poll_at).asc().nulls_first(), col(Mailbox.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not due:
            return []
        session.execute(
            update(Mailbox)
            .where(col(Mailbox.id).in_(due), _free(now))
            .values(lease_owner=owner, lease_expires_at=now + ttl)
        )
        held = session.exec(
            select(Mailbox.id).where(col(Mailbox.id).in_(due), Mailbox.lease_owner == owner)
        ).all()
    return [i for i in held if i is not None]


def renew(store: Store, mailbox_id: int, owner: str, *, now: datetime, ttl: timedelta) -> bool:
    """Extend a held lease; False if it was lost (expired and taken by another instance)."""
    with store.transaction() as session:
        result = session.execute(
            update(Mailbox)
            .where(col(Mailbox.id) == mailbox_id, col(Mailbox.lease_owner) == owner)
            .values(lease_expires_at=now + ttl)
        )
    return bool(cast(CursorResult[Any], result).rowcount)  # an UPDATE's result is a CursorResult


@dataclass(frozen=True)
class Released:
    """What the release decided: the mailbox's failures in a row, its status and next due time."""

    failures: int
    status: str
    next_poll_at: datetime


def release(store: Store, mailbox_id: int, owner: str, *, now: datetime, delay: Callable[[int], tuple[float, bool]],
            failed: bool, error: str | None = None) -> Released | None:
    """Give the mailbox back with the poll's outcome and its next due time (so an overrunning poll is
    not queued up twice). `delay(failures in a row)` gives the seconds until the next poll and whether
    that is a pause (the circuit opened). A stop set during the poll (needs_reauth, error) and its
    reason are kept: only a failure with its own `error` replaces `last_error`."""
    with store.transaction() as session:
        row = session.get(Mailbox, mailbox_id)
        if row is None or row.lease_owner != owner:
            return None
        row.lease_owner = None
        row.lease_expires_at = None
        if failed:
            row.consecutive_failures += 1
            if error is not None:
                row.last_error = error
        else:
            row.consecutive_failures = 0
            row.last_success_at = now
            row.last_error = None
        seconds, paused = delay(row.consecutive_failures)
        row.next_poll_at = now + timedelta(seconds=seconds)
        if row.status in POLLED:
            row.status = MailboxStatus.PAUSED if paused else MailboxStatus.ACTIVE
        return Released(row.consecutive_failures, row.status, row.next_poll_at)


def release_all(store: Store, owner: str) -> int:
    """On shutdown: every lease this instance holds becomes free at once."""
    with store.transaction() as session:
        result = session.execute(
            update(Mailbox).where(col(Mailbox.lease_owner) == owner).values(lease_owner=None, lease_expires_at=None)
        )
    return int(cast(CursorResult[Any], result).rowcount)
