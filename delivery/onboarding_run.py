"""The daemon's onboarding pass: test letters the page could not send go out, and recipients stuck on a
step for `[delivery] onboarding_reminder_days` are reminded with a renewed link."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from core.config import Config
from core.storage.db import Store
from delivery.channels import smtp_settings
from delivery.errors import DeliveryError
from delivery.onboarding import OnboardingError, due_reminders, pending_test_letters
from delivery.onboarding_mail import send_reminder, send_test_letter
from delivery.recipients import RecipientsFile
from delivery.smtp import SmtpSender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnboardingRun:
    test_letters: int = 0
    reminders: int = 0
    failed: int = 0


def organisation_name(config: Config, cvr: str) -> str:
    try:
        return config.organisation(cvr).name
    except KeyError:
        return f"CVR {cvr}"


async def onboarding_pass(store: Store, config: Config, directory: RecipientsFile | None, *,
                          now: dt.datetime, sender: SmtpSender | None = None) -> OnboardingRun:
    settings = config.delivery
    pending = await asyncio.to_thread(pending_test_letters, store)
    every = dt.timedelta(days=settings.onboarding_reminder_days)
    valid = dt.timedelta(hours=settings.invitation_valid_hours)
    reminders = await asyncio.to_thread(due_reminders, store, directory, every=every, valid=valid,
                                        base_url=settings.approval_base_url, now=now)
    if not pending and not reminders:
        return OnboardingRun()
    smtp = sender or SmtpSender(smtp_settings(settings))
    sent = reminded = failed = 0
    try:
        for org, rid in pending:
            try:
                await send_test_letter(smtp, store, settings, org, rid, organisation_name=organisation_name(config, org),
                                       now=now, actor="postbud")
                sent += 1
            except (DeliveryError, OnboardingError) as exc:
                failed += 1
                log.warning("test letter to recipient %s of %s not sent: %s", rid, org, exc)
        for reminder in reminders:
            try:
                await send_reminder(smtp, settings, reminder, organisation_name=organisation_name(config, reminder.organisation),
                                    now=now)
                reminded += 1
            except DeliveryError as exc:
                # the link was renewed: the next reminder (after as long again) carries a new one
                failed += 1
                log.warning("reminder to recipient %s of %s not sent: %s", reminder.recipient,
                            reminder.organisation, exc)
    finally:
        if sender is None:
            await smtp.close()
    return OnboardingRun(sent, reminded, failed)
