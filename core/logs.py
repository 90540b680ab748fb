"""Structured logging with a correlation id per message, and a last-line guard against secrets and CPR numbers."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from typing import TextIO

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")

# A CPR number is DDMMYY-SSSS; a bare ten-digit run is masked too, since it may be one without the dash.
_CPR = re.compile(r"(?<!\d)(?:[0-3]\d[01]\d\d\d-?\d{4})(?!\d)")


# Credential-carrying headers, however they are printed: `Name: value` lines, and the
# `(b'name', b'value')` tuples httpcore logs at DEBUG. The value runs to the tuple's end or the line's.
_SECRET_HEADER = re.compile(
    r"""(?im)((?:proxy-)?authorization|x-eboks-authenticate|x-eboks-challenge|set-cookie|cookie|x-api-key)"""
    r"""(['"]?\s*(?:,\s*b?['"]|:\s*b?['"]?|=\s*['"]?))(.*?)(?=['"]\)|$)"""
)
# name=value and "name": "value" pairs whose value is a secret (form bodies, JSON, URLs, header fields).
_SECRET_FIELD = re.compile(
    r"""(?i)\b(sessionid|nonce|response|password|passwd|pincode|pin|secret|client_secret|access_token"""
    r"""|refresh_token|id_token|token|api_key|apikey|activation_code|code_verifier|private_key)\b"""
    r"""(\\?["']?\s*[=:]\s*\\?["']?)([^\s"'\\,;&}\])]+)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")
_REDACTED = "[redacted]"


# Every log line is redacted, most have nothing to redact: a word one of the secret patterns needs
# (lower case), or six digits in a row (a CPR number has them), must be in the text before the
# patterns run. Only ASCII text is screened so: with IGNORECASE a few non-ASCII letters match ASCII
# ones (the Kelvin sign, long s, dotted and dotless i), so other text always takes every pattern.
_NEEDED = ("authorization", "x-eboks-", "cookie", "x-api-key", "sessionid", "nonce", "response", "passw", "pin",
           "secret", "token", "api_key", "apikey", "activation_code", "code_verifier", "private_key", "bearer",
           "basic", "eyj")
_MAYBE_CPR = re.compile(r"[0-9]{6}-?[0-9]{4}")


def redact(text: str) -> str:
    """`text` with credentials (auth headers, tokens, passwords, session ids) and CPR numbers masked."""
    if text.isascii():
        lowered = text.lower()
        if not any(word in lowered for word in _NEEDED):
            return _CPR.sub("[cpr]", text) if _MAYBE_CPR.search(text) else text
    return _redact_all(text)


def _redact_all(text: str) -> str:
    """`redact` without the screening: every pattern over the whole text."""
    text = _SECRET_HEADER.sub(lambda m: m.group(1) + m.group(2) + _REDACTED, text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + m.group(2) + _REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {_REDACTED}", text)
    text = _JWT.sub(_REDACTED, text)
    return _CPR.sub("[cpr]", text)


def mask_cpr(text: str) -> str:
    """Only CPR-like numbers masked: for reasons stored in the database, which carry no credentials."""
    return _CPR.sub("[cpr]", text)


_base_factory = logging.getLogRecordFactory()


def _redacted_record(*args: object, **kwargs: object) -> logging.LogRecord:
    """Every record of every logger (httpx and httpcore included), whatever handler takes it: redacted
    as it is made, so no handler, level or library can see the secret."""
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is logging's to report, not ours
        return record
    record.msg, record.args = redact(message), None
    record.postbud_redacted = record.msg  # the handler's filter need not redact this text again
    return record


def install_redaction() -> None:
    """Redact every log record from now on (idempotent)."""
    global _base_factory
    current = logging.getLogRecordFactory()
    if current is not _redacted_record:
        _base_factory = current
        logging.setLogRecordFactory(_redacted_record)


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # A record made by another factory, or changed since it was made, is redacted here.
        if record.args or getattr(record, "postbud_redacted", None) is not record.msg:
            record.msg = redact(record.getMessage())
            record.args = None
        record.correlation_id = correlation_id.get()
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Tracebacks are formatted here, after the record was made: redact them too.
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        if record.exc_info:
            out["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """postbud's own handler: writes to whatever `sys.stderr` is when a record is emitted, so a command run
    in-process (a test's CliRunner swaps and then closes the stream) never writes to a stale one."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # logging's own set-up assigns it; the current sys.stderr always wins


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at `level` in `fmt` ("text" or "json"). Configuring again replaces the handler an
    earlier call installed instead of adding a second; handlers others installed (pytest's) are kept."""
    handler = _StderrHandler()
    handler.addFilter(_Redacting())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"))
    install_redaction()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("alembic", "apscheduler", "httpx", "uvicorn.access", "aiosmtpd", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
