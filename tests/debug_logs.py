"""A fixture that turns on DEBUG for every logger through postbud's own log set-up, into captured stderr."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from core import logs


@pytest.fixture
def debug_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    logs.configure("DEBUG")
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)  # as an operator chasing a problem would
    yield
    root.handlers[:], level, levels = saved
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)
