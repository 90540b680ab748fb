"""Fixtures for the rules tests: message builders, rule folders and a fake recipient directory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.domain import (
    Attention,
    Document,
    DocumentKind,
    File,
    Flags,
    MessageType,
    NormalizedMessage,
    Party,
)
from rules.engine import RuleSet
from rules.facts import MessageFacts
from rules.loader import load

ORG = "12345678"
NO_FLAGS = Flags()
SKAT = "29634750"
# Monday 2 March 2026, 10:00 in Copenhagen (09:00 UTC).
MONDAY_10 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _make_message(
    *,
    title: str = "Brev",
    sender_id: str | None = SKAT,
    sender_name: str | None = "Skattestyrelsen",
    text: str = "",
    attention: Attention | None = None,
    files: Sequence[tuple[str, str]] = (("brev.pdf", "application/pdf"),),
    flags: Flags = NO_FLAGS,
    message_type: MessageType = MessageType.DIGITALPOST,
    recipient_id: str = ORG,
) -> NormalizedMessage:
    """A small DIGITALPOST letter; every routing-relevant field can be set."""
    docs = (
        (Document(DocumentKind.MAIN, tuple(File(n, t, b"x") for n, t in files)),) if files else ()
    )
    return NormalizedMessage(
        message_id="m-1",
        message_type=message_type,
        title=title,
        sender=Party(sender_id, "CVR", sender_name),
        recipient=Party(recipient_id, "CVR", "Firma ApS"),
        format="memo-1.2",
        attention=attention,
        documents=docs,
        flags=flags,
        text=text,
    )


def _make_facts(
    message: NormalizedMessage | None = None,
    *,
    organisation: str = ORG,
    mailbox: str = "main",
    provider: str = "ngdp",
    received_at: datetime = MONDAY_10,
    **message_fields: Any,
) -> MessageFacts:
    """Facts for `message` (or one built from `message_fields`)."""
    return MessageFacts(
        message=message or _make_message(**message_fields),
        organisation=organisation,
        mailbox=mailbox,
        provider=provider,
        received_at=received_at,
    )


MakeFacts = Callable[..., MessageFacts]
MakeMessage = Callable[..., NormalizedMessage]


@pytest.fixture
def make_message() -> MakeMessage:
    """Build a NormalizedMessage: title, sender_id, sender_name, text, attention, files, flags..."""
    return _make_message


@pytest.fixture
def make_facts() -> MakeFacts:
    """Build MessageFacts from a message or from make_message keywords (org 12345678, Monday 10:00)."""
    return _make_facts


@dataclass
class FakeDirectory:
    """A RecipientDirectory held in dicts; `orgs` also makes it list its organisations."""

    recipients: dict[str, list[str]] = field(default_factory=dict)  # id -> [name, aliases...]
    group_map: dict[str, list[str]] = field(default_factory=dict)
    orgs: set[str] = field(default_factory=lambda: {ORG})

    def ids(self, organisation: str) -> set[str]:
        return set(self.recipients) if organisation in self.orgs else set()

    def groups(self, organisation: str) -> Mapping[str, Sequence[str]]:
        return self.group_map if organisation in self.orgs else {}

    def names(self, organisation: str) -> Mapping[str, Sequence[str]]:
        return self.recipients if organisation in self.orgs else {}

    def organisations(self) -> set[str]:
        return self.orgs


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory(
        recipients={
            "finance": ["Økonomi", "Bogholderiet", "Regnskab"],
            "legal": ["Jura"],
            "frontdesk": ["Reception"],
            "jens": ["Jens Hansen"],
            "jensm": ["Jens Møller"],
            "soren": ["Søren Østergaard"],
            "ceo": ["Direktionen"],
        },
        group_map={"management": ["ceo", "legal"]},
    )


WriteRules = Callable[..., Path]


@pytest.fixture
def rules_dir(tmp_path: Path) -> WriteRules:
    """Write rule files (name -> TOML, dedented) into a fresh folder and return the folder."""

    def write(**files: str) -> Path:
        folder = tmp_path / "rules"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / f"{name}.toml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return folder

    return write


LoadRules = Callable[..., RuleSet]


@pytest.fixture
def ruleset(rules_dir: WriteRules) -> LoadRules:
    """Load one rule file's TOML (dedented) as a RuleSet, optionally with a recipient directory."""

    def build(text: str, recipients: Any = None) -> RuleSet:
        return load(rules_dir(rules=text), recipients)

    return build
