"""Never sent unencrypted or to the wrong person: an unapproved, revoked, key-expired or unlisted recipient
gets nothing; the rows are held and the message goes back to held for re-routing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from delivery_testkit import make_smime_cert
from worker_testkit import (
    ORG,
    collect_and_route,
    deliver,
    delivery_toml,
    recipients_toml,
    state,
    vouch,
)

from delivery.approval import revoke
from postbud.runtime import Runtime
from core.storage.models import utcnow

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    # bob's certificate runs out in 20 days; carol is listed without any key
    bob = make_smime_cert(tmp_path / "bob", name="bob", email="bob@example.com", days=20)
    extra = f"""
[org.{ORG}.recipients.bob]
name = "Bob"
email = "bob@example.com"
smime_cert = "{bob.cert_path}"

[org.{ORG}.recipients.carol]
name = "Carol"
email = "carol@example.com"
"""
    recipients = recipients_toml(tmp_path, smime_recipient, extra=extra)
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients)))
    yield runtime
    await runtime.aclose()


async def test_unapproved_recipient_receives_nothing_and_the_message_is_held(
        rt: Runtime, smtp: RunningSmtp) -> None:
    (mid,) = await collect_and_route(rt, 1)  # routed to reception, never invited
    assert await deliver(rt) == 1
    held = state(rt, mid)
    assert smtp.handler.messages == [] and smtp.handler.mails == []
    assert held.message == "held"
    assert held.deliveries == [("reception", "held", 0)]  # never sent: no attempt charged
    assert "not approved" in (held.event("held").reason or "")
    assert rt.metrics.deliveries.labels("email", "held")._value.get() == 1
    assert await deliver(rt, now=utcnow() + dt.timedelta(days=1)) == 0  # held rows are not retried


async def test_revoked_recipient_receives_nothing_and_pending_deliveries_are_held(
        rt: Runtime, smtp: RunningSmtp) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    held = revoke(rt.store, ORG, "reception", actor="admin")
    assert held == [mid]
    assert state(rt, mid).message == "held"
    assert "revoked" in (state(rt, mid).event("held").reason or "")
    assert await deliver(rt) == 0
    # a message routed after the revocation is held by the worker's own check
    (_, later) = await collect_and_route(rt, 2)
    assert await deliver(rt) == 1
    assert state(rt, later).message == "held"
    assert "revoked" in (state(rt, later).event("held").reason or "")
    assert smtp.handler.messages == []


async def test_expired_key_receives_nothing(rt: Runtime, smtp: RunningSmtp) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    # the certificate is valid for a year; the worker checks it again before every send
    assert await deliver(rt, now=utcnow() + dt.timedelta(days=400)) == 1
    held = state(rt, mid)
    assert held.message == "held"
    assert "expired" in (held.event("held").reason or "")
    assert smtp.handler.messages == []


async def test_recipient_without_key_material_cannot_be_approved_or_sent_to(
        rt: Runtime, smtp: RunningSmtp) -> None:
    from delivery.approval import ApprovalError

    with pytest.raises(ApprovalError, match="no key material"):
        vouch(rt, "carol")


async def test_key_expiring_soon_is_warned_about_and_measured(
        rt: Runtime, smtp: RunningSmtp, caplog: pytest.LogCaptureFixture) -> None:
    from sqlmodel import select

    from core.storage.models import Delivery

    vouch(rt, "bob")
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    with rt.store.transaction() as session:  # route it to bob as well
        session.add(Delivery(message_id=mid, organisation_cvr=ORG, recipient="bob", channel="email",
                             idempotency_key=f"{mid}:bob:email"))
    assert await deliver(rt) == 2
    assert state(rt, mid).message == "delivered"
    assert len(smtp.handler.messages) == 2
    assert rt.metrics.recipient_key_days_left.labels("email")._value.get() == 19
    warned = [r for r in caplog.records if r.name == "delivery.prepare" and "expires in" in r.getMessage()]
    assert warned and all("bob" in r.getMessage() for r in warned)
    with rt.store.read() as session:
        assert {r.recipient for r in session.exec(select(Delivery))} == {"reception", "bob"}


async def test_recipient_removed_from_the_file_receives_nothing(
        rt: Runtime, smtp: RunningSmtp) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    from core.storage.models import Delivery

    with rt.store.transaction() as session:
        session.add(Delivery(message_id=mid, organisation_cvr=ORG, recipient="mallory", channel="email",
                             idempotency_key=f"{mid}:mallory:email"))
    await deliver(rt)
    after = state(rt, mid)
    assert sorted(after.deliveries) == [("mallory", "held", 0), ("reception", "delivered", 1)]
    assert after.message == "held"
    assert len(smtp.handler.messages) == 1


async def test_held_message_reassigned_after_reapproval_is_delivered(rt: Runtime, smtp: RunningSmtp) -> None:
    from router.queue import assign

    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    revoke(rt.store, ORG, "reception", actor="admin")
    assert state(rt, mid).deliveries == [("reception", "held", 0)]
    # WHEN the recipient is approved again and a person places the held message with them
    vouch(rt)
    assign(rt.store, mid, ["reception"], actor="admin")
    # THEN the held outbox row is reused (no duplicate row) and delivered
    assert state(rt, mid).deliveries == [("reception", "pending", 0)]
    assert await deliver(rt) == 1
    assert state(rt, mid).message == "delivered"
    assert len(smtp.handler.messages) == 1


async def test_message_held_for_one_recipient_and_placed_elsewhere_is_delivered(
        rt: Runtime, smtp: RunningSmtp) -> None:
    from core.storage.models import Delivery
    from router.queue import assign

    vouch(rt)
    vouch(rt, "bob")
    (mid,) = await collect_and_route(rt, 1)
    with rt.store.transaction() as session:  # also routed to carol, who has no key
        session.add(Delivery(message_id=mid, organisation_cvr=ORG, recipient="carol", channel="email",
                             idempotency_key=f"{mid}:carol:email"))
    await deliver(rt)
    assert state(rt, mid).message == "held"
    # WHEN a person places carol's copy with bob
    assign(rt.store, mid, ["bob"], actor="admin")
    assert await deliver(rt) == 1
    # THEN carol's held row is history and the message is delivered
    done = state(rt, mid)
    assert sorted(done.deliveries) == [("bob", "delivered", 1), ("carol", "held", 0),
                                       ("reception", "delivered", 1)]
    assert done.message == "delivered"
