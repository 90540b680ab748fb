"""The onboarding checklist's mails: the encrypted test letter with its code, the PKCS#12 file of an
issued certificate, and reminders; sent over the same TLS-only sender as deliveries."""

from __future__ import annotations

import datetime as dt
import secrets
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from core.config import DeliverySettings
from core.storage.db import Store
from delivery.compose import message_id_for
from delivery.envelope import Cover, build_inner
from delivery.onboarding import Reminder, Step, TestLetter, start_test_letter, test_letter_sent
from delivery.pgp import encrypt_pgp
from delivery.recipients import KeyKind
from delivery.smime import encrypt_smime
from delivery.smtp import SmtpSender

_NEXT = {
    Step.INVITED: "bekræfte din adresse",
    Step.ADDRESS_CONFIRMED: "give os din offentlige nøgle (S/MIME-certifikat eller OpenPGP-nøgle)",
    Step.KEY_PROVIDED: "modtage testbrevet",
    Step.TEST_LETTER_SENT: "skrive koden fra testbrevet",
}


def test_letter_bytes(letter: TestLetter, settings: DeliverySettings, *, organisation_name: str,
                      message_id: str, now: dt.datetime) -> bytes:
    """The test letter, encrypted to the recipient's new key exactly as a real letter is."""
    cover = Cover(sender=organisation_name, title="Testbrev fra postbud: din kode", received_at=now,
                  trace_id=f"onboarding-{letter.recipient}", has_files=False,
                  text=(f"Dette testbrev er krypteret til din nye nøgle. Din kode er:\n\n    {letter.code}\n\n"
                        "Skriv koden på bekræftelsessiden (linket fra invitationen). Derefter modtager du "
                        f"digital post for {organisation_name} krypteret til denne nøgle."))
    inner = build_inner(from_addr=settings.from_address, to_addrs=[letter.email], message_id=message_id,
                        date=now, cover=cover, files=[])
    if letter.kind is KeyKind.SMIME:
        return encrypt_smime(inner, letter.key)
    return encrypt_pgp(inner, letter.key)


async def send_test_letter(sender: SmtpSender, store: Store, settings: DeliverySettings, org: str, rid: str, *,
                           organisation_name: str, now: dt.datetime, actor: str = "recipient") -> str:
    """A new code, the letter encrypted to the key, sent; then traced. Returns the Message-ID."""
    letter = start_test_letter(store, org, rid)
    message_id = message_id_for(f"test.{secrets.token_hex(8)}", domain=settings.message_id_domain)
    wire = test_letter_bytes(letter, settings, organisation_name=organisation_name, message_id=message_id, now=now)
    await sender.send(wire, sender=settings.from_address, recipients=[letter.email])
    test_letter_sent(store, letter, message_id=message_id, now=now, actor=actor)
    return message_id


def _plain(settings: DeliverySettings, to: str, subject: str, text: str, now: dt.datetime) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = settings.from_address
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=settings.message_id_domain)
    msg.set_content(text)
    return msg


async def send_pkcs12(sender: SmtpSender, settings: DeliverySettings, to: str, bundle: bytes, *,
                      organisation_name: str, now: dt.datetime) -> None:
    """The PKCS#12 file by mail; its passphrase is not in this mail (the page showed it once)."""
    msg = _plain(settings, to, f"Dit certifikat til krypteret post fra {organisation_name}",
                 f"Vedhæftet er dit nye S/MIME-certifikat med den private nøgle (PKCS#12), udstedt af "
                 f"{organisation_name}.\n\nImportér filen i dit e-mailprogram. Adgangskoden til filen stod på "
                 "bekræftelsessiden og står ikke i denne mail. Har du mistet den, så bed om et nyt "
                 "certifikat.\n", now)
    msg.add_attachment(bundle, maintype="application", subtype="pkcs12", filename="postbud-certifikat.p12")
    await sender.send(msg.as_bytes(), sender=settings.from_address, recipients=[to])


async def send_reminder(sender: SmtpSender, settings: DeliverySettings, reminder: Reminder, *,
                        organisation_name: str, now: dt.datetime) -> None:
    msg = _plain(settings, reminder.email, f"Påmindelse: digital post fra {organisation_name}",
                 f"Hej,\n\n{organisation_name} ({reminder.organisation}) venter på, at du vil "
                 f"{_NEXT.get(reminder.step, 'fortsætte')}, så din digitale post kan sendes krypteret til dig."
                 f"\n\nFortsæt her:\n\n    {reminder.link}\n\nLinket virker til {reminder.expires_at:%Y-%m-%d %H:%M} "
                 "UTC; tidligere links virker ikke længere.\n", now)
    await sender.send(msg.as_bytes(), sender=settings.from_address, recipients=[reminder.email])
