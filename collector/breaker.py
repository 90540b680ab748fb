"""Back-off and circuit breaking per mailbox: how long a mailbox waits after failed polls in a row.

Kept per mailbox (in its database row, so every instance agrees), never per provider: one mailbox
with bad luck or bad settings must not pause the provider's other mailboxes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Below `threshold` failures in a row a mailbox waits its interval (or what the provider asked);
    from `threshold` on its circuit is open: it pauses for `cooldown`, doubled with each further
    failure, up to `max_cooldown`. A successful poll closes it."""

    threshold: int = 5
    cooldown: float = 30.0
    max_cooldown: float = 600.0

    def delay(self, failures: int, *, interval: float, retry_after: float | None = None) -> tuple[float, bool]:
        """Seconds until the next poll, and whether the circuit is open (the mailbox is paused)."""
        wait = max(interval, retry_after or 0.0)
        if failures < self.threshold:
            return wait, False
        pause = min(self.max_cooldown, self.cooldown * 2 ** (failures - self.threshold))
        return max(wait, pause), True
