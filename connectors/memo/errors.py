"""The one error the MeMo reader raises: a message that is not valid MeMo, with an XSD-level reason."""

from __future__ import annotations

from connectors.errors import PermanentError


class MemoError(PermanentError):
    """The bytes are not a valid MeMo message; `str(error)` says which rule failed and where.

    Reasons name the element path below `Message` (e.g. ``MessageHeader: required element 'label'
    missing``) and never echo free-text values, so they are safe to store in a trace.
    """
