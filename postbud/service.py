"""Starts and stops everything `postbud run` needs, in order, and always cleans up."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from connectors import watchdog
from core.config import Config
from postbud.daemon import Daemon
from postbud.extensions import running
from postbud.runtime import Runtime

log = logging.getLogger(__name__)


async def serve(config: Config, *, once: bool = False, force_exit: bool = False) -> None:
    """`force_exit`: after SIGTERM the process ends within `STOP_TIMEOUT_SECONDS` whatever is stuck."""
    try:
        # Extensions first: the sandbox writes the secrets and recipients file the runtime then reads.
        async with running(config) as extensions:
            runtime = await asyncio.to_thread(Runtime.create, config)
            try:
                for extension in extensions:
                    await asyncio.to_thread(extension.runtime_ready, runtime.store, config)
                daemon = Daemon(runtime, force_exit=force_exit)
                age = process_age()
                log.info("postbud ready: %d mailboxes, %s, %.2f s CPU", len(runtime.dispatcher.mailboxes),
                         "?" if age is None else f"{age:.2f} s after the process started", time.process_time())
                if once:
                    await daemon.run_once()
                else:
                    await daemon.run()
            finally:
                await runtime.aclose()
    finally:  # the parse workers may have been started ahead (`postbud.parsing.start_parse_workers`)
        watchdog.shutdown()


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere): start-up shows in the log."""
    try:
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None
