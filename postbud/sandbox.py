"""The built-in sandbox for `make run` and demos: fake providers filled with generated mail.

Credentials the fakes generate are written as one file each under `<folder>/secrets/`
(`<provider>.<key>`, mode 0600), so the config names them as `{ file = "…" }` secrets like any other.
The fakes are seeded, so ids, paths and credentials are the same on every start.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from connectors.sandbox.run import SandboxHandle, serve_sandbox
from postbud.config import Config

log = logging.getLogger(__name__)


async def start_sandbox(config: Config) -> SandboxHandle:
    settings = config.sandbox
    cvrs = [org.cvr for org in config.organisations]
    handle = await serve_sandbox(settings.folder, cvrs, messages_per_cvr=settings.messages_per_cvr,
                                 seed=settings.seed, ports=dict(settings.ports))
    write_secrets(settings.folder / "secrets", handle)
    log.info("sandbox running: %s", ", ".join(f"{n} at {e.base_url}" for n, e in handle.endpoints.items()))
    return handle


def write_secrets(folder: Path, handle: SandboxHandle) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for name, endpoint in handle.endpoints.items():
        for key, value in endpoint.credentials.items():
            path = folder / f"{name}.{key}"
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(value, encoding="utf-8")
