"""A circuit breaker per provider: after repeated transient failures, stop polling it for a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0


class CircuitBreaker:
    """Opens after `threshold` consecutive failures of one provider, for a cooldown that doubles each
    time it re-opens (up to `max_cooldown`). After the cooldown, polls go through again; the next
    failure re-opens it at once, a success closes it."""

    def __init__(self, *, threshold: int = 5, cooldown: float = 30.0, max_cooldown: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._clock = clock
        self._states: dict[str, _State] = {}

    def is_open(self, provider: str) -> bool:
        state = self._states.get(provider)
        return bool(state and self._clock() < state.open_until)

    def success(self, provider: str) -> None:
        self._states.pop(provider, None)

    def failure(self, provider: str) -> None:
        state = self._states.setdefault(provider, _State())
        state.failures += 1
        if state.failures >= self.threshold and not self.is_open(provider):
            state.cooldown = min(self.max_cooldown, state.cooldown * 2 or self.base_cooldown)
            state.open_until = self._clock() + state.cooldown
