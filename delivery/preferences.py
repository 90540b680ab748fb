"""Recipients' notification settings over the recipients file: on/off, and a separate address that
is used only once a link mailed to it was opened; and the signed link every notice and digest
carries to the page where the recipient changes them (postbud/preferences_page.py).

The link is the recipient's id and an expiry sealed with the keyring (AES-256-GCM, so a changed byte
is refused and nobody reads whose link it is); it works until it expires, again and again. The
address confirmation is a one-time random token whose SHA-256 alone is stored, as invitations are.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Literal

from sqlmodel import Session, col, select

from core.config import Config
from core.lifecycle import record
from core.storage.db import Store
from core.storage.models import NotificationPreference, utcnow
from core.storage.vault import Vault, VaultError
from delivery.approval import token_hash
from delivery.outbound import NotificationRoute
from delivery.recipients import Recipient, RecipientsFile, UnknownRecipient

log = logging.getLogger(__name__)

_LINK_AAD = "notification-settings-link/v1"
ACTOR = "recipient"


class PreferenceError(Exception):
    """The step cannot be taken as asked (unknown, used or expired link); the message says what to do."""


@dataclass(frozen=True)
class Preferences:
    """One recipient's notification settings as the page and `postbud recipients notifications` show them."""

    organisation: str
    recipient: str
    name: str
    mode: Literal["letter", "notice", "digest"]
    enabled: bool
    address: str | None  # where notices go now
    separate_address: str | None  # the confirmed address that overrides the file's, if any
    pending_address: str | None  # asked for, waiting for its link to be opened


@dataclass(frozen=True)
class AddressConfirmation:
    """What the confirmation mail carries; `token` exists only here, never in the database."""

    organisation: str
    recipient: str
    address: str
    token: str
    link: str
    expires_at: dt.datetime


# -- the signed link --------------------------------------------------------------------------


