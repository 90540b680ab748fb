"""Picklable stand-ins for hostile parses, run inside the watchdog's worker processes."""

from __future__ import annotations

import os
import time

from core.domain import NormalizedMessage


def sleep_forever(raw: bytes, name: str = "") -> NormalizedMessage:
    while True:
        time.sleep(1)


def hog_memory(megabytes: int) -> int:
    # One allocation: over the limit it fails at once, however loaded the machine is.
    return len(bytearray(megabytes * 1024 * 1024)) // (1024 * 1024)


def crash(code: int) -> None:
    os.kill(os.getpid(), 9) if code < 0 else os._exit(code)


def recurse(depth: int) -> int:
    return 0 if depth == 0 else 1 + recurse(depth - 1)


def echo(value: object) -> object:
    return value


def pid() -> int:
    return os.getpid()


def stuck_or_parse(raw: bytes, name: str) -> NormalizedMessage:
    """A parser that never returns for files named *stuck*, and parses everything else as usual."""
    from connectors.files import parse_message_file

    if "stuck" in name:
        sleep_forever(raw)
    return parse_message_file(raw, name)
