"""postbud's log set-up: one handler of its own however often it is configured, on the stderr current at emit time."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from core import logs

log = logging.getLogger("postbud.test.logs")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_configuring_twice_replaces_postbuds_handler_and_keeps_others(
        restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a handler someone else put on the root logger
    other = Collect()
    logging.getLogger().addHandler(other)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    # WHEN postbud configures logging twice (a second in-process command, a reload)
    logs.configure("INFO")
    logs.configure("INFO", "json")
    log.warning("one line")
    # THEN the record is written once, in the latest format, and the other handler still gets it
    lines = [line for line in stderr.getvalue().splitlines() if "one line" in line]
    assert len(lines) == 1 and lines[0].startswith("{")
    assert other.messages == ["one line"]


def test_the_handler_writes_to_the_stderr_current_when_a_record_is_emitted(
        restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN logging set up while one stderr was current, which is then closed and replaced (as CliRunner does)
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.configure("INFO")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    # WHEN a record is logged
    log.warning("after the swap")
    # THEN it reaches the current stderr, with no "--- Logging error ---" about a closed file
    assert "after the swap" in second.getvalue()
    assert "Logging error" not in second.getvalue()
