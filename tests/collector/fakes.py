"""A scripted in-memory connector: pages, faults and acknowledgements under the test's control."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import ClassVar

from connectors.base import (
    Capability,
    ConnectorSettings,
    Fetched,
    MessageRef,
    Page,
)
from core.domain import MessageType, NormalizedMessage, Party


def message(key: str) -> NormalizedMessage:
    return NormalizedMessage(
        message_id=key,
        message_type=MessageType.DIGITALPOST,
        title=f"Brev {key}",
        sender=Party("29634750", "CVR", "Skattestyrelsen"),
        recipient=Party("12345678", "CVR"),
        format="fake",
    )


class ScriptedConnector:
    name: ClassVar[str] = "scripted"
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    active: ClassVar[dict[str, int]] = defaultdict(int)
    overlaps: ClassVar[list[str]] = []

    def __init__(self, pages: list[list[str]], *, ident: str = "mb") -> None:
        self.pages = pages
        self.ident = ident
        self.faults: dict[str, list[BaseException]] = defaultdict(list)
        self.poison: set[str] = set()
        self.fetched: list[str] = []
        self.acked: list[str] = []
        self.gate: asyncio.Event | None = None
        self.delay = 0.0

    async def list_new(self, cursor: str | None) -> Page:
        ScriptedConnector.active[self.ident] += 1
        try:
            if ScriptedConnector.active[self.ident] > 1:
                ScriptedConnector.overlaps.append(self.ident)
            if self.faults["list"]:
                raise self.faults["list"].pop(0)
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            index = int(cursor or 0)
            acked = set(self.acked)
            remaining = [k for k in self.pages[index] if k not in acked] if index < len(self.pages) else []
            more = index + 1 < len(self.pages)
            return Page(tuple(MessageRef(k, k) for k in remaining), str(index + 1) if more else None, more)
        finally:
            ScriptedConnector.active[self.ident] -= 1

    async def fetch(self, ref: MessageRef) -> Fetched:
        if self.faults["fetch"]:
            raise self.faults["fetch"].pop(0)
        if ref.key in self.poison:
            from connectors.base import PermanentError

            raise PermanentError(f"{ref.key} is malformed", raw=b"<broken")
        self.fetched.append(ref.key)
        return Fetched(ref, f"raw {ref.key}".encode(), "text/plain", message(ref.key))

    async def acknowledge(self, ref: MessageRef) -> None:
        if self.faults["ack"]:
            raise self.faults["ack"].pop(0)
        self.acked.append(ref.key)

    async def aclose(self) -> None:
        return None
