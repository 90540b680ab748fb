"""Starts and stops everything `postbud run` needs, in order, and always cleans up."""

from __future__ import annotations

import asyncio
import logging

from core.config import Config
from postbud.daemon import Daemon
from postbud.runtime import Runtime
from sandbox.demo import approve_demo_recipients, start_sandbox

log = logging.getLogger(__name__)


async def serve(config: Config, *, once: bool = False) -> None:
    sandbox = await start_sandbox(config) if config.sandbox.enabled else None
    try:
        runtime = await asyncio.to_thread(Runtime.create, config)
        if sandbox is not None and runtime.recipients is not None:
            await asyncio.to_thread(approve_demo_recipients, runtime.store, config, runtime.recipients)
        try:
            daemon = Daemon(runtime)
            if once:
                await daemon.run_once()
            else:
                await daemon.run()
        finally:
            await runtime.aclose()
    finally:
        if sandbox is not None:
            await sandbox.aclose()
