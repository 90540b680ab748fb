"""Approval of recipients: invitation with a one-time token, confirmation, key-checked approval, revocation.

    (none) ──invite──> invited ──confirm──> confirmed ──key valid──> approved
                          ^                                             │
                          └──────────── invite again <── revoked <──revoke

Only an approved recipient whose key is valid today, at the address that confirmed, is sent
anything; a confirmed recipient becomes approved as soon as its key checks out (at confirmation,
on `postbud recipients approve`, or before its first send). The token travels only in the
invitation; the database keeps its SHA-256.

Approval binds the key's fingerprint: a recipient whose key file changes goes back to invited with a
new confirmation code mailed to the address on file, and their deliveries are held until they
confirm (or an administrator vouches). An S/MIME certificate must name the recipient's address,
unless the administrator vouches for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from core.config import DeliverySettings
from core.lifecycle import record
from core.storage.db import Store
from core.storage.models import (
    ApprovalStatus,
    RecipientApproval,
    utcnow,
)
from delivery.keys import KeyStatus, check_recipient_key, smime_cert_addresses
from delivery.outbox import hold_recipient
from delivery.recipients import KeyKind, Recipient, RecipientsFile, UnknownRecipient
from delivery.smtp import MailSender

log = logging.getLogger(__name__)

A = ApprovalStatus
_R = RecipientApproval.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
# Built once: what the check before a send reads of an approval (no ORM instance, no write transaction).
_BOUND = select(_R.status, _R.email, _R.key_fingerprint).where(_R.organisation_cvr == bindparam("org"),
                                                               _R.recipient == bindparam("rid"))


class ApprovalError(Exception):
    """The approval step cannot be taken as asked; the message says what to do instead."""


@dataclass(frozen=True)
class Invitation:
    """What the invitation e-mail carries. `token` exists only here, never in the database."""

    organisation: str
    recipient: str
    name: str
    email: str
    token: str
    link: str
    expires_at: dt.datetime
    listed: bool  # False: not in the recipients file yet (cannot be approved until it is)


def new_code() -> str:
    """A one-time confirmation code, typed as `postbud recipients confirm CODE`: hex, because a
    URL-safe code may begin with "-" and would then be read as an option."""
    return secrets.token_hex(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def key_fingerprint(recipient: Recipient) -> str | None:
    """SHA-256 of the key file as configured; approval binds it, so a swapped key is noticed."""
    path = recipient.key_path
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def address_problem(recipient: Recipient) -> str | None:
    """Why the recipient's S/MIME certificate may not be bound to its address, or None."""
    if recipient.key_kind is not KeyKind.SMIME or recipient.key_path is None or recipient.email is None:
        return None
    try:
        named = smime_cert_addresses(recipient.key_path.read_bytes())
    except OSError as exc:
        return f"cannot read {recipient.key_path}: {exc.strerror}"
    if recipient.email.lower() in named:
        return None
    shown = ", ".join(sorted(named)) or "no address"
    return (f"recipient {recipient.id}'s certificate names {shown}, not {recipient.email}; "
            "give their own certificate, or an administrator may vouch for it")


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-._")
    return slug[:64] or "recipient"


def resolve_recipient(directory: RecipientsFile | None, org: str, name: str) -> Recipient | None:
    """The recipients-file entry named by id, name or alias (case-insensitive), if any."""
    if directory is None or org not in directory.organisations():
        return None
    if name in directory.ids(org) and name not in directory.groups(org):
        return directory.get(org, name)
    wanted = name.strip().casefold()
    for rid, names in directory.names(org).items():
        if any(n.casefold() == wanted for n in names):
            return directory.get(org, rid)
    return None


def _row(session: Session, org: str, rid: str) -> RecipientApproval | None:
    return session.exec(
        select(RecipientApproval).where(RecipientApproval.organisation_cvr == org,
                                        RecipientApproval.recipient == rid)
    ).first()


