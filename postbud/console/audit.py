"""The console's audit trail: who did what, when and from where (sign-ins, placements, resends,
downloads, account and setting changes)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.storage.accounts import AuditEvent
from core.storage.db import Store
from core.storage.models import utcnow


def record(session: Session, username: str, action: str, *, address: str | None = None,
           organisation: str | None = None, message_id: str | None = None,
           detail: dict[str, Any] | None = None) -> None:
    session.add(AuditEvent(username=username[:64], address=(address or "")[:64] or None, action=action,
                           organisation_cvr=organisation, message_id=message_id, detail=detail or {}))


def note(store: Store, username: str, action: str, **kwargs: Any) -> None:
    """`record` in its own transaction."""
    with store.transaction() as session:
        record(session, username, action, **kwargs)


def failures_since(session: Session, since: datetime, *, username: str | None = None,
                   address: str | None = None) -> int:
    query = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "signin_failed", col(AuditEvent.at) >= since)
    if username is not None:
        query = query.where(AuditEvent.username == username)
    if address is not None:
        query = query.where(AuditEvent.address == address)
    return int(session.exec(query).one())


def recent(store: Store, *, organisations: tuple[str, ...] | None, limit: int = 100,
           before: datetime | None = None) -> list[AuditEvent]:
    """Newest first. With `organisations`, only events about those organisations or by their people
    (events without an organisation, such as sign-ins, are shown to administrators of any)."""
    query = select(AuditEvent)
    if organisations is not None:
        query = query.where(col(AuditEvent.organisation_cvr).in_(organisations)
                            | col(AuditEvent.organisation_cvr).is_(None))
    if before is not None:
        query = query.where(col(AuditEvent.at) < before)
    with store.read() as session:
        return list(session.exec(query.order_by(col(AuditEvent.at).desc()).limit(limit)))


def window_start(minutes: float) -> datetime:
    return utcnow() - timedelta(minutes=minutes)
