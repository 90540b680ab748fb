"""The approved-recipients file: recipients and groups per organisation (CVR), read once, frozen.

Shape (paths are relative to the file's folder)::

    [org.12345678]
    default_channel = "email"

    [org.12345678.recipients.alice]
    name = "Alice Jensen"
    aliases = ["AJ", "Bogholderiet"]
    email = "alice@example.com"
    channel = "email"                  # optional: the organisation's default_channel otherwise
    smime_cert = "keys/alice.pem"      # or: pgp_key = "keys/alice.asc"

    [org.12345678.recipients.erp]
    name = "ERP"
    channel = "webhook"
    pgp_key = "keys/erp.asc"
    webhook = { url = "https://erp.example/hook", secret = { env = "POSTBUD_ERP_SECRET" } }

    [org.12345678.groups]
    board = ["alice", "bob"]

Being listed here is necessary, not sufficient: approval (confirmed invitation, valid key) is
tracked by the daemon.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.settings import SecretRef, is_cvr
from core.tomlpos import KeyLocator
from delivery.errors import RecipientsFileError

log = logging.getLogger(__name__)

_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    POST = "post"


class KeyKind(StrEnum):
    SMIME = "smime"
    PGP = "pgp"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookTarget(_Frozen):
    """Where a webhook recipient's deliveries go: `secret` is a reference to the HMAC key, never the key;
    `envelope` "sealed" (default) encrypts title, sender, times and file names with the documents,
    "clear" leaves them readable under TLS (delivery/README.md lists exactly what)."""

    url: str
    secret: SecretRef
    envelope: Literal["sealed", "clear"] = "sealed"

    @field_validator("url")
    @classmethod
    def _https_only(cls, url: str) -> str:
        if not url.startswith("https://"):
            raise ValueError("webhook url must start with https:// (deliveries never travel in clear)")
        return url

    @field_validator("secret", mode="before")
    @classmethod
    def _legacy_secret(cls, value: object) -> object:
        # Deprecated: "env:NAME" / "file:PATH" strings, from before the config's one secret syntax.
        if isinstance(value, str):
            kind, _, name = value.partition(":")
            if kind not in ("env", "file") or not name:
                raise ValueError('secret is { env = "NAME" } or { file = "path" }')
            log.warning('webhook secret "%s:…" is deprecated: write secret = { %s = "…" }', kind, kind)
            return {kind: name}
        return value


class PostalAddress(_Frozen):
    """Where the post channel's letters go (printed on the provider's address page)."""

    name: str = Field(min_length=1)
    street: str = Field(min_length=1)
    postcode: str = Field(min_length=1)
    city: str = Field(min_length=1)
    country: str = Field(default="DK", pattern=r"^[A-Z]{2}$")


class Recipient(_Frozen):
    """One approved-recipient candidate of an organisation."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    email: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    channel: Channel | None = None
    smime_cert: Path | None = None
    pgp_key: Path | None = None
    webhook: WebhookTarget | None = None
    postal_address: PostalAddress | None = None
    # "letter": the encrypted letter itself; "notice": only "a letter from X is waiting" (no content)
    # to notification_address (default: email); "digest": one such mail a day listing the day's
    # letters (delivery/digest.py). The recipient may switch notices off or confirm another address.
    notify: Literal["letter", "notice", "digest"] = "letter"
    notification_address: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    # "forward": a system's inbox (an accounting system); tls_only = true, set only by an administrator,
    # lets it receive the letter unencrypted over verified TLS, and the trace says so
    kind: Literal["person", "forward"] = "person"
    tls_only: bool = False
    # False: the model may suggest this recipient but never route to it without a person.
    route_alone: bool = True
    # Never in the file: set by delivery on a copy when the recipient has no key in the file but gave
    # one on the confirmation page (the database keeps it; delivery/onboarding.py).
    uploaded_key: KeyKind | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.smime_cert is not None and self.pgp_key is not None:
            raise ValueError("give either smime_cert or pgp_key, not both")
        if self.channel is Channel.EMAIL and self.email is None:
            raise ValueError("channel 'email' needs an email address")
        if self.channel is Channel.WEBHOOK and self.webhook is None:
            raise ValueError("channel 'webhook' needs a webhook table (url, secret)")
        if self.tls_only and self.kind != "forward":
            raise ValueError('tls_only is only for recipients of kind = "forward"')
        if self.notify != "letter" and (self.notification_address or self.email) is None:
            raise ValueError(f"notify = '{self.notify}' needs a notification_address (or an email)")
        if self.channel is Channel.POST and self.postal_address is None:
            raise ValueError("channel 'post' needs a postal_address table (name, street, postcode, city)")
        return self

    @property
    def key_kind(self) -> KeyKind | None:
        """Which key material this recipient has, if any (no key: cannot be approved)."""
        if self.smime_cert is not None:
            return KeyKind.SMIME
        if self.pgp_key is not None:
            return KeyKind.PGP
        return self.uploaded_key

    @property
    def key_path(self) -> Path | None:
        return self.smime_cert or self.pgp_key