def invite(store: Store, directory: RecipientsFile | None, settings: DeliverySettings, org: str,
           name: str, email: str, *, actor: str, now: dt.datetime | None = None) -> Invitation:
    """Create (or renew) the invitation of `name` at `email`; any earlier token stops working."""
    when = now or utcnow()
    listed = resolve_recipient(directory, org, name)
    if listed is not None and listed.email is not None and listed.email.lower() != email.lower():
        raise ApprovalError(f"the recipients file gives {listed.id} the address {listed.email}, not "
                            f"{email}; invite that address or correct the file first")
    rid = listed.id if listed is not None else _slug(name)
    token = new_code()
    expires = when + dt.timedelta(hours=settings.invitation_valid_hours)
    with store.transaction() as session:
        row = _row(session, org, rid)
        if row is not None and row.status == A.APPROVED:
            raise ApprovalError(f"{rid} of {org} is approved already; revoke first to invite again")
        row = row or RecipientApproval(organisation_cvr=org, recipient=rid)
        row.email, row.status, row.token_hash = email, A.INVITED, token_hash(token)
        row.expires_at, row.invited_at, row.actor, row.updated_at = expires, when, actor, when
        row.confirmed_at = row.approved_at = row.revoked_at = None
        session.add(row)
        record(session, None, "recipient_invited", actor=actor,
               detail={"organisation": org, "recipient": rid, "name": listed.name if listed else name,
                       "expires_at": expires.isoformat()})
    link = f"{settings.approval_base_url}/recipients/confirm/{token}"
    return Invitation(org, rid, listed.name if listed else name, email, token, link, expires,
                      listed is not None)


def invitation_email(invitation: Invitation, settings: DeliverySettings, *, organisation_name: str,
                     now: dt.datetime | None = None) -> bytes:
    """The plain-text invitation: no document, only the link and the code."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = settings.from_address
    msg["To"] = invitation.email
    msg["Subject"] = f"Confirm that you receive official mail for {organisation_name}"
    msg["Date"] = format_datetime(now or utcnow())
    msg["Message-ID"] = make_msgid(domain=settings.message_id_domain)
    msg.set_content(
        f"Hello {invitation.name},\n\n"
        f"{organisation_name} ({invitation.organisation}) wants to forward its official digital mail "
        "to you, encrypted to your own key.\n\n"
        f"To confirm that this address is yours, open\n\n    {invitation.link}\n\n"
        f"or give your administrator this code for `postbud recipients confirm`:\n\n"
        f"    {invitation.token}\n\n"
        f"The link works once and until {invitation.expires_at:%Y-%m-%d %H:%M} UTC. "
        "If you did not expect this, ignore this message.\n"
    )
    return msg.as_bytes()


async def send_invitation(sender: MailSender, invitation: Invitation, settings: DeliverySettings, *,
                          organisation_name: str) -> str:
    """Send the invitation over the same TLS-only sender as deliveries; returns the server's reply."""
    body = invitation_email(invitation, settings, organisation_name=organisation_name)
    return await sender.send(body, sender=settings.from_address, recipients=[invitation.email])


def _check(recipient: Recipient, trust_store: Path | None, now: dt.datetime) -> KeyStatus:
    return check_recipient_key(recipient, trust_store=trust_store, now=now)


def approve_row(session: Session, row: RecipientApproval, recipient: Recipient, status: KeyStatus, *,
                actor: str, now: dt.datetime, key: bytes | None = None) -> None:
    """Mark approved (or re-checked) in the caller's transaction, binding the key's fingerprint: of
    `key` when given (one the recipient uploaded), else of the recipients file's key file."""
    changed = row.status != A.APPROVED
    row.status, row.approved_at = A.APPROVED, (now if changed else row.approved_at)
    row.key_fingerprint = hashlib.sha256(key).hexdigest() if key is not None else key_fingerprint(recipient)
    row.key_checked_at = now
    row.key_expires_at, row.token_hash, row.updated_at = status.expires_at, None, now
    session.add(row)
    record(session, None, "recipient_approved" if changed else "recipient_key_checked", actor=actor,
           detail={"organisation": row.organisation_cvr, "recipient": row.recipient,
                   "key_days_left": status.days_left})


