"""Helpers for the outbox worker and approval tests: a collecting, routing, delivering runtime on a real
TLS SMTP server (a plain module: conftest.py is not importable by name)."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from email.message import EmailMessage
from pathlib import Path

import pytest
from delivery_testkit import RunningSmtp, SmimeRecipient
from sqlmodel import col, select

from delivery import group_commit
from delivery.approval import approve
from delivery.recipients import RecipientsFile
from delivery.worker import deliver_pending
from postbud.daemon import Daemon
from postbud.runtime import Runtime
from core.storage.db import Store
from core.storage.models import Delivery, Message, TraceEvent

ORG = "12345678"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def recipients_toml(folder: Path, alice: SmimeRecipient, *, extra: str = "") -> Path:
    """A recipients file whose `reception` (the test organisation's default route) is alice."""
    path = folder / "recipients.toml"
    path.write_text(
        f"""
[org.{ORG}]
default_channel = "email"

[org.{ORG}.recipients.reception]
name = "Alice Jensen"
aliases = ["Reception"]
email = "alice@example.com"
smime_cert = "{alice.cert_path}"
{extra}
""",
        encoding="utf-8",
    )
    return path


def delivery_toml(smtp: RunningSmtp, recipients: Path, *, extra: str = "") -> str:
    """The [recipients] and [delivery] tables for make_config(extra=...)."""
    return f"""
[recipients]
file = "{recipients}"
[delivery]
smtp_port = {smtp.port}
smtp_ca_file = "{smtp.ca_file}"
from_address = "postbud@test.example"
message_id_domain = "test.example"
retry_base_seconds = 10.0
retry_max_seconds = 600.0
lease_seconds = 60.0
approval_base_url = "https://postbud.test.example"
{extra}
"""


def letter(n: int = 1) -> bytes:
    """An e-mail with a PDF attachment, as dropped into the folder mailbox."""
    msg = EmailMessage()
    msg["From"] = "Skattestyrelsen <noreply@skat.dk>"
    msg["To"] = "post@test.dk"
    msg["Subject"] = f"Momsangivelse {n}"
    msg["Message-ID"] = f"<moms-{n}@skat.dk>"
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    msg.set_content("Se vedhæftede brev.")
    msg.add_attachment(PDF + str(n).encode(), maintype="application", subtype="pdf", filename=f"brev-{n}.pdf")
    return msg.as_bytes()


def drop(rt: Runtime, name: str, data: bytes) -> None:
    folder = rt.config.base_dir / "drop"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)


async def collect_and_route(rt: Runtime, *letters: int) -> list[str]:
    """Drop the letters, run collect and route once (not delivery); the new messages' ids."""
    for n in letters:
        drop(rt, f"letter-{n}.eml", letter(n))
    await rt.dispatcher.run_all_once()
    await Daemon(rt).route()
    with rt.store.read() as session:
        return [m.id for m in session.exec(select(Message).order_by(col(Message.received_at)))]


def die_when_recording_sends(monkeypatch: pytest.MonkeyPatch, death: type[BaseException]) -> None:
    """The process dies after the relay accepted a letter, before its delivery is committed."""
    real = group_commit.commit

    def commit(store: Store, changes: Sequence[group_commit.Change], **kwargs: Any) -> list[group_commit.Result]:
        if any(isinstance(change, group_commit.Delivered) for change in changes):
            raise death("after the relay accepted the letter")
        return real(store, changes, **kwargs)

    monkeypatch.setattr(group_commit, "commit", commit)


def vouch(rt: Runtime, rid: str = "reception") -> None:
    assert isinstance(rt.recipients, RecipientsFile)
    approve(rt.store, rt.recipients, ORG, rid, actor="test", vouch=True)


async def deliver(rt: Runtime, **kwargs: object) -> int:
    assert rt.recipients is None or isinstance(rt.recipients, RecipientsFile)
    return await deliver_pending(rt.store, rt.config, rt.recipients, rt.metrics,
                                 owner=str(kwargs.pop("owner", "w1")), **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class State:
    message: str
    deliveries: list[tuple[str, str, int]]  # recipient, status, attempts
    events: list[TraceEvent]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def event(self, kind: str) -> TraceEvent:
        return next(e for e in self.events if e.kind == kind)


def state(rt: Runtime, message_id: str) -> State:
    with rt.store.read() as session:
        message = session.get(Message, message_id)
        assert message is not None
        rows = session.exec(select(Delivery).where(Delivery.message_id == message_id)).all()
        events = session.exec(select(TraceEvent).where(TraceEvent.message_id == message_id)
                              .order_by(col(TraceEvent.id))).all()
        return State(message.status, [(r.recipient, r.status, r.attempts) for r in rows], list(events))


def message_id_of(raw: bytes) -> str:
    match = re.search(rb"^Message-ID: (<[^>]+>)", raw, re.MULTILINE | re.IGNORECASE)
    assert match, "no Message-ID header"
    return match.group(1).decode()


def decrypt_smime(openssl: str, raw: bytes, who: SmimeRecipient, tmp: Path) -> email.message.Message:
    """The inner message, decrypted by the real openssl as the recipient would."""
    src = tmp / "received.eml"
    src.write_bytes(raw)
    done = subprocess.run([openssl, "cms", "-decrypt", "-in", str(src), "-recip", str(who.cert_path),
                           "-inkey", str(who.key_path)], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return email.message_from_bytes(done.stdout, policy=email.policy.default)


def attachments(inner: email.message.Message) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for part in inner.walk():
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[name] = payload
    return out