def settings_token(vault: Vault, org: str, rid: str, *, now: dt.datetime, days: float) -> str:
    """A URL-safe token naming the recipient, valid `days` from `now`."""
    expires = int((now + dt.timedelta(days=days)).timestamp())
    payload = json.dumps({"o": org, "r": rid, "x": expires}, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(vault.encrypt(payload, _LINK_AAD)).rstrip(b"=").decode("ascii")


def open_settings_token(vault: Vault, token: str, *, now: dt.datetime) -> tuple[str, str]:
    """(organisation, recipient) of a token; PreferenceError when it was altered or has expired."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(vault.decrypt(blob, _LINK_AAD))
        org, rid, expires = str(data["o"]), str(data["r"]), int(data["x"])
    except (binascii.Error, ValueError, KeyError, TypeError, VaultError):
        raise PreferenceError("this link is not valid (altered or incomplete)") from None
    if expires <= now.timestamp():
        raise PreferenceError("this link has expired; the next notice carries a new one")
    return org, rid


def settings_link(config: Config, vault: Vault, org: str, rid: str, *, now: dt.datetime) -> str:
    token = settings_token(vault, org, rid, now=now, days=config.notices.preferences_link_days)
    return f"{config.delivery.approval_base_url}/recipients/notifications/{token}"


# -- reading ----------------------------------------------------------------------------------


def _row(session: Session, org: str, rid: str) -> NotificationPreference | None:
    return session.exec(select(NotificationPreference).where(
        NotificationPreference.organisation_cvr == org, NotificationPreference.recipient == rid)).first()


def file_address(recipient: Recipient) -> str | None:
    """The notification address the recipients file gives (default: the delivery address)."""
    return recipient.notification_address or recipient.email


def preferences(session: Session, org: str, recipient: Recipient) -> Preferences:
    row = _row(session, org, recipient.id)
    separate = row.address if row is not None else None
    return Preferences(org, recipient.id, recipient.name, recipient.notify, row is None or row.enabled,
                       separate or file_address(recipient), separate, row.pending_address if row else None)


def route(store: Store, config: Config, org: str, recipient: Recipient, *,
          now: dt.datetime) -> NotificationRoute | None:
    """How a notice or digest reaches `recipient` now; None for a recipient who gets the letter itself."""
    if recipient.notify == "letter":
        return None
    with store.read() as session:
        prefs = preferences(session, org, recipient)
    assert prefs.address is not None  # the recipients file refuses a notice recipient without one
    return NotificationRoute(recipient.notify, prefs.enabled, prefs.address,
                             settings_link(config, store.vault, org, recipient.id, now=now))


class RouteCache:
    """The routes of one delivery run, each recipient's settings read once."""

    def __init__(self, store: Store, config: Config, now: dt.datetime) -> None:
        self.store, self.config, self.now = store, config, now
        self.known: dict[tuple[str, str], NotificationRoute | None] = {}

    def get(self, org: str, recipient: Recipient, channel: str) -> NotificationRoute | None:
        """How this row's notice goes; None for the letter itself (and channels other than e-mail)."""
        if recipient.notify == "letter" or channel != "email":
            return None
        if (org, recipient.id) not in self.known:
            self.known[(org, recipient.id)] = route(self.store, self.config, org, recipient, now=self.now)
        return self.known[(org, recipient.id)]


def listing(store: Store, directory: RecipientsFile, org: str | None = None) -> list[Preferences]:
    """Every listed recipient's settings (of one organisation, or all), by organisation and id."""
    orgs = [org] if org is not None else sorted(directory.organisations())
    with store.read() as session:
        return [preferences(session, o, directory.get(o, rid))
                for o in orgs for rid in sorted(directory.names(o))]


# -- changing ---------------------------------------------------------------------------------


def _editable(session: Session, org: str, rid: str, now: dt.datetime, actor: str) -> NotificationPreference:
    row = _row(session, org, rid) or NotificationPreference(organisation_cvr=org, recipient=rid)
    row.updated_at, row.updated_by = now, actor
    return row


def set_enabled(store: Store, org: str, rid: str, enabled: bool, *, actor: str = ACTOR,
                now: dt.datetime | None = None) -> None:
    """Switch notices and digests on or off (the encrypted letter of `notify = "letter"` is not one)."""
    when = now or utcnow()
    with store.transaction() as session:
        row = _editable(session, org, rid, when, actor)
        row.enabled = enabled
        session.add(row)
        record(session, None, "notification_settings_changed", actor=actor,
               detail={"organisation": org, "recipient": rid, "enabled": enabled})


def use_file_address(store: Store, org: str, rid: str, *, actor: str = ACTOR, now: dt.datetime | None = None) -> None:
    """Drop the separate address (and any pending one): notices go to the file's address again."""
    when = now or utcnow()
    with store.transaction() as session:
        row = _editable(session, org, rid, when, actor)
        row.address = row.pending_address = row.pending_token_hash = row.pending_expires_at = None
        session.add(row)
        record(session, None, "notification_settings_changed", actor=actor,
               detail={"organisation": org, "recipient": rid, "address": "from the recipients file"})


def request_address(store: Store, config: Config, org: str, rid: str, address: str, *, actor: str = ACTOR,
                    now: dt.datetime | None = None) -> AddressConfirmation:
    """Ask for `address` to receive the notices: it is used only after its one-time link is opened (a
    new request replaces an earlier one, whose link stops working)."""
    when = now or utcnow()
    token = secrets.token_urlsafe(32)
    expires = when + dt.timedelta(hours=config.delivery.invitation_valid_hours)
    with store.transaction() as session:
        row = _editable(session, org, rid, when, actor)
        row.pending_address, row.pending_token_hash, row.pending_expires_at = address, token_hash(token), expires
        session.add(row)
        record(session, None, "notification_address_requested", actor=actor,
               detail={"organisation": org, "recipient": rid, "address": address,
                       "expires_at": expires.isoformat()})
    link = f"{config.delivery.approval_base_url}/recipients/notifications/confirm/{token}"
    return AddressConfirmation(org, rid, address, token, link, expires)


def _pending(session: Session, token: str, now: dt.datetime) -> NotificationPreference | None:
    row = session.exec(select(NotificationPreference)
                       .where(col(NotificationPreference.pending_token_hash) == token_hash(token))).first()
    if row is None or row.pending_address is None:
        return None
    if row.pending_expires_at is not None and row.pending_expires_at <= now:
        return None
    return row


def pending_address(store: Store, token: str, *, now: dt.datetime | None = None) -> NotificationPreference | None:
    """The request a confirmation token opens, while it waits (read only: a GET changes nothing)."""
    with store.read() as session:
        return _pending(session, token, now or utcnow())


def confirm_address(store: Store, token: str, *, now: dt.datetime | None = None) -> NotificationPreference:
    """Open the one-time link: the pending address becomes the notification address."""
    when = now or utcnow()
    with store.transaction() as session:
        row = _pending(session, token, when)
        if row is None:
            raise PreferenceError("this confirmation link is unknown, used or expired; ask for the address again")
        row.address, row.pending_address, row.pending_token_hash = row.pending_address, None, None
        row.pending_expires_at, row.updated_at, row.updated_by = None, when, ACTOR
        session.add(row)
        record(session, None, "notification_address_confirmed", actor=ACTOR,
               detail={"organisation": row.organisation_cvr, "recipient": row.recipient, "address": row.address})
        return row


def confirmation_email(confirmation: AddressConfirmation, config: Config, *, organisation_name: str,
                       now: dt.datetime | None = None) -> bytes:
    """The plain mail to the new address: the link, nothing else (Danish first, as the page)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = config.delivery.from_address
    msg["To"] = confirmation.address
    msg["Subject"] = f"Bekræft adressen til beskeder om post for {organisation_name}"
    msg["Date"] = format_datetime(now or utcnow())
    msg["Message-ID"] = make_msgid(domain=config.delivery.message_id_domain)
    msg["Auto-Submitted"] = "auto-generated"
    until = f"{confirmation.expires_at:%Y-%m-%d %H:%M} UTC"
    msg.set_content(
        f"Der er bedt om, at beskeder om ny post for {organisation_name} sendes til denne adresse.\n"
        f"Åbn linket for at bekræfte (det virker én gang, indtil {until}):\n\n    {confirmation.link}\n\n"
        "Har du ikke bedt om det, så se bort fra denne mail; intet ændres.\n\n"
        f"Someone asked for notices about {organisation_name}'s mail to go to this address. Open the "
        "link above to confirm; if it was not you, ignore this mail and nothing changes.\n")
    return msg.as_bytes()


def known_recipient(directory: RecipientsFile | None, org: str, rid: str) -> Recipient:
    """The listed recipient a link names; PreferenceError when the file no longer lists it."""
    if directory is None:
        raise PreferenceError("no recipients file is configured")
    try:
        return directory.get(org, rid)
    except UnknownRecipient:
        raise PreferenceError("this recipient is no longer listed; ask your administrator") from None