def confirm(store: Store, token: str, *, directory: RecipientsFile | None = None,
            trust_store: Path | None = None, actor: str = "recipient",
            now: dt.datetime | None = None) -> RecipientApproval:
    """Use a one-time token: invited → confirmed, and → approved when the key already checks out."""
    when = now or utcnow()
    with store.transaction() as session:
        row = session.exec(
            select(RecipientApproval).where(RecipientApproval.token_hash == token_hash(token))
            .with_for_update()
        ).first()
        if row is None or row.status != A.INVITED:
            raise ApprovalError("unknown or already used confirmation code")
        if row.expires_at is not None and row.expires_at <= when:
            raise ApprovalError("the confirmation code has expired; ask for a new invitation")
        # the link stays open for the checklist's next steps (key, test letter); approval closes it
        row.status, row.confirmed_at, row.updated_at = A.CONFIRMED, when, when
        session.add(row)
        record(session, None, "recipient_confirmed", actor=actor,
               detail={"organisation": row.organisation_cvr, "recipient": row.recipient})
        recipient = _listed(directory, row)
        if recipient is not None and _same_address(row.email, recipient) and address_problem(recipient) is None:
            status = _check(recipient, trust_store, when)
            if status.valid:
                approve_row(session, row, recipient, status, actor=actor, now=when)
    return row


def _listed(directory: RecipientsFile | None, row: RecipientApproval) -> Recipient | None:
    if directory is None:
        return None
    try:
        return directory.get(row.organisation_cvr, row.recipient)
    except UnknownRecipient:
        return None


def _same_address(confirmed: str | None, recipient: Recipient) -> bool:
    if recipient.email is None or confirmed is None:
        return recipient.email is None  # a webhook recipient has no address to confirm
    return recipient.email.lower() == confirmed.lower()


def _fingerprint(recipient: Recipient, key: bytes | None) -> str | None:
    return hashlib.sha256(key).hexdigest() if key is not None else key_fingerprint(recipient)


def approve(store: Store, directory: RecipientsFile, org: str, rid: str, *, actor: str,
            trust_store: Path | None = None, vouch: bool = False,
            now: dt.datetime | None = None) -> RecipientApproval:
    """The administrator's step: approve a confirmed recipient (or, with `vouch`, one that never
    confirmed, e.g. a webhook or the sandbox's demo recipient) once its key checks out."""
    when = now or utcnow()
    try:
        recipient = directory.get(org, rid)
    except UnknownRecipient as exc:
        raise ApprovalError(f"{exc.args[0]}; add it to the recipients file first") from None
    status = _check(recipient, trust_store, when)
    if not status.valid:
        raise ApprovalError(f"{rid} cannot be approved: key not usable: {status.reason}")
    problem = address_problem(recipient)
    if problem is not None and not vouch:
        raise ApprovalError(f"{problem} (--vouch)")
    with store.transaction() as session:
        row = _row(session, org, rid)
        if row is None or row.status in (A.INVITED, A.REVOKED):
            if not vouch:
                state = "has not been invited" if row is None else f"is {row.status}"
                raise ApprovalError(f"{rid} {state}; invite and let them confirm, or --vouch for the "
                                    "address yourself")
            row = row or RecipientApproval(organisation_cvr=org, recipient=rid)
            row.confirmed_at, row.revoked_at = when, None
            row.status = A.CONFIRMED
        if not _same_address(row.email, recipient) and not vouch:
            raise ApprovalError(f"{rid} confirmed {row.email}, but the recipients file now says "
                                f"{recipient.email}; invite the new address")
        row.email, row.actor = recipient.email, actor
        approve_row(session, row, recipient, status, actor=actor, now=when)
    return row


def revoke(store: Store, org: str, rid: str, *, actor: str, now: dt.datetime | None = None) -> list[str]:
    """Revoke; the recipient's pending deliveries are held. Returns the held messages' ids."""
    when = now or utcnow()
    with store.transaction() as session:
        row = _row(session, org, rid) or RecipientApproval(organisation_cvr=org, recipient=rid)
        row.status, row.revoked_at, row.token_hash, row.updated_at = A.REVOKED, when, None, when
        row.actor = actor
        session.add(row)
        record(session, None, "recipient_revoked", actor=actor,
               detail={"organisation": org, "recipient": rid})
        return hold_recipient(session, org, rid, reason=f"recipient {rid} was revoked", actor=actor)


