"""The connector error tree (what the caller must do, not what went wrong)::

    ConnectorError
    ├── TransientError      retry later (network, timeouts, 5xx, 429); `retry_after` when the provider said
    ├── AuthError           stop polling this mailbox until its credentials change
    ├── ConfigurationError  the settings name something the provider does not offer (a mailbox, a
    │                       folder): stop polling until the configuration changes; the message lists
    │                       what the provider does offer
    └── PermanentError      this one message can never be processed: quarantine it, go on with the rest

A module of its own, importing nothing: the parse workers' fork server imports the parsers, which
raise these, without `connectors.base`'s pydantic (most of its start-up imports). `connectors.base`
names them too.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class TransientError(ConnectorError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """Credentials are missing, wrong, expired or revoked; a person must act."""


class ConfigurationError(ConnectorError):
    """The provider accepted the credentials, but the settings do not pick what it offers (no match,
    or more than one); the message names what it saw, so the operator can fix the configuration."""


class PermanentError(ConnectorError):
    """One message is unusable (malformed, refused by the provider for good).

    `raw` carries the original bytes when the connector has them, so the message is quarantined
    with its evidence instead of lost.
    """

    def __init__(self, message: str, *, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.raw = raw
