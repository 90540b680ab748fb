"""The one-time link that authorises a new network: mailed after a correct password from a network an
organisation of the account has not authorised, it works once, for `[console] location_link_minutes`,
and only opened from the network it was requested from (`postbud.locations.network_of`). Opening it
authorises that network for each of the account's organisations that lacked it, audited as the user's
authorisation. The token travels only in the mail; the database keeps its SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from sqlalchemy import update
from sqlmodel import col, select

from core.config import Config
from core.storage.accounts import ConsoleUser, LocationLink
from core.storage.db import Store
from core.storage.models import utcnow
from delivery.channels import smtp_settings
from delivery.errors import DeliveryError
from delivery.smtp import SmtpSender
from postbud import locations
from postbud.console import audit
from postbud.peers import parse_address

log = logging.getLogger(__name__)

PATH = "/console/location"
# Links one account may have open at once: whoever knows the password cannot flood its mailbox.
MAX_OPEN = 3


class LinkRefused(Exception):
    """The link does not authorise anything: `reason` is unknown, used, expired or network."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Issued:
    """A link to mail: `token` exists only here and in the mail."""

    token: str
    to: str
    username: str
    network: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mail_address(user: ConsoleUser) -> str | None:
    """Where the user's links go: the account's e-mail, else its name when that is an address."""
    if user.email:
        return user.email
    name = user.username
    return name if "@" in name and "." in name.rpartition("@")[2] else None


def issue(store: Store, user: ConsoleUser, organisations: tuple[str, ...], address: str, *,
          valid: timedelta, now: datetime | None = None) -> Issued | None:
    """A link for `user` to authorise `address`'s network for `organisations`; None when the account has
    no address to mail it to (then only an administrator can authorise the network) or already has
    MAX_OPEN links open. Its spent and expired links are forgotten here."""
    ip = parse_address(address)
    to = mail_address(user)
    if ip is None or to is None or user.id is None:
        return None
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    network = locations.network_of(ip)
    with store.transaction() as session:
        mine = session.exec(select(LocationLink).where(LocationLink.user_id == user.id)).all()
        for old in mine:
            if old.used_at is not None or old.expires_at <= now:
                session.delete(old)
        if sum(1 for old in mine if old.used_at is None and old.expires_at > now) >= MAX_OPEN:
            return None
        session.add(LocationLink(id=_digest(token), user_id=user.id, network=network, organisations=list(organisations),
                                 requested_from=address[:64], created_at=now, expires_at=now + valid))
    return Issued(token, to, user.username, network, now + valid)


def pending(store: Store, token: str, *, now: datetime | None = None) -> LocationLink | None:
    """The link behind `token` while it still works (for the page that offers to open it)."""
    if not token or len(token) > 100:
        return None
    with store.read() as session:
        row = session.get(LocationLink, _digest(token))
    if row is None or row.used_at is not None or row.expires_at <= (now or utcnow()):
        return None
    return row


def redeem(store: Store, config: Config, token: str, address: str | None, *,
           now: datetime | None = None) -> tuple[str, list[str]]:
    """Open the link from `address`: authorises its network for the organisations it names and returns
    (user name, organisations newly authorised). Raises LinkRefused; a refusal is audited, and a link
    opened from another network stays usable (a mail scanner's visit does not spend it)."""
    now = now or utcnow()
    if not token or len(token) > 100:
        raise LinkRefused("unknown")
    key = _digest(token)
    with store.read() as session:
        found = session.exec(select(LocationLink, ConsoleUser)
                             .join(ConsoleUser, col(ConsoleUser.id) == col(LocationLink.user_id))
                             .where(LocationLink.id == key)).first()
    if found is None:
        raise LinkRefused("unknown")
    link, user = found
    ip = parse_address(address)
    reason = ("used" if link.used_at is not None else "expired" if link.expires_at <= now
              else "disabled" if user.disabled
              else "network" if ip is None or locations.network_of(ip) != link.network else None)
    if reason is not None:
        audit.note(store, user.username, "location_link_refused", address=address,
                   detail={"reason": reason, "network": link.network})
        raise LinkRefused(reason)
    with store.transaction() as session:
        # Conditional: two tabs opening the same link at once authorise once.
        spent = session.execute(update(LocationLink).where(col(LocationLink.id) == key, col(LocationLink.used_at).is_(None))
                                .values(used_at=now).execution_options(synchronize_session=False))
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise LinkRefused("used")
    added = [cvr for cvr in link.organisations
             if cvr in {o.cvr for o in config.organisations}
             and locations.authorise(store, config, cvr, link.network, actor=user.username, address=address, via="link")]
    return user.username, added


def compose(issued: Issued, config: Config) -> bytes:
    mail = EmailMessage()
    mail["From"] = config.delivery.from_address
    mail["To"] = issued.to
    mail["Subject"] = "[postbud] Godkend nyt netværk / Authorise a new network"
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid(domain=config.delivery.message_id_domain)
    mail["Auto-Submitted"] = "auto-generated"
    link = f"{config.console_url}{PATH}/{issued.token}"
    until = issued.expires_at.strftime("%H:%M UTC")
    mail.set_content(
        f"Brugeren {issued.username} har netop angivet den rigtige adgangskode fra netværket {issued.network},\n"
        f"som din organisation ikke har godkendt. Var det dig, så åbn dette link fra samme netværk\n"
        f"(én gang, inden {until}) for at godkende det:\n\n{link}\n\n"
        f"Var det ikke dig, så åbn ikke linket, og skift din adgangskode.\n\n"
        f"The user {issued.username} has just given the right password from the network {issued.network},\n"
        f"which your organisation has not authorised. If that was you, open the link above from the same\n"
        f"network (once, before {until}) to authorise it. If it was not you, do not open it, and change\n"
        f"your password.\n")
    return mail.as_bytes(policy=SMTP)


async def send(issued: Issued, config: Config, store: Store, *, sender: SmtpSender | None = None) -> None:
    """Mail the link over the delivery relay (TLS always); the outcome goes into the audit trail, the
    token never into a log."""
    own = sender is None
    smtp = sender or SmtpSender(smtp_settings(config.delivery))
    try:
        await smtp.send(compose(issued, config), sender=config.delivery.from_address, recipients=[issued.to])
    except DeliveryError as exc:
        log.warning("the link authorising a new network for %s was not sent: %s", issued.username, exc)
        await asyncio.to_thread(audit.note, store, issued.username, "location_link_failed",
                                detail={"network": issued.network, "error": str(exc)[:200]})
    else:
        await asyncio.to_thread(audit.note, store, issued.username, "location_link_sent",
                                detail={"network": issued.network, "to": issued.to})
    finally:
        if own:
            await smtp.close()
