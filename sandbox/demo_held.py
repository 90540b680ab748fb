"""Held letters for the console demo: a few legal notifications dropped (once) into the example's drop
folder as MeMo, which the example guard rule holds for a person, so `make run`'s queue has work in it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

from connectors.memo.writer import build_memo
from core.config import Config, OrganisationConfig
from core.domain import Attention, Document, DocumentKind, File, Flags, MessageType, NormalizedMessage, Party

# (sender CVR, sender, title, text): authorities' legal notifications, as the guard rule holds them.
LETTERS = (
    ("29188548", "Skattestyrelsen", "Afgørelse om skønsmæssig ansættelse af moms",
     "Skattestyrelsen har truffet afgørelse om skønsmæssig ansættelse af momstilsvaret for 2. kvartal. "
     "Afgørelsen anses for meddelt, når den er kommet frem. Klagefristen er tre måneder."),
    ("55568510", "Arbejdstilsynet", "Forkyndelse af påbud om arbejdspladsvurdering",
     "Arbejdstilsynet giver virksomheden påbud om at udarbejde en skriftlig arbejdspladsvurdering. "
     "Påbuddet skal efterkommes inden den angivne frist."),
    ("10213231", "Erhvervsstyrelsen", "Varsel om tvangsopløsning",
     "Erhvervsstyrelsen varsler, at selskabet kan blive sendt til tvangsopløsning, da årsrapporten ikke "
     "er modtaget. Indsend årsrapporten inden fire uger."),
)
MARKER = "demo-held-written"


def pdf_of(title: str, text: str) -> bytes:
    doc = FPDF()
    doc.add_page()
    doc.set_font("helvetica", "B", 15)
    doc.multi_cell(0, 8, title.encode("latin-1", "replace").decode("latin-1"))
    doc.ln(4)
    doc.set_font("helvetica", size=11)
    doc.multi_cell(0, 6, text.encode("latin-1", "replace").decode("latin-1"))
    return bytes(doc.output())


def drop_folders(config: Config) -> Iterator[tuple[OrganisationConfig, Path]]:
    """Each organisation's first drop folder (one per organisation is enough for a demo)."""
    for org in config.organisations:
        for mailbox in org.mailboxes:
            path = mailbox.connector_settings.get("path")
            if mailbox.type != "folder" or not isinstance(path, str):
                continue
            folder = Path(path) if Path(path).is_absolute() else config.base_dir / path
            folder.mkdir(parents=True, exist_ok=True)
            yield org, folder
            break


def demo_letter(org: OrganisationConfig, key: str, sender: Party, title: str, text: str, *, flags: Flags = Flags(),
                attention: Attention | None = None) -> NormalizedMessage:
    """A MeMo letter with one PDF; its id derives from `key`, so the same letter has the same id everywhere."""
    # MeMo wants a version-4 UUID.
    uid = uuid.UUID(bytes=uuid.uuid5(uuid.NAMESPACE_URL, f"postbud-demo/{org.cvr}/{key}").bytes, version=4)
    return NormalizedMessage(
        message_id=str(uid), message_type=MessageType.DIGITALPOST, title=title, sender=sender,
        recipient=Party(id=org.cvr, id_type="CVR", name=org.name), format="memo-1.2", attention=attention,
        documents=(Document(DocumentKind.MAIN, (File("brev.pdf", "application/pdf", pdf_of(title, text)),)),),
        sent_at=datetime.now(timezone.utc), flags=flags, text=text)


def write_letter(folder: Path, name: str, message: NormalizedMessage) -> None:
    target = folder / name
    temporary = target.with_suffix(".tmp")
    temporary.write_bytes(build_memo(message, version="1.2"))
    # Whole files only (the folder watcher may be polling), and dated back: a file that appears whole
    # needs no settle time, so the first poll (of `run --once` too) takes it.
    back = time.time() - 60
    os.utime(temporary, (back, back))
    temporary.rename(target)


def drop_held_letters(config: Config, sandbox_folder: Path) -> int:
    """Write the demo's legal notifications into each organisation's drop folder, once per sandbox folder
    (a marker file remembers it, as the drop folder deletes what it collected). Returns how many."""
    if not config.console.enabled or (sandbox_folder / MARKER).exists():
        return 0
    written = 0
    for org, folder in drop_folders(config):
        for i, (cvr, sender, title, text) in enumerate(LETTERS):
            message = demo_letter(org, str(i), Party(id=cvr, id_type="CVR", name=sender), title, text,
                                  flags=Flags(legal_notification=True))
            write_letter(folder, f"demo-held-{i + 1}.xml", message)
            written += 1
    sandbox_folder.mkdir(parents=True, exist_ok=True)
    (sandbox_folder / MARKER).write_text("the demo's held letters were dropped once\n", encoding="utf-8")
    return written
