"""MeMo (the Danish Digital Post message format, versions 1.1 and 1.2): a safe reader and a writer."""

from connectors.memo.errors import MemoError
from connectors.memo.reader import MAX_BYTES, parse_memo, validate_memo
from connectors.memo.schema import MEMO as MEMO_NAMESPACE
from connectors.memo.writer import build_memo

__all__ = ["MAX_BYTES", "MEMO_NAMESPACE", "MemoError", "build_memo", "parse_memo", "validate_memo"]
