"""Channels paused by a fault of the channel itself: letters wait for it without using their attempts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass
class ChannelPauses:
    """Per process: when each paused channel may be tried again, doubling while the fault lasts.

    The paused rows' own `next_attempt_at` carries the pause across restarts and instances; this only
    spares every other row of the channel a doomed connection attempt meanwhile.
    """

    base_seconds: float
    max_seconds: float
    _until: dict[str, dt.datetime] = field(default_factory=dict)
    _streak: dict[str, int] = field(default_factory=dict)

    def until(self, channel: str, now: dt.datetime) -> dt.datetime | None:
        """When the channel may be used again, or None if it is not paused now."""
        when = self._until.get(channel)
        return when if when is not None and when > now else None

    def pause(self, channel: str, now: dt.datetime) -> dt.datetime:
        """The channel failed again: pause it for twice as long as last time (capped)."""
        current = self.until(channel, now)
        if current is not None:
            return current  # another lane of the same run found the same fault
        streak = self._streak.get(channel, 0)
        self._streak[channel] = streak + 1
        seconds = min(self.max_seconds, self.base_seconds * 2.0 ** streak)
        self._until[channel] = now + dt.timedelta(seconds=seconds)
        return self._until[channel]

    def resume(self, channel: str) -> None:
        """A send on the channel got through: the fault is over."""
        self._until.pop(channel, None)
        self._streak.pop(channel, None)

    def probing(self, channel: str) -> bool:
        """True while the channel's last send failed by its fault and none got through since."""
        return channel in self._streak

    def paused(self) -> set[str]:
        return set(self._until)
