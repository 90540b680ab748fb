"""An in-memory `connectors.base.StateStore`, for tests and conformance runs of any connector."""

from __future__ import annotations

from typing import Any


class MemoryState:
    """Keeps the connector's state in memory; `saves` counts writes so tests can see persistence."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(initial or {})
        self.saves = 0

    async def load(self) -> dict[str, Any]:
        return dict(self.data)

    async def save(self, state: dict[str, Any]) -> None:
        self.data = dict(state)
        self.saves += 1
