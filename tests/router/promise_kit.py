"""Letters of five kinds for one organisation, and a way to place them by hand (helpers, no tests)."""

from __future__ import annotations

import random

from sqlmodel import select

from collector.ledger import MailboxKey
from collector.storing import save_collected
from connectors.base import Fetched, MessageRef
from core.domain import MessageType, NormalizedMessage, Party
from core.metrics import Metrics
from core.storage.models import Message
from postbud.runtime import Runtime
from router.queue import assign, held
from router.stage import route_next

ORG = "12345678"
KINDS: dict[str, tuple[Party, list[str], list[str]]] = {
    "finance": (Party("29634750", "CVR", "Skattestyrelsen"),
                ["Momsangivelse for {n}. kvartal", "Rykker for moms {n}", "Selskabsskat {n}: slutopgørelse"],
                ["moms", "skat", "afgift", "kvartal", "angivelse", "betaling", "regnskab"]),
    "payroll": (Party("11223344", "CVR", "Lønservice A/S"),
                ["Lønsedler for periode {n}", "Feriepenge opgørelse {n}", "A-skat og AM-bidrag {n}"],
                ["løn", "lønsedler", "feriepenge", "pension", "medarbejdere", "timer", "bidrag"]),
    "legal": (Party("10213231", "CVR", "Erhvervsstyrelsen"),
              ["Registrering af vedtægter {n}", "Ændring i ejerbog {n}", "Bestyrelsens sammensætning {n}"],
              ["vedtægter", "bestyrelse", "ejerbog", "registrering", "kapital", "revisor", "selskab"]),
    "hr": (Party("55667788", "CVR", "Arbejdstilsynet"),
           ["Tilsyn med arbejdsmiljø {n}", "Påbud om arbejdsmiljø {n}", "Sygedagpenge refusion {n}"],
           ["arbejdsmiljø", "tilsyn", "påbud", "sygedagpenge", "ansatte", "refusion", "sikkerhed"]),
    "facilities": (Party("99887766", "CVR", "Ejendomsselskabet Nord"),
                   ["Huslejeopkrævning {n}", "Varsling af vedligeholdelse {n}", "Varmeregnskab {n}"],
                   ["husleje", "lejemål", "varme", "vedligeholdelse", "ejendom", "nøgler", "opkrævning"]),
}
# A kind never placed: a new sender whose premium notices borrow the bookkeeping's words (moms,
# betaling), so a model without a novelty check is sure they are the finance department's.
INSURANCE = (Party("24256790", "CVR", "Tryg Forsikring A/S"),
             ["Momsfri præmie og betaling {n}", "Forsikringspræmie: moms og afgift {n}", "Ny police, betaling {n}"],
             ["forsikring", "police", "dækning", "præmie", "selvrisiko", "erstatning", "skadesanmeldelse",
              "forsikringstager", "policenummer"])


# A third of every kind's letters come through a shared portal with a generic title: only their
# words tell them apart, so the model is less sure of them (and, never wrong, used to let its
# threshold fall to their level).
PORTAL = Party("34051178", "CVR", "Virk Digital Post")


def letter(i: int, kind: str, rng: random.Random) -> NormalizedMessage:
    sender, titles, words = INSURANCE if kind == "insurance" else KINDS[kind]
    title = rng.choice(titles).format(n=rng.randint(1, 40))
    if kind != "insurance" and i % 3 == 2:
        sender, title = PORTAL, f"Ny meddelelse {rng.randint(1, 400)}"
    text = (f"Kære virksomhed. {' '.join(rng.sample(words, 4))}. Vedrørende sag {rng.randint(1000, 9999)}: "
            f"{' '.join(rng.sample(words, 3))}. Med venlig hilsen")
    if kind == "insurance":
        text = (f"{' '.join(rng.sample(words, 8))}. moms betaling afgift kvartal regnskab. "
                f"moms betaling afgift kvartal regnskab {rng.randint(1000, 9999)}")
    return NormalizedMessage(message_id=f"m-{kind}-{i}", message_type=MessageType.DIGITALPOST, title=title,
                             sender=sender, recipient=Party(ORG, "CVR"), format="test", text=text)


def collect(runtime: Runtime, mailbox: MailboxKey, message: NormalizedMessage) -> None:
    ref = MessageRef(message.message_id, message.message_id)
    save_collected(runtime.store, mailbox, Fetched(ref, b"raw", "text/plain", message))


def route_all(runtime: Runtime, metrics: Metrics | None = None) -> None:
    while route_next(runtime.store, runtime.decider, metrics or Metrics(), directory=runtime.recipients):
        pass


def place_by_hand(runtime: Runtime, mailbox: MailboxKey, count: int, *, seed: int = 3,
                  kinds: list[str] | None = None, leave: int = 0) -> list[str]:
    """`count` letters of the kinds in turn, held (no model), then placed by a person except the last
    `leave` of them, which stay held; returns the ids still held."""
    rng = random.Random(seed)
    names = kinds or list(KINDS)
    for i in range(count):
        collect(runtime, mailbox, letter(i, names[i % len(names)], rng))
    route_all(runtime)
    queue = held(runtime.store)
    with runtime.store.read() as session:
        kinds = {m.id: m.provider_message_id.split("-")[1] for m in session.exec(select(Message))}
    for item in queue[: len(queue) - leave]:
        assign(runtime.store, item.id, [kinds[item.id]], actor="mette")
    return [item.id for item in queue[len(queue) - leave:]]
