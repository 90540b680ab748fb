"""What a rule can look at: the message facts and the catalogue of named fields drawn from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.domain import MessageType, NormalizedMessage

try:
    LOCAL_TZ: tzinfo = ZoneInfo("Europe/Copenhagen")
except ZoneInfoNotFoundError:  # a machine without tzdata: UTC keeps dates deterministic, if an hour off
    LOCAL_TZ = UTC

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Administrators write Danish as often as English; both spellings name the same day.
DANISH_WEEKDAYS = {
    "mandag": "monday",
    "tirsdag": "tuesday",
    "onsdag": "wednesday",
    "torsdag": "thursday",
    "fredag": "friday",
    "lørdag": "saturday",
    "søndag": "sunday",
}


@dataclass(frozen=True)
class MessageFacts:
    """One message with where it arrived: the input of a rule evaluation."""

    message: NormalizedMessage
    organisation: str
    mailbox: str
    provider: str
    received_at: datetime

    @property
    def local_received_at(self) -> datetime:
        """`received_at` in Danish time (naive values are taken to be Danish time already)."""
        if self.received_at.tzinfo is None:
            return self.received_at.replace(tzinfo=LOCAL_TZ)
        return self.received_at.astimezone(LOCAL_TZ)


class Kind(StrEnum):
    """The type of a field's value, which decides the matchers it accepts."""

    TEXT = "text"
    BOOL = "boolean"
    INT = "integer"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"
    WEEKDAY = "weekday"
    MESSAGE_TYPE = "message type"


# Text fields yield a tuple of strings (empty when absent) so single and multi-valued fields share the
# same matchers; the other kinds yield one value (weekday and message type: a plain str) or None.
FieldValue = tuple[str, ...] | str | bool | int | datetime | date | time | None


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    extract: Callable[[MessageFacts], FieldValue]
    # Body text is never copied into an explanation: explanations are stored and printed.
    private: bool = False


def _texts(*values: str | None) -> tuple[str, ...]:
    return tuple(v for v in values if v)


def _attention(f: MessageFacts) -> tuple[str, ...]:
    return f.message.attention.labels() if f.message.attention else ()


def _attention_field(name: str) -> Callable[[MessageFacts], FieldValue]:
    def extract(f: MessageFacts) -> FieldValue:
        return _texts(getattr(f.message.attention, name)) if f.message.attention else ()

    return extract


def _spec(name: str, kind: Kind, extract: Callable[[MessageFacts], FieldValue]) -> FieldSpec:
    return FieldSpec(name, kind, extract)


FIELDS: dict[str, FieldSpec] = {
    s.name: s
    for s in (
        _spec("organisation", Kind.TEXT, lambda f: _texts(f.organisation)),
        _spec("mailbox", Kind.TEXT, lambda f: _texts(f.mailbox)),
        _spec("provider", Kind.TEXT, lambda f: _texts(f.provider)),
        _spec("message_type", Kind.MESSAGE_TYPE, lambda f: f.message.message_type.value),
        _spec("format", Kind.TEXT, lambda f: _texts(f.message.format)),
        _spec("post_type", Kind.TEXT, lambda f: _texts(f.message.post_type)),
        _spec("title", Kind.TEXT, lambda f: _texts(f.message.title)),
        FieldSpec("text", Kind.TEXT, lambda f: _texts(f.message.text), private=True),
        _spec("sender.id", Kind.TEXT, lambda f: _texts(f.message.sender.id)),
        _spec("sender.id_type", Kind.TEXT, lambda f: _texts(f.message.sender.id_type)),
        _spec("sender.name", Kind.TEXT, lambda f: _texts(f.message.sender.name)),
        _spec("recipient.id", Kind.TEXT, lambda f: _texts(f.message.recipient.id)),
        _spec("recipient.id_type", Kind.TEXT, lambda f: _texts(f.message.recipient.id_type)),
        _spec("recipient.name", Kind.TEXT, lambda f: _texts(f.message.recipient.name)),
        _spec("attention", Kind.TEXT, _attention),
        _spec("attention.person", Kind.TEXT, _attention_field("person_name")),
        _spec("attention.person_id", Kind.TEXT, _attention_field("person_id")),
        _spec("attention.unit", Kind.TEXT, _attention_field("production_unit")),
        _spec("attention.email", Kind.TEXT, _attention_field("email")),
        _spec("attention.content_responsible", Kind.TEXT, _attention_field("content_responsible")),
        _spec("attachment.name", Kind.TEXT, lambda f: tuple(x.name for x in f.message.files())),
        _spec(
            "attachment.media_type",
            Kind.TEXT,
            lambda f: tuple(x.media_type for x in f.message.files()),
        ),
        _spec("attachment.count", Kind.INT, lambda f: len(f.message.files())),
        _spec("flags.legal_notification", Kind.BOOL, lambda f: f.message.flags.legal_notification),
        _spec("flags.mandatory", Kind.BOOL, lambda f: f.message.flags.mandatory),
        _spec("flags.reply_allowed", Kind.BOOL, lambda f: f.message.flags.reply_allowed),
        _spec("received", Kind.DATETIME, lambda f: f.local_received_at),
        _spec("received.date", Kind.DATE, lambda f: f.local_received_at.date()),
        _spec("received.time", Kind.TIME, lambda f: f.local_received_at.time().replace(tzinfo=None)),
        _spec("received.weekday", Kind.WEEKDAY, lambda f: WEEKDAYS[f.local_received_at.weekday()]),
    )
}

# Dotted prefixes (`sender`, `flags`, ...) under which TOML nests the fields' last parts.
FIELD_PREFIXES = frozenset(name.rsplit(".", 1)[0] for name in FIELDS if "." in name)
MESSAGE_TYPES = frozenset(m.value for m in MessageType)
