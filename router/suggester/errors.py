"""Typed errors of the suggester, by what the caller must do.

SuggesterError                 base class; never raised itself
├── ModelRejected              the stored model cannot be used: retrain (reason says why)
└── DatasetError               an evaluation corpus is unreadable: fix the file
"""

from __future__ import annotations

from enum import StrEnum


class SuggesterError(Exception):
    """Base of every error this package raises on purpose."""


class RejectReason(StrEnum):
    MISSING = "missing"
    CORRUPT = "corrupt"
    SIGNATURE = "signature"
    ORGANISATION = "organisation"
    FORMAT_VERSION = "format-version"
    SKLEARN_VERSION = "sklearn-version"


class ModelRejected(SuggesterError):
    """The model file is absent, damaged, forged or from another version: retrain and save anew."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"model file rejected ({reason.value}): {detail}")
        self.reason = reason
        self.detail = detail


class DatasetError(SuggesterError):
    """An evaluation dataset cannot be read; the message names the line and what to fix."""
