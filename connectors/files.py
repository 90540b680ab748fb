"""Parses a message kept as a file (a folder mailbox, `postbud inspect FILE`), choosing by its suffix."""

from __future__ import annotations

from pathlib import PurePath

from connectors.errors import PermanentError
from connectors.email import parse_eml
from connectors.memo import parse_memo
from core.domain import NormalizedMessage

SUFFIXES = (".xml", ".eml")


def parse_message_file(raw: bytes, filename: str) -> NormalizedMessage:
    """`.xml` is read as MeMo, `.eml` as e-mail (case-insensitive); anything else is a PermanentError.

    Parse failures raise the parser's own PermanentError subclass (MemoError, EmailError).
    """
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".xml":
        return parse_memo(raw)
    if suffix == ".eml":
        return parse_eml(raw)
    raise PermanentError(
        f"unsupported file type {suffix or '(no suffix)'!r} for {PurePath(filename).name!r}: "
        f"expected one of {', '.join(SUFFIXES)}",
        raw=raw,
    )
