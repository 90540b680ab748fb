"""Synthetic, deterministic training mail shared by the suggester tests (helpers, no tests)."""

from __future__ import annotations

import random

from router.suggester import Example

TOPICS: dict[str, tuple[str, list[str], str]] = {
    "bogholderi@firma.dk": (
        "Skattestyrelsen",
        ["moms", "momsangivelse", "skat", "afgift", "regnskab", "faktura", "betaling"],
        "skat.dk",
    ),
    "hr@firma.dk": (
        "Arbejdstilsynet",
        ["ansat", "arbejdsmiljø", "sygedagpenge", "ferie", "løn", "overenskomst", "tilsyn"],
        "at.dk",
    ),
    "jura@firma.dk": (
        "Erhvervsstyrelsen",
        ["selskab", "vedtægter", "bestyrelse", "registrering", "ejerbog", "revisor", "kapital"],
        "erst.dk",
    ),
}
FILLER = [
    "vi",
    "skriver",
    "til",
    "dig",
    "fordi",
    "der",
    "er",
    "nyt",
    "om",
    "din",
    "sag",
    "venlig",
    "hilsen",
]


def make_examples(
    per_class: int, *, seed: int = 7, classes: list[str] | None = None
) -> list[Example]:
    """`per_class` examples for each recipient, each with topic words buried in filler."""
    rng = random.Random(seed)
    examples = []
    for label in classes or list(TOPICS):
        sender, words, domain = TOPICS[label]
        for n in range(per_class):
            topic = rng.sample(words, 3)
            body = " ".join(rng.sample(FILLER, 8) + topic + rng.sample(words, 2))
            examples.append(
                Example(
                    title=f"{topic[0].capitalize()} {n}",
                    sender_name=sender,
                    sender_id=f"post@{domain}",
                    body=body,
                    provider="ngdp",
                    cvr="12345678",
                    attachment_names=(f"{topic[1]}.pdf",),
                    label=label,
                )
            )
    return examples


def clear_example(label: str) -> Example:
    sender, words, domain = TOPICS[label]
    return Example(
        title=words[0].capitalize(),
        sender_name=sender,
        sender_id=f"post@{domain}",
        body=" ".join(words),
        provider="ngdp",
        cvr="12345678",
    )


def ambiguous_example() -> Example:
    """Half one recipient's vocabulary, half another's, from an unknown sender."""
    first, second = TOPICS["bogholderi@firma.dk"][1], TOPICS["hr@firma.dk"][1]
    return Example(
        title="Brev", sender_name="Ukendt", body=" ".join(first[:3] + second[:3] + FILLER[:4])
    )
