"""Starts and stops everything `postbud run` needs, in order, and always cleans up."""

from __future__ import annotations

import logging

from postbud.config import Config
from postbud.daemon import Daemon
from postbud.runtime import Runtime

log = logging.getLogger(__name__)


async def serve(config: Config, *, once: bool = False) -> None:
    runtime = Runtime.create(config)
    try:
        daemon = Daemon(runtime)
        if once:
            await daemon.run_once()
        else:
            await daemon.run()
    finally:
        await runtime.aclose()
