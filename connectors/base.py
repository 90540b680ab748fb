"""The connector contract: how postbud talks to any mailbox provider.

Error tree (what the caller must do, not what went wrong)::

    ConnectorError
    ├── TransientError      retry later (network, timeouts, 5xx, 429); `retry_after` when the provider said
    ├── AuthError           stop polling this mailbox until its credentials change
    └── PermanentError      this one message can never be processed: quarantine it, go on with the rest

Third-party exceptions (httpx, ssl, lxml, ...) are translated into this tree inside the connector;
nothing else leaves `connectors/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict

from core.domain import NormalizedMessage


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class TransientError(ConnectorError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """Credentials are missing, wrong, expired or revoked; a person must act."""


class PermanentError(ConnectorError):
    """One message is unusable (malformed, refused by the provider for good).

    `raw` carries the original bytes when the connector has them, so the message is quarantined
    with its evidence instead of lost.
    """

    def __init__(self, message: str, *, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.raw = raw


class Capability(StrEnum):
    REPLY = "reply"
    MARK_READ = "mark_read"


def _cvr_number(value: str) -> str:
    if not (len(value) == 8 and value.isascii() and value.isdigit()):
        raise ValueError(f"a CVR number is 8 digits, not {value!r}")
    return value


CvrNumber = Annotated[str, AfterValidator(_cvr_number)]
"""A company registration number in a connector's settings."""


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


@runtime_checkable
class Connector(Protocol):
    """A mailbox at one provider.

    A connector SHALL:
    - list messages not yet acknowledged, page by page from `cursor` (None: from the start), and
      return every such message eventually, even if pages change between calls (a message that was
      already listed MAY be listed again; postbud deduplicates on `MessageRef.key`);
    - fetch one listed message, translating its format into a `NormalizedMessage`, and raise
      `PermanentError` (with the raw bytes where it has them) for a message that will never parse;
    - acknowledge a message only when asked, which postbud does after the message is committed;
      acknowledging twice SHALL be harmless;
    - raise only `ConnectorError` subclasses, typed by what the caller must do;
    - release its connections in `aclose`.
    A connector SHOULD keep its own credentials fresh through `ConnectorContext.state`.
    A connector MAY offer optional capabilities (`capabilities`), e.g. replying.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]]
    capabilities: ClassVar[frozenset[Capability]]

    async def list_new(self, cursor: str | None) -> Page: ...

    async def fetch(self, ref: MessageRef) -> Fetched: ...

    async def acknowledge(self, ref: MessageRef) -> None: ...

    async def aclose(self) -> None: ...


class ConnectorFactory(Protocol):
    """What the registry holds: a connector class, constructed with its validated settings."""

    name: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]]
    capabilities: ClassVar[frozenset[Capability]]

    def __call__(self, settings: Any, context: ConnectorContext) -> Connector: ...
