"""Approval binds the key: a swapped key is held until the recipient confirms again, and an S/MIME
certificate must name the recipient's address unless an administrator vouches."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from delivery_testkit import make_smime_cert
from sqlmodel import select
from worker_testkit import ORG, collect_and_route, deliver, delivery_toml, recipients_toml, state, vouch

from core.storage.models import RecipientApproval, TraceEvent
from delivery.approval import ApprovalError, admitted_as_is, approve, confirm
from delivery.keys import KeyStatus
from delivery.recipients import RecipientsFile
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
def alice(tmp_path: Path) -> SmimeRecipient:
    return make_smime_cert(tmp_path / "alice", name="alice", email="alice@example.com")


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, alice: SmimeRecipient, tmp_path: Path
             ) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients_toml(tmp_path, alice))))
    yield runtime
    await runtime.aclose()


def _approval(rt: Runtime) -> RecipientApproval:
    with rt.store.read() as session:
        return session.exec(select(RecipientApproval).where(RecipientApproval.recipient == "reception")).one()


async def test_a_swapped_key_holds_deliveries_and_mails_a_new_confirmation_code(
        rt: Runtime, smtp: RunningSmtp, alice: SmimeRecipient, tmp_path: Path) -> None:
    # GIVEN alice approved with her own key, and one letter delivered to it
    vouch(rt)
    await collect_and_route(rt, 1)
    assert await deliver(rt) == 1 and len(smtp.handler.messages) == 1
    # WHEN someone points her key file at another valid certificate and a new letter comes
    evil = make_smime_cert(tmp_path / "evil", name="mallory", email="attacker@evil.example")
    alice.cert_path.write_bytes(evil.cert_path.read_bytes())
    (_, second) = await collect_and_route(rt, 2)
    await deliver(rt)
    # THEN nothing is encrypted to the new key: the letter is held, saying why
    sent = [m for m, _ in smtp.handler.messages]
    encrypted = [m for m in sent if b"application/pkcs7-mime" in m or b"multipart/encrypted" in m]
    assert len(encrypted) == 1
    held = state(rt, second)
    assert held.message == "held" and "key changed" in (held.event("held").reason or "")
    with rt.store.read() as session:
        (changed,) = session.exec(select(TraceEvent).where(TraceEvent.kind == "recipient_key_changed"))
    assert changed.detail["recipient"] == "reception"
    # AND alice was mailed a new confirmation code at the address on file
    (invitation,) = [m for m in sent if m not in encrypted]
    assert b"alice@example.com" in invitation
    code = re.search(rb"\n\s+([A-Za-z0-9_-]{30,})\s*\n", invitation.replace(b"\r\n", b"\n"))
    assert code is not None and _approval(rt).status == "invited"
    # AND confirming does not bind a certificate that names another address
    assert isinstance(rt.recipients, RecipientsFile)
    row = confirm(rt.store, code.group(1).decode(), directory=rt.recipients)
    assert row.status == "confirmed"
    await collect_and_route(rt, 3)
    await deliver(rt)
    assert len([m for m, _ in smtp.handler.messages if b"application/pkcs7-mime" in m]) == 1


async def test_an_smime_certificate_must_name_the_address_unless_vouched(
        rt: Runtime, alice: SmimeRecipient, tmp_path: Path) -> None:
    other = make_smime_cert(tmp_path / "other", name="alice", email="alice@private.example")
    alice.cert_path.write_bytes(other.cert_path.read_bytes())
    assert isinstance(rt.recipients, RecipientsFile)
    with rt.store.transaction() as session:
        session.add(RecipientApproval(organisation_cvr=ORG, recipient="reception", email="alice@example.com",
                                      status="confirmed"))
    with pytest.raises(ApprovalError, match="names alice@private.example"):
        approve(rt.store, rt.recipients, ORG, "reception", actor="admin")
    assert approve(rt.store, rt.recipients, ORG, "reception", actor="admin", vouch=True).status == "approved"


async def test_only_a_standing_approval_is_admitted_without_a_write(
        rt: Runtime, smtp: RunningSmtp, alice: SmimeRecipient, tmp_path: Path) -> None:
    # GIVEN alice approved with her own key, one letter delivered to it
    vouch(rt)
    await collect_and_route(rt, 1)
    assert await deliver(rt) == 1
    assert isinstance(rt.recipients, RecipientsFile)
    recipient, key = rt.recipients.get(ORG, "reception"), alice.cert_path.read_bytes()
    valid, expired = KeyStatus(True, "ok", None, 300), KeyStatus(False, "expired", None, None)
    approved_at = _approval(rt).updated_at
    with rt.store.engine.connect() as connection:
        # THEN the check before the next send only reads, for this key, valid, at this address
        assert admitted_as_is(connection, ORG, recipient, valid, key=key)
        # AND leaves every other case to `admission`: another key, one not valid today, another address,
        # someone never invited
        other = make_smime_cert(tmp_path / "other", name="alice", email="alice@example.com").cert_path.read_bytes()
        assert not admitted_as_is(connection, ORG, recipient, valid, key=other)
        assert not admitted_as_is(connection, ORG, recipient, expired, key=key)
        moved = recipient.model_copy(update={"email": "alice@elsewhere.example"})
        assert not admitted_as_is(connection, ORG, moved, valid, key=key)
        assert not admitted_as_is(connection, ORG, recipient.model_copy(update={"id": "bob"}), valid, key=key)
    assert _approval(rt).updated_at == approved_at