class Organisation(_Frozen):
    """One CVR's recipients and groups."""

    cvr: str
    default_channel: Channel = Channel.EMAIL
    # Channels this organisation switched off: its recipients go by the default channel instead (by
    # e-mail when the default is off too); letters already sent keep their history.
    channels_off: tuple[Channel, ...] = ()
    recipients: Mapping[str, Recipient] = Field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _groups_resolve(self) -> Self:
        for gid, members in self.groups.items():
            if not re.match(_ID, gid):
                raise ValueError(f"group id {gid!r} must match {_ID}")
            if gid in self.recipients:
                raise ValueError(f"{gid!r} is both a recipient and a group")
            unknown = [m for m in members if m not in self.recipients]
            if unknown:
                raise ValueError(f"group {gid!r} names unknown recipients {unknown}")
        for rid, r in self.recipients.items():
            if r.channel is None and self.default_channel is Channel.EMAIL and r.email is None:
                raise ValueError(f"recipient {rid!r} uses the default channel 'email' but has no email")
            if r.channel is None and self.default_channel is Channel.WEBHOOK and r.webhook is None:
                raise ValueError(f"recipient {rid!r} uses the default channel 'webhook' but has no "
                                 "webhook table")
        return self


class UnknownRecipient(KeyError):
    """An organisation or recipient/group id that the file does not list."""


class RecipientsFile:
    """Read-only lookups over the loaded file: a `core.recipients.RecipientResolver`, and what delivery
    asks about one recipient (`get`)."""

    def __init__(self, orgs: Mapping[str, Organisation], *, source: Path | None = None) -> None:
        self._orgs = dict(orgs)
        self.source = source

    def organisations(self) -> tuple[str, ...]:
        return tuple(self._orgs)

    def _org(self, org: str) -> Organisation:
        try:
            return self._orgs[org]
        except KeyError:
            raise UnknownRecipient(f"organisation {org} is not in the recipients file") from None

    def ids(self, org: str) -> set[str]:
        """Every recipient and group id of an organisation (what a routing target may name)."""
        o = self._orgs.get(org)
        return set() if o is None else set(o.recipients) | set(o.groups)

    def groups(self, org: str) -> dict[str, tuple[str, ...]]:
        o = self._orgs.get(org)
        return {} if o is None else dict(o.groups)

    def names(self, org: str) -> dict[str, list[str]]:
        """Recipient id -> name and aliases, for fuzzy matching of attention labels."""
        o = self._orgs.get(org)
        if o is None:
            return {}
        return {rid: [r.name, *r.aliases] for rid, r in o.recipients.items()}

    def channels_off(self, org: str) -> tuple[Channel, ...]:
        """The channels the organisation switched off (its recipients go by the default instead)."""
        o = self._orgs.get(org)
        return () if o is None else o.channels_off

    def get(self, org: str, rid: str) -> Recipient:
        try:
            return self._org(org).recipients[rid]
        except KeyError:
            raise UnknownRecipient(f"recipient {rid!r} is not listed for organisation {org}") from None

    def expand(self, org: str, ids: Iterable[str]) -> tuple[Recipient, ...]:
        """Recipients named by ids (groups expanded), first occurrence order, no duplicates."""
        o = self._org(org)
        seen: dict[str, Recipient] = {}
        for i in ids:
            if i in o.groups:
                members: tuple[str, ...] = o.groups[i]
            elif i in o.recipients:
                members = (i,)
            else:
                raise UnknownRecipient(f"{i!r} is neither a recipient nor a group of organisation {org}")
            for m in members:
                seen.setdefault(m, o.recipients[m])
        return tuple(seen.values())

    def members(self, org: str, target: str) -> tuple[str, ...]:
        """The recipient ids a recipient or group id stands for; UnknownRecipient when not listed."""
        return tuple(r.id for r in self.expand(org, [target]))

    def channel(self, org: str, rid: str, *, enabled: Collection[str] = tuple(Channel)) -> Channel:
        """The channel to use: the recipient's own if enabled (globally and by its organisation), else
        the organisation's default, else e-mail."""
        o = self._org(org)
        own = self.get(org, rid).channel
        on = set(enabled) - set(o.channels_off)
        if own is not None and own in on:
            return own
        if o.default_channel in on:
            return o.default_channel
        return Channel.EMAIL


