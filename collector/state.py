"""A connector's private state (tokens, device keys) kept encrypted in its mailbox row."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from core import codec
from core.storage.db import Store
from core.storage.models import Mailbox


class MailboxState:
    """`connectors.base.StateStore` backed by the mailbox row; sealed with the at-rest key."""

    def __init__(self, store: Store, mailbox_id: int) -> None:
        self._store = store
        self._mailbox_id = mailbox_id

    def _aad(self) -> str:
        return codec.mailbox_state_aad(self._mailbox_id)

    async def load(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._load)

    def _load(self) -> dict[str, Any]:
        with self._store.read() as session:
            row = session.get(Mailbox, self._mailbox_id)
            blob = None if row is None else row.connector_state
        if not blob:
            return {}
        state: dict[str, Any] = json.loads(self._store.vault.decrypt(blob, self._aad()))
        return state

    async def save(self, state: dict[str, Any]) -> None:
        await asyncio.to_thread(self._save, state)

    def _save(self, state: dict[str, Any]) -> None:
        blob = self._store.vault.encrypt(json.dumps(state).encode("utf-8"), self._aad())
        with self._store.transaction() as session:
            row = session.get(Mailbox, self._mailbox_id)
            assert row is not None
            row.connector_state = blob
