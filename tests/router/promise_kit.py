"""Letters of five kinds for one organisation, and a way to place them by hand (helpers, no tests)."""

from __future__ import annotations

import random

from collector.ledger import MailboxKey, save_collected
from connectors.base import Fetched, MessageRef
from core.domain import MessageType, NormalizedMessage, Party
from core.metrics import Metrics
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
INSURANCE = (Party("24256790", "CVR", "Tryg Forsikring A/S"),
             ["Fornyelse af erhvervsforsikring {n}", "Skadesanmeldelse modtaget {n}", "Ny police {n}"],
             ["forsikring", "police", "dækning", "skade", "præmie", "selvrisiko", "anmeldelse"])


def letter(i: int, kind: str, rng: random.Random) -> NormalizedMessage:
    sender, titles, words = INSURANCE if kind == "insurance" else KINDS[kind]
    title = rng.choice(titles).format(n=rng.randint(1, 40))
    text = (f"Kære virksomhed. {' '.join(rng.sample(words, 4))}. Vedrørende sag {rng.randint(1000, 9999)}: "
            f"{' '.join(rng.sample(words, 3))}. Med venlig hilsen")
    return NormalizedMessage(message_id=f"m-{kind}-{i}", message_type=MessageType.DIGITALPOST, title=title,
                             sender=sender, recipient=Party(ORG, "CVR"), format="test", text=text)


def collect(runtime: Runtime, mailbox: MailboxKey, message: NormalizedMessage) -> None:
    ref = MessageRef(message.message_id, message.message_id)
    save_collected(runtime.store, mailbox, Fetched(ref, b"raw", "text/plain", message))


def route_all(runtime: Runtime, metrics: Metrics | None = None) -> None:
    while route_next(runtime.store, runtime.decider, metrics or Metrics(), directory=runtime.recipients):
        pass


def kind_of(title: str) -> str:
    for kind, (_, titles, _) in KINDS.items():
        if any(title.startswith(t.split("{")[0]) for t in titles):
            return kind
    return "insurance"


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
    for item in queue[: len(queue) - leave]:
        assign(runtime.store, item.id, [kind_of(item.title)], actor="mette")
    return [item.id for item in queue[len(queue) - leave:]]