def load_recipients(path: Path) -> RecipientsFile:
    """Read and validate the recipients file; relative key paths resolve against its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipientsFileError(f"{path}: cannot read recipients file: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipientsFileError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"org"}
    if unknown:
        key = min(unknown)
        raise _error(path, text, (key,), "unknown top-level key (only [org.<CVR>] tables are allowed)")
    orgs: dict[str, Organisation] = {}
    for cvr, body in (raw.get("org") or {}).items():
        if not is_cvr(cvr):
            raise _error(path, text, ("org", cvr), "organisation key must be an 8-digit CVR number")
        if not isinstance(body, dict):
            raise _error(path, text, ("org", cvr), "must be a table")
        orgs[cvr] = _organisation(path, text, cvr, body)
    return RecipientsFile(orgs, source=path)


def _organisation(path: Path, text: str, cvr: str, body: dict[str, Any]) -> Organisation:
    data = dict(body)
    recipients = data.get("recipients", {})
    if isinstance(recipients, dict):
        resolved: dict[str, Any] = {}
        for rid, rec in recipients.items():
            if isinstance(rec, dict):
                if "uploaded_key" in rec:
                    raise _error(path, text, ("org", cvr, "recipients", rid, "uploaded_key"),
                                 "is set by postbud from the confirmation page, not in this file")
                rec = {**rec, "id": rid}
                for key in ("smime_cert", "pgp_key"):
                    if isinstance(rec.get(key), str):
                        rec[key] = (path.parent / rec[key]).resolve()
                rec = _secret_file_resolved(path, rec)
            resolved[rid] = rec
        data["recipients"] = resolved
    groups = data.get("groups")
    for gid, members in (groups.items() if isinstance(groups, dict) else ()):
        # checked here as well as in the model, so the error points at the group's line
        known = data.get("recipients") or {}
        unknown = [m for m in members if m not in known] if isinstance(members, list) else []
        if unknown:
            raise _error(path, text, ("org", cvr, "groups", gid),
                         f"names unknown recipients {unknown}")
    try:
        return Organisation(cvr=cvr, **data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        if loc[-1:] == ("id",) and len(loc) >= 2:
            # the id comes from the table name, so point at the table
            loc = loc[:-1]
        raise _error(path, text, ("org", cvr, *loc), err["msg"]) from None
    except TypeError as exc:
        raise _error(path, text, ("org", cvr), str(exc)) from None


def _secret_file_resolved(path: Path, rec: dict[str, Any]) -> dict[str, Any]:
    """A webhook secret file (new or deprecated syntax) resolves against the recipients file's folder."""
    hook = rec.get("webhook")
    if not isinstance(hook, dict):
        return rec
    secret = hook.get("secret")
    if isinstance(secret, str) and secret.startswith("file:"):
        secret = {"file": secret[len("file:"):]}
        log.warning('webhook secret "file:…" is deprecated: write secret = { file = "…" }')
    if isinstance(secret, dict) and isinstance(secret.get("file"), str):
        secret = {**secret, "file": str((path.parent / secret["file"]).resolve())}
    return {**rec, "webhook": {**hook, "secret": secret}}


def _error(path: Path, text: str, loc: tuple[str, ...], msg: str) -> RecipientsFileError:
    line = KeyLocator(text).line(loc)
    where = f"{path}:{line}" if line else str(path)
    return RecipientsFileError(f"{where}: {'.'.join(loc)}: {msg}")
