"""Sends the notices outbox (`core.notify`) by e-mail through the delivery relay: TLS always, retried.

A notice is leased before it is sent and marked sent with a `notification_sent` trace event (the
proof) after the server accepted it; a row marked sent is never sent again. A crash between the
server's acceptance and that mark re-sends it once with the same Message-ID, as deliveries do.
Database work runs in threads, SMTP on the event loop: nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from sqlalchemy import ColumnElement, and_, func, or_, update
from sqlmodel import col, select

from core.config import Config
from core.lifecycle import record
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import Notice, NoticeStatus, utcnow
from delivery import digest
from delivery.channels import smtp_settings
from delivery.errors import Action, DeliveryError
from delivery.smtp import SmtpSender

log = logging.getLogger(__name__)

ACTOR = "notices"
N = NoticeStatus


@dataclass(frozen=True)
class NoticeRun:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def _due(now: dt.datetime) -> ColumnElement[bool]:
    # pending and due, and not leased by a live sender (a dead one's lease runs out)
    return and_(col(Notice.status) == N.PENDING, col(Notice.next_attempt_at) <= now,
                or_(col(Notice.lease_expires_at).is_(None), col(Notice.lease_expires_at) < now))


def claim(store: Store, owner: str, *, now: dt.datetime, ttl: dt.timedelta, limit: int) -> list[Notice]:
    """Lease up to `limit` due notices (SKIP LOCKED + a conditional UPDATE, as the delivery outbox)."""
    with store.transaction() as session:
        ids = session.exec(
            select(Notice.id).where(_due(now)).order_by(col(Notice.next_attempt_at), col(Notice.id))
            .limit(limit).with_for_update(skip_locked=True)
        ).all()
        if not ids:
            return []
        session.execute(
            update(Notice).where(col(Notice.id).in_(ids), _due(now))
            .values(lease_owner=owner, lease_expires_at=now + ttl, attempts=Notice.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        return list(session.exec(
            select(Notice).where(col(Notice.id).in_(ids), Notice.lease_owner == owner)
            .order_by(col(Notice.next_attempt_at), col(Notice.id))
        ).all())


def compose(notice: Notice, config: Config, *, footer: str | None = None) -> bytes:
    """The e-mail: plain text, the console link at the foot (or `footer`, for a recipient's digest,
    whose text links the console itself), a Message-ID fixed per notice."""
    mail = EmailMessage()
    mail["From"] = config.delivery.from_address
    mail["To"] = ", ".join(notice.recipients)
    mail["Subject"] = f"[postbud] {notice.subject}"
    mail["Date"] = format_datetime(notice.created_at)
    mail["Message-ID"] = f"<notice.{notice.id}@{config.delivery.message_id_domain}>"
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    mail["X-Postbud-Notice"] = notice.kind
    link = f"{config.console_url}/queue?org={notice.organisation_cvr}"
    mail.set_content(f"{notice.text}\n{footer}" if footer is not None
                     else f"{notice.text}\n\nOpen the postbud console: {link}\n")
    # Long subjects stay on one line (998 is SMTP's limit); folding them confuses some readers.
    return mail.as_bytes(policy=SMTP.clone(max_line_length=998))


def _settle(store: Store, notice: Notice, owner: str, *, outcome: str, reply: str, now: dt.datetime,
            retry_at: dt.datetime | None = None) -> None:
    with store.transaction() as session:
        row = session.get(Notice, notice.id, with_for_update=True)
        if row is None or row.lease_owner != owner or row.status != N.PENDING:
            return  # our lease ran out and another sender owns it now
        row.lease_owner, row.lease_expires_at = None, None
        row.last_error = None if outcome == "sent" else reply[:500]
        detail = {"notice": row.id, "kind": row.kind, "key": row.key, "organisation": row.organisation_cvr,
                  "to": list(row.recipients), "attempt": row.attempts, "reply": reply[:200]}
        if outcome == "sent":
            row.status, row.sent_at = N.SENT, now
            record(session, None, "notification_sent", actor=ACTOR, reason=row.subject, detail=detail)
        elif outcome == "failed":
            row.status = N.FAILED
            record(session, None, "notification_failed", actor=ACTOR, reason=reply[:500], detail=detail)
        else:
            assert retry_at is not None
            row.next_attempt_at = retry_at
        session.add(row)


def _backoff(attempt: int, config: Config) -> dt.timedelta:
    n = config.notices
    return dt.timedelta(seconds=min(n.retry_max_seconds, n.retry_base_seconds * 2.0 ** max(0, attempt - 1)))


async def send_notices(
    store: Store, config: Config, metrics: Metrics | None = None, *, owner: str,
    sender: SmtpSender | None = None, clock: Callable[[], dt.datetime] = utcnow, limit: int = 50,
) -> NoticeRun:
    """Send every due notice once; transient failures back off, the last attempt marks it failed."""
    if not config.notices.enabled:
        return NoticeRun()
    ttl = dt.timedelta(seconds=config.delivery.lease_seconds)
    notices = await asyncio.to_thread(claim, store, owner, now=clock(), ttl=ttl, limit=limit)
    if not notices:
        return NoticeRun()
    own = sender is None
    smtp = sender or SmtpSender(smtp_settings(config.delivery))
    counts = {"sent": 0, "retry": 0, "failed": 0}
    paused: DeliveryError | None = None  # the relay itself failed (TLS, credentials): the rest wait too
    try:
        for notice in notices:
            try:
                if paused is not None:
                    raise paused
                wire = compose(notice, config, footer=digest.footer(config, store, notice, now=clock()))
                reply = await smtp.send(wire, sender=config.delivery.from_address, recipients=notice.recipients)
            except DeliveryError as exc:  # TLS missing, refused, unreachable: nothing was accepted
                if exc.action is Action.PAUSE_CHANNEL:
                    paused = exc
                final = exc.action is Action.DEAD_LETTER or notice.attempts >= config.notices.max_attempts
                outcome = "failed" if final else "retry"
                log.warning("notice %s not sent (%s, attempt %d): %s", notice.id, outcome, notice.attempts, exc)
                await asyncio.to_thread(_settle, store, notice, owner, outcome=outcome, reply=str(exc),
                                        now=clock(), retry_at=clock() + _backoff(notice.attempts, config))
            else:
                outcome = "sent"
                log.info("notice %s sent to %d recipients", notice.id, len(notice.recipients))
                await asyncio.to_thread(_settle, store, notice, owner, outcome=outcome, reply=reply, now=clock())
            counts[outcome] += 1
            if metrics is not None:
                metrics.notices.labels(notice.kind, outcome).inc()
    finally:
        if own:
            await smtp.close()
    return NoticeRun(counts["sent"], counts["retry"], counts["failed"])


def pending_notices(store: Store) -> int:
    """Notices still waiting to be sent (for `postbud purge` to say what it left for the daemon)."""
    with store.read() as session:
        return int(session.exec(select(func.count()).select_from(Notice).where(Notice.status == N.PENDING)).one())
