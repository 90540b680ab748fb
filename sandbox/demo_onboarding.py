"""The onboarding demo of `make run`: a recipient in the demo file with an address and no key
("nyansat"), invited at every start until approved. The invitation goes to the sandbox's mail
server and its link is printed, so anyone can walk the checklist on the confirmation page with a
key of their own (README "Onboarding a recipient")."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

from sqlmodel import select

from core.config import Config
from core.storage.db import Store
from core.storage.models import ApprovalStatus, RecipientApproval
from delivery.approval import ApprovalError, Invitation, invite, send_invitation
from delivery.channels import smtp_settings
from delivery.errors import DeliveryError
from delivery.recipients import RecipientsFile
from delivery.smtp import SmtpSender

log = logging.getLogger(__name__)

ONBOARDING_ID = "nyansat"
ONBOARDING_NAME = "Nanna Nyansat"
ONBOARDING_EMAIL = "nyansat@eksempel.invalid"


def onboarding_entry(cvr: str) -> str:
    """The demo file's table for the onboarding recipient: an address, no key."""
    return (f'\n[org.{cvr}.recipients.{ONBOARDING_ID}]\nname = "{ONBOARDING_NAME}"\n'
            f'email = "{ONBOARDING_EMAIL}"\n# no key: {ONBOARDING_NAME} gives one on the confirmation page\n')


def invite_onboarding_demo(store: Store, config: Config, directory: RecipientsFile, *,
                           out: TextIO | None = None) -> Invitation | None:
    """Invite the demo recipient of the first organisation unless approved or revoked already; mail the
    invitation and print its link. Runs in a worker thread (no event loop of its own)."""
    if not config.organisations:
        return None
    cvr = config.organisations[0].cvr
    with store.read() as session:
        row = session.exec(select(RecipientApproval).where(RecipientApproval.organisation_cvr == cvr,
                                                           RecipientApproval.recipient == ONBOARDING_ID)).first()
    if row is not None and row.status in (ApprovalStatus.APPROVED, ApprovalStatus.REVOKED):
        return None
    try:
        invitation = invite(store, directory, config.delivery, cvr, ONBOARDING_ID, ONBOARDING_EMAIL, actor="sandbox")
    except ApprovalError as exc:
        log.warning("onboarding demo not invited: %s", exc)
        return None

    async def send() -> None:
        async with SmtpSender(smtp_settings(config.delivery)) as sender:
            await send_invitation(sender, invitation, config.delivery, organisation_name=config.organisations[0].name)

    try:
        asyncio.run(send())
    except DeliveryError as exc:
        log.warning("onboarding demo invitation not mailed: %s", exc)
    stream = out or sys.stderr
    stream.write(f"\nonboarding demo: {ONBOARDING_NAME} <{ONBOARDING_EMAIL}> is invited (mail in the sandbox's "
                 f"mail folder); walk the checklist at\n  {invitation.link}\n")
    stream.flush()
    return invitation
