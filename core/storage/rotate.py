"""Key rotation: a new active key, then every sealed column re-encrypted in batches of committed work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlmodel import col, select

from core import codec
from core.storage.db import Store
from core.storage.vault import Vault
from core.storage.models import Attachment, Mailbox, Message


@dataclass
class RotationReport:
    reencrypted: int = 0
    batches: int = 0


def reencrypt_all(store: Store, *, batch_size: int = 500,
                  progress: Callable[[RotationReport], None] | None = None) -> RotationReport:
    """Re-seal every blob not under the active key. Safe to interrupt and run again."""
    report = RotationReport()
    vault = store.vault
    _rotate_rows(store, vault, Message, batch_size, report, progress,
                 lambda m: [("content", codec.content_aad(m.id)), ("raw", codec.raw_aad(m.id)),
                            ("ack_ref", codec.ack_ref_aad(m.id))])
    _rotate_rows(store, vault, Attachment, batch_size, report, progress,
                 lambda a: [("content", codec.attachment_aad(a.id))])
    _rotate_rows(store, vault, Mailbox, batch_size, report, progress,
                 lambda m: [("connector_state", codec.mailbox_state_aad(m.id))])
    return report


Row = TypeVar("Row", Message, Attachment, Mailbox)


def _rotate_rows(store: Store, vault: Vault, model: type[Row], batch_size: int, report: RotationReport,
                 progress: Callable[[RotationReport], None] | None,
                 columns: Callable[[Row], list[tuple[str, str]]]) -> None:
    last = None
    while True:
        with store.transaction() as session:
            query = select(model).order_by(col(model.id)).limit(batch_size)
            if last is not None:
                query = query.where(col(model.id) > last)
            rows = list(session.exec(query))
            if not rows:
                return
            for row in rows:
                for column, aad in columns(row):
                    blob = getattr(row, column)
                    if blob and vault.needs_rotation(blob):
                        setattr(row, column, vault.encrypt(vault.decrypt(blob, aad), aad))
                        report.reencrypted += 1
                session.add(row)
            last = rows[-1].id
        report.batches += 1
        if progress is not None:
            progress(report)