def admission(session: Session, org: str, recipient: Recipient, status: KeyStatus, *, actor: str,
              now: dt.datetime, settings: DeliverySettings | None = None,
              invitations: list[Invitation] | None = None, key: bytes | None = None) -> str | None:
    """Why `recipient` may not be sent to now, or None; promotes a confirmed recipient with a
    valid key to approved in the caller's transaction. A key changed since approval sends the
    recipient back to invited with a new code (appended to `invitations` for the caller to mail
    after the commit)."""
    row = _row(session, org, recipient.id)
    if row is None:
        return f"recipient {recipient.id} is not approved (never invited)"
    if row.status == A.REVOKED:
        return f"recipient {recipient.id} is revoked"
    if row.status == A.INVITED:
        return f"recipient {recipient.id} has not confirmed the invitation"
    if not _same_address(row.email, recipient):
        return f"recipient {recipient.id}'s address changed since confirmation; invite again"
    if not status.valid:
        return f"recipient {recipient.id}'s key is not usable: {status.reason}"
    current = _fingerprint(recipient, key)
    if row.status == A.APPROVED and row.key_fingerprint is not None and row.key_fingerprint != current:
        return _key_changed(session, row, recipient, current, actor=actor, now=now, settings=settings,
                            invitations=invitations)
    if row.status != A.APPROVED and recipient.uploaded_key is not None:
        # a key the recipient gave themselves is approved only by the code of its test letter
        return f"recipient {recipient.id} has not typed the code of the test letter yet"
    if row.status != A.APPROVED:
        problem = address_problem(recipient)
        if problem is not None:
            return problem
        approve_row(session, row, recipient, status, actor=actor, now=now)
    elif row.key_fingerprint is None:
        approve_row(session, row, recipient, status, actor=actor, now=now, key=key)  # bound by an older version
    return None


def admitted_as_is(connection: Connection, org: str, recipient: Recipient, status: KeyStatus, *,
                   key: bytes | None = None) -> bool:
    """Whether `admission` would admit `recipient` and change nothing: approved, at the address that
    confirmed, bound to this very key, and the key valid today. It only reads, so the check before
    most sends takes no write transaction; when False, `admission` decides (and writes) in one."""
    if not status.valid:
        return False
    found = connection.execute(_BOUND, {"org": org, "rid": recipient.id}).first()
    if found is None:
        return False
    state, confirmed, bound = found
    return (state == A.APPROVED and bound is not None and _same_address(confirmed, recipient)
            and bound == _fingerprint(recipient, key))


def _key_changed(session: Session, row: RecipientApproval, recipient: Recipient, current: str | None, *,
                 actor: str, now: dt.datetime, settings: DeliverySettings | None,
                 invitations: list[Invitation] | None) -> str:
    """The key is not the one approved: back to invited with a new one-time code, nothing sent."""
    token = new_code()
    hours = settings.invitation_valid_hours if settings is not None else 72
    expires = now + dt.timedelta(hours=hours)
    row.status, row.token_hash, row.invited_at, row.expires_at = A.INVITED, token_hash(token), now, expires
    row.approved_at, row.confirmed_at, row.updated_at = None, None, now
    session.add(row)
    reason = (f"recipient {recipient.id}'s key changed since approval; held until {recipient.id} confirms "
              "again (a new confirmation code was sent to the address on file)")
    record(session, None, "recipient_key_changed", actor=actor, reason=reason,
           detail={"organisation": row.organisation_cvr, "recipient": row.recipient,
                   "approved_key": (row.key_fingerprint or "")[:16], "new_key": (current or "")[:16]})
    if invitations is not None and recipient.email is not None:
        base = settings.approval_base_url if settings is not None else ""
        invitations.append(Invitation(row.organisation_cvr, row.recipient, recipient.name, recipient.email, token,
                                      f"{base}/recipients/confirm/{token}", expires, True))
    log.warning("recipient %s of %s: key changed since approval; deliveries held until confirmed again",
                row.recipient, row.organisation_cvr)
    return reason


def pending_invitation(store: Store, token: str, *, now: dt.datetime | None = None) -> RecipientApproval | None:
    """The invitation a token opens, if it is still waiting for confirmation (read only)."""
    with store.read() as session:
        row = session.exec(
            select(RecipientApproval).where(RecipientApproval.token_hash == token_hash(token))
        ).first()
    when = now or utcnow()
    if row is None or row.status != A.INVITED or (row.expires_at is not None and row.expires_at <= when):
        return None
    return row
