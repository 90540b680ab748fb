"""Server-side console sessions: the cookie holds a random token, the table its SHA-256 and the CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, delete, select

from core.storage.accounts import ConsoleSession, ConsoleUser
from core.storage.db import Store
from core.storage.models import utcnow

COOKIE = "postbud_console"
# last_seen_at is written at most this often: a page view need not be a database write.
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class Viewer:
    """The signed-in person as the pages see them."""

    session_id: str
    csrf: str
    user_id: int
    username: str
    profile: str
    organisations: tuple[str, ...]
    recipient: str | None
    language: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start(store: Store, user: ConsoleUser, *, address: str | None) -> str:
    """A new session for `user`; returns the cookie's token (shown to the browser only)."""
    token = secrets.token_urlsafe(32)
    assert user.id is not None
    with store.transaction() as session:
        session.add(ConsoleSession(id=_digest(token), user_id=user.id, csrf=secrets.token_urlsafe(32),
                                   address=(address or "")[:64] or None))
    return token


def lookup(store: Store, token: str | None, *, idle: timedelta, absolute: timedelta,
           now: datetime | None = None) -> Viewer | None:
    """The session's viewer, or None when there is none, it timed out or the account is disabled."""
    if not token or len(token) > 100:
        return None
    now = now or utcnow()
    key = _digest(token)
    with store.read() as session:
        found = session.exec(select(ConsoleSession, ConsoleUser)
                             .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)  # type: ignore[arg-type]
                             .where(ConsoleSession.id == key)).first()
    if found is None:
        return None
    row, user = found
    if user.disabled or now - row.last_seen_at > idle or now - row.created_at > absolute:
        end(store, token)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        with store.transaction() as session:
            fresh = session.get(ConsoleSession, key)
            if fresh is not None:
                fresh.last_seen_at = now
                session.add(fresh)
    assert user.id is not None
    return Viewer(row.id, row.csrf, user.id, user.username, user.profile, tuple(user.organisations),
                  user.recipient, user.language)


def csrf_ok(viewer: Viewer, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(viewer.csrf.encode(), (presented or "").encode())


def end(store: Store, token: str) -> None:
    with store.transaction() as session:
        session.exec(delete(ConsoleSession).where(col(ConsoleSession.id) == _digest(token)))


def end_all(store: Store, user_id: int) -> int:
    """Sign-out everywhere: every session of the account ends."""
    with store.transaction() as session:
        rows = list(session.exec(select(ConsoleSession).where(ConsoleSession.user_id == user_id)))
        for row in rows:
            session.delete(row)
    return len(rows)
