"""The end-to-end benchmark's letters: MeMo XML with a one-page PDF of about 2 KB of text each."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from connectors.memo.writer import build_memo
from core.domain import Attention, Document, DocumentKind, File, MessageType, NormalizedMessage, Party
from sandbox.generator import company_name
from sandbox.letters import SENDERS
from sandbox.pdf import render_letter

# Demo recipients with S/MIME keys, as a letter's attention names them (sandbox/demo.py): the
# example rules' attention rule routes each letter to one of them.
ATTENTION = (
    Attention(person_name="Søren Østergaard"),
    Attention(content_responsible="Økonomi og regnskab"),
    Attention(content_responsible="Lønafdelingen"),
    Attention(content_responsible="Direktionen"),
    Attention(content_responsible="Reception"),
)
_WORDS = ("vedrørende", "opgørelse", "betaling", "frist", "kvartal", "indberetning", "sagen", "beløbet",
          "oplysninger", "afgørelse", "virksomheden", "bemærk", "venligst", "kontakt", "dokumentation",
          "perioden", "regnskab", "tilsyn", "ansøgning", "bekræftelse")


def _body(rng: random.Random, chars: int) -> tuple[str, ...]:
    paragraphs: list[str] = []
    size = 0
    while size < chars:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(25, 45))]
        text = " ".join(words).capitalize() + "."
        paragraphs.append(text)
        size += len(text)
    return tuple(paragraphs)


def letter(cvr: str, n: int, *, seed: int = 0, text_bytes: int = 2000) -> bytes:
    """Letter `n` (deterministic for a seed) to company `cvr`, as MeMo 1.1 bytes."""
    rng = random.Random(f"postbud-e2e:{seed}:{cvr}:{n}")
    sender = rng.choice(SENDERS)
    attention = ATTENTION[n % len(ATTENTION)]
    title = f"Brev {n} fra {sender.name}"
    who = attention.person_name or attention.content_responsible or ""
    paragraphs = _body(rng, text_bytes)
    pdf = render_letter(letterhead=(sender.name, sender.address), recipient=(company_name(cvr), f"Att.: {who}"),
                        title=title, paragraphs=paragraphs, closing=("Med venlig hilsen", sender.name))
    message = NormalizedMessage(
        message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        message_type=MessageType.DIGITALPOST,
        title=title,
        sender=Party(sender.cvr, "CVR", sender.name),
        recipient=Party(cvr, "CVR", company_name(cvr)),
        format="memo-1.1",
        attention=attention,
        documents=(Document(DocumentKind.MAIN, (File(f"brev-{n}.pdf", "application/pdf", pdf, "da"),),
                            document_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), label=title),),
        sent_at=datetime(2026, 12, 1, 8, tzinfo=UTC) + timedelta(seconds=n),
    )
    return build_memo(message, version="1.1")
