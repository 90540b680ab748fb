"""Start-up extensions: packages installed beside postbud that run with it (the sandbox is one).

They register in the `postbud.extensions` entry-point group, as connectors do in theirs, so no
product module names them: `postbud run` starts each one its configuration asks for, `postbud
sandbox` starts the one named "sandbox" alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from core.config import Config
from core.storage.db import Store

ENTRY_POINT_GROUP = "postbud.extensions"


class ExtensionError(Exception):
    """The installed extensions are inconsistent (duplicate or broken), or a wanted one is missing."""


@runtime_checkable
class RunningExtension(Protocol):
    """A started extension.

    It SHALL release everything it started (servers, files it keeps open) in `aclose`, and SHALL
    NOT block the event loop in any method. `describe` SHALL return one line per thing a person can
    reach (an address, a folder), without secrets.
    """

    def describe(self) -> list[str]:
        """What runs and where, one line each."""
        ...

    def runtime_ready(self, store: Store, config: Config) -> None:
        """Called once the daemon's store exists (it MAY write rows; runs in a worker thread)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Extension(Protocol):
    """An entry point's target: decides from the configuration whether it runs, and starts.

    `wanted` SHALL be cheap and side-effect free. `start` SHALL finish what the daemon needs before
    it returns (files the configuration names, listening sockets), since the daemon is built next.
    """

    def wanted(self, config: Config) -> bool: ...

    async def start(self, config: Config) -> RunningExtension: ...


def discover() -> dict[str, Extension]:
    """Every installed extension by its entry-point name; a name given twice is an error."""
    found: dict[str, Extension] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            raise ExtensionError(f"two extensions are named {ep.name!r}; uninstall one of them")
        try:
            target = ep.load()
        except Exception as exc:  # a broken extension must say which one it is
            raise ExtensionError(f"extension {ep.name!r} ({ep.value}) cannot be loaded: {exc}") from exc
        if not isinstance(target, Extension):
            raise ExtensionError(f"extension {ep.name!r} ({ep.value}) has no wanted()/start()")
        found[ep.name] = target
    return found


def named(name: str, installed: Mapping[str, Extension] | None = None) -> Extension:
    """The extension registered as `name`; ExtensionError saying how to install it when absent."""
    extensions = discover() if installed is None else installed
    if name not in extensions:
        raise ExtensionError(f"no extension {name!r} is installed (reinstall postbud: pip install -e .)")
    return extensions[name]


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[list[RunningExtension]]:
    """Start every extension the configuration wants (a sandbox when `[sandbox] enabled`); stop them
    all, last started first, when the block ends."""
    started: list[RunningExtension] = []
    async with contextlib.AsyncExitStack() as stack:
        installed = discover()
        if config.sandbox.enabled:
            named("sandbox", installed)  # asked for by the config: its absence is an error, not a skip
        for extension in installed.values():
            if extension.wanted(config):
                handle = await extension.start(config)
                stack.push_async_callback(handle.aclose)
                started.append(handle)
        yield started
