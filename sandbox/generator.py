"""Generates realistic Danish business mail for the sandbox and tests, deterministic by seed.

`generate(cvr, count, seed=...)` returns `NormalizedMessage`s addressed to company `cvr`: letters from
Skattestyrelsen, Erhvervsstyrelsen, Udbetaling Danmark, a kommune, Arbejdstilsynet and a bank, each
with a real PDF main document (Danish text, extractable), AttentionData in about half of them
(a person, a department, an e-mail or a P-number), about 8 % NemSMS (no body, notification only),
about 8 % forwarded (ForwardData), reply allowed where the letter invites an answer, and
UUID-v4 message ids. The same (cvr, count, seed) always gives the same messages, byte for byte.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, date, datetime, timedelta

from sandbox.letters import (
    COMPANY_WORDS,
    DEPARTMENTS,
    PERSONS,
    SENDERS,
    TEMPLATES,
    Sender,
    Template,
)
from sandbox.pdf import render_letter
from core.domain import (
    Attention,
    Document,
    DocumentKind,
    File,
    Flags,
    ForwardData,
    MessageType,
    NormalizedMessage,
    Party,
    ReplyData,
)

NEMSMS_SHARE = 0.08
FORWARD_SHARE = 0.08
ATTENTION_SHARE = 0.5
_START = datetime(2025, 1, 6, 7, 30, tzinfo=UTC)
_ASCII = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa", "é": "e"})
_MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september",
           "oktober", "november", "december")


def company_name(cvr: str) -> str:
    """A stable, plausible company name for a CVR number."""
    rng = random.Random(f"company:{cvr}")
    return " ".join(rng.choice(words) for words in COMPANY_WORDS)


def company_domain(cvr: str) -> str:
    first = company_name(cvr).split()[0].lower()
    return first.translate(_ASCII) + f"{cvr[-3:]}.dk"


def generate(cvr: str, count: int, *, seed: int = 0) -> list[NormalizedMessage]:
    """`count` messages to company `cvr`, oldest first."""
    if len(cvr) != 8 or not cvr.isdigit():
        raise ValueError(f"a CVR number is 8 digits, got {cvr!r}")
    rng = random.Random(f"postbud-sandbox:{seed}:{cvr}")
    sent = _START
    out: list[NormalizedMessage] = []
    for _ in range(count):
        sent += timedelta(minutes=rng.randint(20, 60 * 30), seconds=rng.randint(0, 59))
        out.append(_message(rng, cvr, sent))
    return out


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _danish_date(day: date) -> str:
    return f"{day.day}. {_MONTHS[day.month - 1]} {day.year}"


def _amount(rng: random.Random) -> str:
    kroner = rng.randint(250, 2_500_000)
    return f"{kroner:,}".replace(",", ".") + f",{rng.choice((0, 0, 25, 50, 75)):02d}"


def _message(rng: random.Random, cvr: str, sent: datetime) -> NormalizedMessage:
    template = rng.choice(TEMPLATES)
    sender = template.sender
    fields = {
        "quarter": str((sent.month - 1) // 3 if sent.month > 3 else 4),  # the quarter just ended
        "year": str(sent.year - 1 if sent.month <= 3 else sent.year),
        "due": _danish_date((sent + timedelta(days=rng.choice((8, 14, 21, 30)))).date()),
        "date": _danish_date((sent - timedelta(days=rng.randint(1, 20))).date()),
        "amount": _amount(rng),
        "case": f"{sent.year}-{rng.randint(10000, 999999)}",
    }
    title = template.title.format(**fields)
    notification = template.notification.format(**fields)
    attention = _attention(rng, cvr) if rng.random() < ATTENTION_SHARE else None
    recipient = Party(cvr, "CVR", company_name(cvr))
    message_id = _uuid4(rng)
    base = NormalizedMessage(
        message_id=message_id,
        message_type=MessageType.NEMSMS,
        title=title,
        sender=Party(sender.cvr, "CVR", sender.name),
        recipient=recipient,
        format="memo-1.1",
        attention=attention,
        sent_at=sent,
        notification=notification,
        post_type="MYNDIGHEDSPOST" if sender.public else None,
        content_data=_case(template, sender, fields["case"]),
        text=notification,  # what MeMo readers use as the text of a NemSMS
    )
    if rng.random() < NEMSMS_SHARE:
        return base
    forward = _forward(rng, sent) if rng.random() < FORWARD_SHARE else None
    paragraphs = tuple(p.format(**fields) for p in template.paragraphs)
    lines = _letter_lines(sender, recipient, attention, sent)
    main_pdf = render_letter(letterhead=lines[0], recipient=lines[1], title=title,
                             paragraphs=paragraphs, closing=lines[2])
    main_file = File(_filename(title), "application/pdf", main_pdf, "da")
    documents = [Document(DocumentKind.MAIN, (main_file,), document_id=_uuid4(rng), label=title)]
    if template.attachment:
        documents.append(_attachment(rng, template, sender, recipient, fields))
    replies: tuple[ReplyData, ...] = ()
    if template.reply_allowed and rng.random() < 0.2:
        replies = (ReplyData(message_uuid=_uuid4(rng), case_id=fields["case"],
                             sender_id=sender.cvr, recipient_id=cvr),)
    return dataclasses.replace(
        base,
        message_type=MessageType.DIGITALPOST,
        title=f"Videresendt: {title}"[:256] if forward else title,
        documents=tuple(documents),
        flags=Flags(reply_allowed=template.reply_allowed, mandatory=template.mandatory),
        forward=forward,
        replies=replies,
        text="\n".join((*lines[0], *lines[1], title, *paragraphs, *lines[2])),
    )


def _case(template: Template, sender: Sender, case: str) -> dict[str, str]:
    if not any("{case}" in p for p in (template.title, *template.paragraphs)):
        return {}
    return {"case_id": case, "case_system": f"{sender.name} sagsbehandling"}


def _attention(rng: random.Random, cvr: str) -> Attention:
    choice = rng.randrange(4)
    if choice == 0:
        return Attention(person_name=rng.choice(PERSONS))
    if choice == 1:
        return Attention(content_responsible=rng.choice(DEPARTMENTS))
    if choice == 2:
        local = rng.choice(("bogholderi", "loen", "oekonomi", "post"))
        return Attention(email=f"{local}@{company_domain(cvr)}", person_name=rng.choice(PERSONS))
    return Attention(production_unit=str(rng.randint(1_000_000_000, 1_999_999_999)),
                     content_responsible=rng.choice(DEPARTMENTS))


def _forward(rng: random.Random, sent: datetime) -> ForwardData:
    original: Sender = rng.choice(SENDERS)
    return ForwardData(
        message_uuid=_uuid4(rng),
        original_sender=original.name,
        original_message_at=sent - timedelta(days=rng.randint(1, 40)),
        comment="Videresendt til rette modtager i virksomheden.",
    )


def _letter_lines(sender: Sender, recipient: Party, attention: Attention | None,
                  sent: datetime) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    head = (sender.name, sender.address, f"CVR-nr. {sender.cvr}", f"Dato: {_danish_date(sent.date())}")
    to = [recipient.name or "", f"CVR-nr. {recipient.id}"]
    if attention is not None and attention.labels():
        to.append("Att.: " + ", ".join(attention.labels()))
    closing = ("Med venlig hilsen", sender.name)
    return head, tuple(to), closing


def _attachment(rng: random.Random, template: Template, sender: Sender, recipient: Party,
                fields: dict[str, str]) -> Document:
    label = template.attachment or "Bilag"
    body = (
        f"{label} vedrørende {recipient.name}.",
        f"Beløb: {fields['amount']} kr. Sagsnummer: {fields['case']}.",
        "Bilaget er en del af den samlede meddelelse og skal læses sammen med brevet.",
    )
    pdf = render_letter(letterhead=(sender.name, sender.address), recipient=(recipient.name or "",),
                        title=label, paragraphs=body, closing=(sender.name,))
    return Document(DocumentKind.ADDITIONAL, (File(_filename(label), "application/pdf", pdf, "da"),),
                    document_id=_uuid4(rng), label=label)


def _filename(title: str) -> str:
    """A conservative file name: ASCII letters, digits and dashes, ending in .pdf."""
    plain = title.translate(_ASCII)
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in plain)
    return "-".join(part for part in slug.split("-") if part)[:80] + ".pdf"
