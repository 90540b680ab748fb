"""What a channel is handed (one outbox row ready to go) and what it hands back (the remote acknowledgement)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from core.domain import NormalizedMessage
from delivery.recipients import Recipient


@dataclass(frozen=True)
class NotificationRoute:
    """Whether and where one recipient's notice or digest goes, and the signed link to change that
    (delivery/preferences.py)."""

    mode: Literal["notice", "digest"]
    enabled: bool
    address: str
    settings_link: str


@dataclass(frozen=True)
class Outbound:
    """One outbox row ready to go: the message, its approved recipient and the checked key bytes."""

    token: str  # stable per outbox row (see delivery_token): Message-ID and webhook id derive from it
    message: NormalizedMessage
    recipient: Recipient
    key: bytes
    trace_id: str
    received_at: dt.datetime
    # the message as the channel will send it, made ahead in a worker thread (Composing), or None
    composed: Composed | None = None
    # for a recipient who chose a notice or the daily digest instead of the letter (None: the letter)
    notification: NotificationRoute | None = None


@dataclass(frozen=True)
class Composed:
    """A message made ready for the wire ahead of its send: bytes, envelope recipient, trace facts."""

    data: bytes
    to: str
    message_id: str
    detail: Mapping[str, object] = field(default_factory=dict)
    # set: send nothing, and keep this as the reply (a digest recipient's letter, notifications off)
    reply: str | None = None


@dataclass(frozen=True)
class Sent:
    """The remote side's acknowledgement, kept in the trace."""

    reply: str
    message_id: str | None = None
    # what the trace keeps beside the reply (the post channel: each letter's id, status and cost)
    detail: Mapping[str, object] = field(default_factory=dict)
