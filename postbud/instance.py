"""This instance's name in leases, kept in a file so that a restarted instance knows its own leases."""

from __future__ import annotations

import fcntl
import os
import secrets

from core.config import Config


def claim_instance(config: Config) -> tuple[str, int | None]:
    """(name, lock fd). The configured name, else the one kept in `[service] instance_file` (made on
    first use). The file is locked while the process runs, so a second process on the same folder
    never takes the first one's leases for its own: it gets a name of its own (host and pid)."""
    if config.service.instance:
        return config.service.instance, None
    fallback = f"{os.uname().nodename}-{os.getpid()}"
    path = config.service.instance_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return fallback, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)  # held by a running instance beside us
        return fallback, None
    name = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
    if not name:
        name = f"{os.uname().nodename}-{secrets.token_hex(4)}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, name.encode("utf-8") + b"\n", 0)
        os.fsync(fd)
    return name, fd


def release_instance(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
