"""Training examples, suggestions, and the fingerprint that lets training be skipped."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, fields

from core.domain import NormalizedMessage


@dataclass(frozen=True)
class Example:
    """One message as the suggester sees it; `label` is the confirmed recipient (None when unknown).

    `attention` holds the MeMo attention names (person, content responsible, e-mail), which are
    among the strongest routing hints a letter carries.
    """

    title: str = ""
    sender_name: str = ""
    sender_id: str = ""
    body: str = ""
    provider: str = ""
    mailbox: str = ""
    cvr: str = ""
    attachment_names: tuple[str, ...] = ()
    attention: str = ""
    label: str | None = None

    @classmethod
    def from_message(
        cls,
        message: NormalizedMessage,
        *,
        provider: str = "",
        mailbox: str = "",
        label: str | None = None,
    ) -> Example:
        """Builds an example from a normalized message (the CVR is the message's recipient id)."""
        attention = " ".join(message.attention.labels()) if message.attention else ""
        return cls(
            title=message.title,
            sender_name=message.sender.name or "",
            sender_id=message.sender.id or "",
            body=message.text,
            provider=provider,
            mailbox=mailbox,
            cvr=message.recipient.id or "",
            attachment_names=tuple(f.name for f in message.files()),
            attention=attention,
            label=label,
        )


@dataclass(frozen=True)
class Suggestion:
    """A candidate recipient with its calibrated probability (uncalibrated in a cold-start model)."""

    label: str
    probability: float


_FIELDS = tuple(f.name for f in fields(Example))


def _example_digest(example: Example) -> bytes:
    values = {name: getattr(example, name) for name in _FIELDS}
    canonical = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def fingerprint(examples: Iterable[Example]) -> str:
    """A stable hash of the labelled data: independent of order, sensitive to duplicates and labels."""
    digests = sorted(_example_digest(e) for e in examples)
    outer = hashlib.sha256(b"postbud-suggester-data-v1\n")
    for digest in digests:
        outer.update(digest)
    return outer.hexdigest()
