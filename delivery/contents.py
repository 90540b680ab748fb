"""The letters a delivery run sends, read once each: the sealed columns alone, unsealed in one pass."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import bindparam, select

from core import codec
from core.domain import NormalizedMessage
from core.storage.db import Store
from core.storage.models import Attachment, Message

_M, _A = Message.__table__.c, Attachment.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
# Built once: the columns unsealing needs, not the rows (their other columns, and no ORM instances).
_MESSAGES = select(_M.id, _M.content, _M.received_at).where(_M.id.in_(bindparam("ids", expanding=True)),
                                                             _M.content.is_not(None))
_FILES = select(_A.message_id, _A.id, _A.document_index, _A.file_index, _A.content).where(
    _A.message_id.in_(bindparam("ids", expanding=True)))

Content = tuple[NormalizedMessage, dt.datetime]


def read_contents(store: Store, message_ids: Collection[str]) -> dict[str, Content | None]:
    """Several messages' content and received time in one read (None for one whose content is gone)."""
    found: dict[str, Content | None] = dict.fromkeys(message_ids)
    with store.engine.connect() as connection:
        messages = connection.execute(_MESSAGES, {"ids": list(found)}).all()
        files: dict[str, list[tuple[str, int, int, bytes]]] = {row.id: [] for row in messages}
        if files:
            for message_id, *file in connection.execute(_FILES, {"ids": list(files)}):
                files[message_id].append((file[0], file[1], file[2], file[3]))
    for row in messages:
        found[row.id] = codec.unseal_columns(store.vault, row.id, row.content, files[row.id]), row.received_at
    return found
