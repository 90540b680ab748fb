"""Erasure on request (GDPR art. 17): remove every message about one data subject, with a receipt.

A message is about a subject (CPR or CVR) when the number is the sealed message's recipient or
sender id, the attention person, or any ContentData / reply id; for a CPR also when it appears in the
message's text or original. A quarantined message has no parsed content, so its original is searched.
The receipt names counts and SHA-256 hashes of the erased message ids, never the subject's number:
a hash of a CPR could be reversed by trying every birth date.

Each erased letter leaves a tombstone with the provider's identity only (mailbox and provider
message id, status `erased`): the collector then never collects it again, and acknowledges it at
the provider (deletes or marks it, as that provider does) at its next poll if it was not already.
The receipt says which of the two each letter needed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import delete, func, update
from sqlmodel import col, select

from core import codec
from core.lifecycle import record
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import Attachment, Delivery, Message, MessageStatus, RoutingDecision, TraceEvent
from core.storage.vault import VaultError

log = logging.getLogger(__name__)

ACTOR = "erase"
SCAN_BATCH = 200


class SubjectError(ValueError):
    """The data subject was not given as exactly one well-formed CPR (10 digits) or CVR (8 digits)."""


@dataclass(frozen=True)
class ErasureReceipt:
    receipt_id: str
    subject_type: Literal["cpr", "cvr"]
    erased_at: datetime
    messages: int
    attachments: int
    deliveries: int
    decisions: int
    trace_events: int
    message_id_hashes: tuple[str, ...]
    unreadable: int = 0  # messages whose sealed content could not be decrypted, so not checked
    # At the provider: letters it had already let go of (acknowledged), and letters it still holds,
    # which the collector acknowledges at the next poll of their mailbox (and never collects again).
    provider_acknowledged: int = 0
    provider_acknowledged_at_next_poll: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["erased_at"] = self.erased_at.isoformat()
        data["message_id_hashes"] = list(self.message_id_hashes)
        return data


def subject(cpr: str | None, cvr: str | None) -> tuple[Literal["cpr", "cvr"], str]:
    """The normalized subject: digits only (a CPR may be written 010190-1234)."""
    if (cpr is None) == (cvr is None):
        raise SubjectError("give exactly one of a CPR or a CVR number")
    kind: Literal["cpr", "cvr"] = "cpr" if cpr is not None else "cvr"
    value = re.sub(r"[\s-]", "", cpr if cpr is not None else cvr or "")
    if not re.fullmatch(r"\d{10}" if kind == "cpr" else r"\d{8}", value):
        raise SubjectError(f"a {kind.upper()} number is {10 if kind == 'cpr' else 8} digits")
    return kind, value


def hash_id(message_id: str) -> str:
    return hashlib.sha256(message_id.encode("ascii")).hexdigest()


def erase(
    store: Store,
    cpr: str | None = None,
    cvr: str | None = None,
    *,
    now: datetime | None = None,
    metrics: Metrics | None = None,
    batch_size: int = 200,
) -> ErasureReceipt:
    """Delete every message about the subject with its attachments, outbox, decisions and trace."""
    kind, value = subject(cpr, cvr)
    now = now or datetime.now(timezone.utc)
    matched, unreadable = scan(store, kind, value)
    totals = {"attachments": 0, "deliveries": 0, "decisions": 0, "trace_events": 0}
    acknowledged = 0
    for start in range(0, len(matched), batch_size):
        ids = matched[start:start + batch_size]
        with store.transaction() as session:
            for key, table in (("attachments", Attachment), ("deliveries", Delivery),
                               ("decisions", RoutingDecision), ("trace_events", TraceEvent)):
                result = session.exec(delete(table).where(col(table.message_id).in_(ids)))
                totals[key] += int(result.rowcount or 0)
            acknowledged += int(session.exec(
                select(func.count()).select_from(Message)
                .where(col(Message.id).in_(ids), col(Message.acknowledged_at).is_not(None))
            ).one())
            # The tombstone: the provider's identity, status and timestamps of when we held it; no party,
            # title, content or original.
            session.exec(
                update(Message).where(col(Message.id).in_(ids)).values(
                    status=MessageStatus.ERASED, status_reason="erased on a data subject's request",
                    content=None, raw=None, title="", sender_id=None, sender_name=None, recipient_id=None,
                    message_type=None, format=None, sent_at=None, raw_media_type=None, purged_at=now,
                    lease_owner=None, lease_expires_at=None, updated_at=now,
                ).execution_options(synchronize_session=False)
            )
    receipt = ErasureReceipt(
        receipt_id=uuid.uuid4().hex,
        subject_type=kind,
        erased_at=now,
        messages=len(matched),
        message_id_hashes=tuple(sorted(hash_id(i) for i in matched)),
        unreadable=unreadable,
        provider_acknowledged=acknowledged,
        provider_acknowledged_at_next_poll=len(matched) - acknowledged,
        **totals,
    )
    with store.transaction() as session:
        event = record(session, None, "erased", actor=ACTOR, reason=f"erasure request ({kind})",
                       detail=receipt.to_json())
        event.at = now
    if metrics is not None:
        metrics.erased_messages.inc(len(matched))
    log.info("erasure %s: %d messages erased", receipt.receipt_id, len(matched))
    if unreadable:
        log.warning("erasure %s: %d messages could not be decrypted and were not checked",
                    receipt.receipt_id, unreadable)
    return receipt


def find_subject_messages(store: Store, kind: str, value: str) -> list[str]:
    """Ids of the stored (not yet purged) messages about the subject."""
    return scan(store, kind, value)[0]


def scan(store: Store, kind: str, value: str) -> tuple[list[str], int]:
    """(ids about the subject, count of messages that could not be decrypted), in keyset pages."""
    found: list[str] = []
    unreadable = 0
    last = ""
    while True:
        with store.read() as session:
            rows = session.exec(
                select(Message)
                .where(col(Message.id) > last, col(Message.purged_at).is_(None))
                .order_by(col(Message.id))
                .limit(SCAN_BATCH)
            ).all()
        if not rows:
            return found, unreadable
        last = rows[-1].id
        for row in rows:
            try:
                if _is_about(store, row, kind, value):
                    found.append(row.id)
            except VaultError:  # a lost key must not stop the erasure of everything readable
                unreadable += 1


def _is_about(store: Store, row: Message, kind: str, value: str) -> bool:
    if value in (_digits(row.sender_id), _digits(row.recipient_id)):
        return True
    pattern = _number_pattern(kind, value)
    if row.content is not None:
        message = codec.unseal(store.vault, row, [])
        if value in {_digits(v) for v in _ids(message.to_json())}:
            return True
        if kind == "cvr":
            # A company's number is printed in many letters that are not about it (letterheads).
            return False
        if pattern.search(message.text.encode("utf-8")):
            return True
    raw = codec.unseal_raw(store.vault, row)
    return raw is not None and pattern.search(raw) is not None


def _ids(data: dict[str, Any]) -> Iterable[str | None]:
    """Every id-bearing value of a normalized message (as `NormalizedMessage.to_json` lays it out)."""
    yield data["sender"].get("id")
    yield data["recipient"].get("id")
    attention = data.get("attention") or {}
    yield attention.get("person_id")
    yield attention.get("content_responsible_id")
    for reply in data.get("replies") or ():
        yield reply.get("sender_id")
        yield reply.get("recipient_id")
    yield from (data.get("content_data") or {}).values()


def _digits(value: str | None) -> str | None:
    """The digits of an id written with dashes or spaces; None for anything else."""
    if not value or not re.fullmatch(r"[\d\s-]+", value):
        return None
    return re.sub(r"\D", "", value)


def _number_pattern(kind: str, value: str) -> re.Pattern[bytes]:
    """The number standing alone (not inside a longer number); a CPR also as DDMMYY-XXXX."""
    body = re.escape(value) if kind == "cvr" else f"{value[:6]}-?{value[6:]}"
    return re.compile(rb"(?<!\d)" + body.encode("ascii") + rb"(?!\d)")


__all__ = ["ErasureReceipt", "SubjectError", "erase", "find_subject_messages"]
