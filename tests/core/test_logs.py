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


@pytest.mark.parametrize("text", [
    "message collected id=8a3efc0d7e0846959f180db7c0b29f0a mailbox=drop",
    "delivered 8a3e via email: Message accepted for delivery as 20261207T161453230490-8a1051ce.eml",
    "kunde 010203-1234 og 0102031234 men ikke 01020312345",
    "Authorization: Bearer abcdefghijklmnop",
    "(b'x-eboks-authenticate', b'sessionid=\"abc\", nonce=\"def\"')",
    "POST /token grant_type=x&client_secret=hemmeligt&code_verifier=v1",
    '{"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", "pin": 1234}',
    "Set-Cookie: session=abc; basic dXNlcjpwYXNzd29yZA==",
    "x-api-key=0123456789abcdef apikey=q PRIVATE_KEY=k passwd=p activation_code=a response=r",
    # Non-ASCII letters that IGNORECASE matches to ASCII ones: the Kelvin sign and the long s
    "to\u212aen=hemmeligt ſecret=hemmeligt ſessionid=x Søren 010203-1234",
    "ingen hemmeligheder her, kun æøå og et tal: 4711",
])
def test_redaction_screens_out_clean_lines_without_missing_a_secret(text: str) -> None:
    # GIVEN a log line, clean or carrying credentials or CPR-like numbers
    # WHEN it is redacted, clean lines skipping the patterns
    # THEN the result is exactly what running every pattern over it gives
    assert logs.redact(text) == logs._redact_all(text)
    assert "hemmeligt" not in logs.redact(text) and "010203-1234" not in logs.redact(text)
