"""The letter parse budget from the configuration, and the daemon's parse workers started ahead."""

from __future__ import annotations

from connectors import watchdog
from core.config import Config


def configure_parsing(config: Config) -> None:
    """The per-letter budget every connector's parse runs under (see `connectors.watchdog`)."""
    c = config.collector
    watchdog.configure(watchdog.Budget(seconds=c.letter_seconds, memory_bytes=c.letter_memory_mb * 1024 * 1024,
                                       workers=c.parse_workers))


def start_parse_workers(config: Config) -> None:
    """Configure the budget and start the workers now (in background threads): the fork server's
    imports and the forks then run beside the daemon's own imports and start-up, on the other core,
    instead of holding up the first letter. `postbud run` calls this as early as it can."""
    configure_parsing(config)
    watchdog.warm_up()
