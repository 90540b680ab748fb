"""The sandbox's `postbud.extensions` entry point: cheap to load, it imports the sandbox only to start it.

Every `postbud run` loads each installed extension to ask whether it is wanted; importing
`sandbox.demo` for that (the fakes, fpdf, the console's argon2 accounts) cost a daemon with the
sandbox off most of a second of CPU at every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.config import Config

if TYPE_CHECKING:
    from sandbox.demo import Sandbox


class SandboxExtension:
    """The `sandbox` entry point of `postbud.extensions` (pyproject.toml): runs when `[sandbox] enabled`."""

    def wanted(self, config: Config) -> bool:
        return config.sandbox.enabled

    async def start(self, config: Config) -> Sandbox:
        from sandbox.demo import start_sandbox

        return await start_sandbox(config)


extension = SandboxExtension()
