"""The connector contract: how postbud talks to any mailbox provider.

Errors are the tree in `connectors.errors` (what the caller must do, not what went wrong).
Third-party exceptions (httpx, ssl, lxml, ...) are translated into this tree inside the connector;
nothing else leaves `connectors/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

# The error tree lives in a module of its own (see there); named here too, as part of the contract.
from connectors.errors import AuthError as AuthError
from connectors.errors import ConfigurationError as ConfigurationError
from connectors.errors import ConnectorError as ConnectorError
from connectors.errors import PermanentError as PermanentError
from connectors.errors import TransientError as TransientError
from core.domain import NormalizedMessage


class Capability(StrEnum):
    REPLY = "reply"  # the connector is also a `Replier`
    MARK_READ = "mark_read"  # acknowledging marks the message read at the provider


class AcknowledgePolicy(StrEnum):
    """When the provider may forget a message (a mailbox's `acknowledge` setting overrides it)."""

    AFTER_DELIVERY = "after_delivery"  # once every delivery of it is confirmed: nothing is lost
    AFTER_COMMIT = "after_commit"  # once it is stored: for sources that expect to be emptied promptly


class ConnectorSettings(BaseModel):
    """Base of every connector's own settings model: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class MessageRef:
    """A message as a listing names it, before it is fetched.

    `key` is the provider's stable identity of the message: with the mailbox it is the idempotency
    key, checked before the (expensive) fetch. `handle` is whatever the connector needs to fetch and
    acknowledge it again, possibly after a restart, so it must be a plain string.
    """

    key: str
    handle: str
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """One page of a listing. `cursor` resumes the listing after this page; `more` is False on the last."""

    refs: tuple[MessageRef, ...]
    cursor: str | None
    more: bool


@dataclass(frozen=True)
class Fetched:
    """A fetched message: its original bytes (kept, encrypted, as evidence) and its normalized form."""

    ref: MessageRef
    raw: bytes
    raw_media_type: str
    message: NormalizedMessage
    # `core.domain.content_json(message)`, when the connector made it beside the parse (in the parse
    # worker), so the daemon's process only seals it; None: the collector makes it.
    document: bytes | None = None


class StateStore(Protocol):
    """Per-mailbox private state a connector persists (tokens, device keys); stored encrypted."""

    async def load(self) -> dict[str, Any]: ...

    async def save(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ConnectorContext:
    """What postbud hands a connector besides its settings."""

    mailbox: str
    organisation: str
    base_dir: Path
    state: StateStore
    organisation_name: str = ""  # as configured: what a provider's owner name is matched against


@runtime_checkable
class Connector(Protocol):
    """A mailbox at one provider. Implementations refer to this docstring instead of repeating it.

    A connector class SHALL:
    - declare `name`, the stable string config selects it by (`type = "ngdp"`), equal to the name it
      is registered under; `Settings`, a `ConnectorSettings` subclass (frozen, unknown keys
      rejected) the registry validates the mailbox's settings with; `capabilities`; and
      `default_acknowledge`, its `AcknowledgePolicy` when the mailbox sets none:
      `AFTER_DELIVERY` unless the source expects to be emptied as soon as postbud has a message
      (a drop folder: `AFTER_COMMIT`);
    - be constructed as `Connector(settings, context)` without I/O: it connects on first use.
    A connector SHALL:
    - list messages not yet acknowledged, page by page from `cursor` (None: from the start), and
      return every such message eventually, even if pages change between calls (a message that was
      already listed MAY be listed again; postbud deduplicates on `MessageRef.key`);
    - make `MessageRef.handle` and `meta` enough to fetch and acknowledge the message again from a
      new instance after a restart (the collector persists them; they are plain strings);
    - fetch one listed message, translating its format into a `NormalizedMessage`, and raise
      `PermanentError` (with the raw bytes where it has them) for a message that will never parse;
    - acknowledge a message only when asked, which postbud does according to the mailbox's policy;
      neither listing nor fetching acknowledges (where the provider itself marks a message read
      when its content is downloaded, e-Boks, the class SHALL say so: `acknowledges_at_fetch =
      True`); acknowledging twice SHALL be harmless;
    - raise only `ConnectorError` subclasses, typed by what the caller must do (a rejected
      credential: `AuthError`; a fault that may pass: `TransientError`, with `retry_after` when the
      provider said how long to wait);
    - keep private state (tokens, device keys) only through `ConnectorContext.state`, which stores
      it encrypted, and never log a secret, a body or a CPR number;
    - release its connections in `aclose`.
    A connector SHOULD keep its own credentials fresh through `ConnectorContext.state`.
    A connector MAY offer optional capabilities (`capabilities`); with `Capability.REPLY` it SHALL
    also be a `Replier`.
    A connector MAY declare `letters_in_flight = N` (default 1) when fetching several of its messages
    at once is safe and cheap for the source (a local folder): the collector then fetches up to N of
    a page's messages at the same time; they are still stored in listing order, each before it is
    acknowledged.
    A connector MAY offer `async acknowledge_many(refs) -> list[ConnectorError | None]` when
    acknowledging several messages in one call is cheaper (a local folder: one thread hop per group):
    each ref's error is returned in its place, not raised, and the collector acknowledges those again
    one by one; a message's acknowledgement still comes after its commit.
    A connector MAY declare `poll_requests = N` when its requests cost the provider nothing (local
    files): a poll of it may then make up to N requests where `poll_request_budget` is lower.
    `sandbox/conformance.py` checks each of these against the connector's fake provider.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]]
    capabilities: ClassVar[frozenset[Capability]]
    default_acknowledge: ClassVar[AcknowledgePolicy]

    async def list_new(self, cursor: str | None) -> Page: ...

    async def fetch(self, ref: MessageRef) -> Fetched: ...

    async def acknowledge(self, ref: MessageRef) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Replier(Protocol):
    """A connector with `Capability.REPLY`: it sends a reply to a message it collected.

    `send_reply` SHALL send `reply` (a `NormalizedMessage` whose `replies` names the original and
    whose `message_id` is the reply's own id) in the provider's own format, SHALL raise
    `PermanentError` for a reply the provider refuses for good and otherwise only `ConnectorError`
    subclasses, and SHALL return the provider's receipt (JSON-ready). Sending the same reply twice
    SHOULD be refused or harmless at the provider (the reply's id is its idempotency key).
    """

    async def send_reply(self, reply: NormalizedMessage) -> Mapping[str, Any]: ...


class ConnectorFactory(Protocol):
    """What the registry holds: a connector class, constructed with its validated settings."""

    name: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]]
    capabilities: ClassVar[frozenset[Capability]]
    default_acknowledge: ClassVar[AcknowledgePolicy]

    def __call__(self, settings: Any, context: ConnectorContext) -> Connector: ...
