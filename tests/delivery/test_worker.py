"""The outbox worker end to end against a real aiosmtpd over STARTTLS: delivered, retried, dead-lettered,
resent at most once with the same Message-ID after a crash, never twice by two instances."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import select
from worker_testkit import (
    ORG,
    attachments,
    collect_and_route,
    decrypt_smime,
    deliver,
    delivery_toml,
    die_when_recording_sends,
    message_id_of,
    recipients_toml,
    state,
    vouch,
)

from delivery.channels import Outbound, Sent
from delivery.recipients import load_recipients
from delivery.worker import deliver_pending
from core import codec
from core.metrics import Metrics
from postbud.runtime import Runtime, open_store
from core.storage.db import Store
from core.storage.models import Attachment, Delivery, Message, utcnow

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

LATER = dt.timedelta(hours=2)  # past any back-off and lease of these configs


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    recipients = recipients_toml(tmp_path, smime_recipient)
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients, extra="max_attempts = 3")))
    yield runtime
    await runtime.aclose()


async def test_routed_message_is_delivered_encrypted_and_decrypts_to_the_originals(
        rt: Runtime, smtp: RunningSmtp, smime_recipient: SmimeRecipient, openssl: str,
        tmp_path: Path) -> None:
    # GIVEN an approved recipient and a collected, routed letter with a PDF
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    assert state(rt, mid).message == "routed"
    # WHEN the worker runs
    assert await deliver(rt) == 1
    # THEN the server got one encrypted message over TLS, and the recipient reads the originals
    [(raw, over_tls)] = smtp.handler.messages
    assert over_tls
    assert b"application/pkcs7-mime" in raw and b"%PDF" not in raw
    inner = decrypt_smime(openssl, raw, smime_recipient, tmp_path)
    with rt.store.read() as session:
        row = session.get(Message, mid)
        assert row is not None
        original = codec.unseal(rt.store.vault, row, list(session.exec(
            select(Attachment).where(Attachment.message_id == mid))))
    assert attachments(inner) == {f.name: f.content for f in original.files()}
    assert attachments(inner)["brev-1.pdf"].startswith(b"%PDF-1.4")
    after = state(rt, mid)
    assert after.message == "delivered"
    assert after.deliveries == [("reception", "delivered", 1)]
    assert after.kinds()[-3:] == ["delivering", "delivery_sent", "delivered"]
    sent = after.event("delivery_sent")
    assert "queued as test" in (sent.reason or "")
    assert sent.detail["message_id"] == message_id_of(raw) == inner["Message-ID"]
    assert rt.metrics.deliveries.labels("email", "delivered")._value.get() == 1
    assert rt.metrics.registry.get_sample_value("postbud_delivery_attempt_seconds_count", {"channel": "email"}) == 1
    # AND nothing is left to do
    assert await deliver(rt) == 0


async def test_4xx_is_retried_with_backoff_then_delivered(rt: Runtime, smtp: RunningSmtp) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    smtp.handler.data_reply = "451 4.3.0 try again later"
    now = utcnow()
    assert await deliver(rt, now=now) == 1
    first = state(rt, mid)
    assert first.deliveries == [("reception", "pending", 1)]
    assert "451" in (first.event("delivery_retry").reason or "")
    with rt.store.read() as session:
        (row,) = session.exec(select(Delivery)).all()
    # equal jitter: between half and all of the first step (10 s)
    assert now + dt.timedelta(seconds=5) <= row.next_attempt_at <= now + dt.timedelta(seconds=10)
    assert await deliver(rt, now=now) == 0  # not due yet: the back-off lives in the row
    smtp.handler.data_reply = None
    assert await deliver(rt, now=now + LATER) == 1
    done = state(rt, mid)
    assert done.message == "delivered" and done.deliveries == [("reception", "delivered", 2)]
    assert len(smtp.handler.messages) == 1


async def test_5xx_is_dead_lettered_with_the_reply_in_the_trace(rt: Runtime, smtp: RunningSmtp) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    smtp.handler.data_reply = "554 5.7.1 rejected by policy"
    assert await deliver(rt) == 1
    dead = state(rt, mid)
    assert dead.message == "failed"
    assert dead.deliveries == [("reception", "failed", 1)]
    failed = dead.event("delivery_failed")
    assert "554" in (failed.reason or "") and "rejected by policy" in (failed.reason or "")
    assert dead.event("failed").to_status == "failed"
    assert await deliver(rt, now=utcnow() + LATER) == 0  # a dead letter is not retried


async def test_refused_recipient_is_dead_lettered(rt: Runtime, smtp: RunningSmtp) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    smtp.handler.rcpt_reply = "550 5.1.1 no such user"
    await deliver(rt)
    assert state(rt, mid).deliveries == [("reception", "failed", 1)]
    assert "no such user" in (state(rt, mid).event("delivery_failed").reason or "")
    assert smtp.handler.messages == []


async def test_max_attempts_sends_a_transient_failure_to_the_dead_letter(
        rt: Runtime, smtp: RunningSmtp) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    smtp.handler.data_reply = "421 4.4.2 busy"
    now = utcnow()
    for i in range(3):  # max_attempts = 3
        assert await deliver(rt, now=now + i * LATER) == 1
    final = state(rt, mid)
    assert final.deliveries == [("reception", "failed", 3)]
    assert final.message == "failed"
    assert "gave up after 3 attempts" in (final.event("delivery_failed").reason or "")


class Killed(BaseException):
    """The process dies (SIGKILL-like): nothing after this point runs, no except clause catches it."""


async def test_kill_between_send_and_commit_resends_the_same_message_id_once(
        rt: Runtime, smtp: RunningSmtp, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the process dies after the server accepted the message, before the commit
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)

    with monkeypatch.context() as m:
        die_when_recording_sends(m, Killed)
        with pytest.raises(Killed):
            await deliver(rt)
    assert len(smtp.handler.messages) == 1
    assert state(rt, mid).deliveries == [("reception", "sending", 1)]
    # WHEN another run starts: the dead worker's lease still holds, so nothing is sent yet
    assert await deliver(rt, owner="w2") == 0
    # ... and once the lease has run out the row is sent again
    assert await deliver(rt, owner="w2", now=utcnow() + LATER) == 1
    # THEN the receiver got at most one duplicate, with the same Message-ID; the row is delivered once
    first, second = (raw for raw, _ in smtp.handler.messages)
    assert message_id_of(first) == message_id_of(second)
    done = state(rt, mid)
    assert done.message == "delivered"
    assert done.deliveries == [("reception", "delivered", 2)]
    assert done.kinds().count("delivery_sent") == 1
    assert done.kinds().count("delivered") == 1


async def test_two_instances_never_send_one_row_twice(
        rt: Runtime, smtp: RunningSmtp, database_url: str) -> None:
    # GIVEN 12 routed messages and two instances, each with its own engine (on PostgreSQL: two
    # connections pools racing for the same rows with SKIP LOCKED)
    vouch(rt)
    ids = await collect_and_route(rt, *range(1, 13))
    assert len(ids) == 12
    other = open_store(rt.config, upgrade=False)
    directory = load_recipients(rt.config.recipients.file)  # type: ignore[arg-type]

    async def worker(store: Store, owner: str) -> int:
        total = 0
        while n := await deliver_pending(store, rt.config, directory, Metrics(), owner=owner, limit=3):
            total += n
        return total

    try:
        a, b = await asyncio.gather(worker(rt.store, "instance-a"), worker(other, "instance-b"))
    finally:
        other.dispose()
    # THEN every row was sent exactly once, by one of them
    assert a + b == 12
    received = [message_id_of(raw) for raw, _ in smtp.handler.messages]
    assert len(received) == len(set(received)) == 12
    with rt.store.read() as session:
        rows = session.exec(select(Delivery)).all()
    assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}
    assert all(state(rt, m).message == "delivered" for m in ids)
    assert ORG == rows[0].organisation_cvr


class Stuck:
    """A channel whose send never returns (a hung server), to interrupt the worker mid-send."""

    name = "email"

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def send(self, item: Outbound) -> Sent:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


async def test_shutdown_mid_batch_gives_back_the_rows_not_started(rt: Runtime) -> None:
    vouch(rt)
    await collect_and_route(rt, 1, 2, 3)
    stuck = Stuck()
    task = asyncio.create_task(deliver(rt, channels={"email": stuck}, lanes=1))
    await asyncio.wait_for(stuck.started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with rt.store.read() as session:
        rows = sorted((r.status, r.attempts, r.lease_owner) for r in session.exec(select(Delivery)))
    # the one in flight stays leased (it may have reached the server); the others are free again
    assert rows == [("pending", 0, None), ("pending", 0, None), ("sending", 1, "w1")]


class Flaky:
    """A channel with a bug that hits one recipient's message only."""

    name = "email"

    def __init__(self, bad_title: str) -> None:
        self.bad_title = bad_title
        self.sent: list[str] = []

    async def send(self, item: Outbound) -> Sent:
        if item.message.title == self.bad_title:
            raise RuntimeError("bug")
        self.sent.append(item.message.title)
        return Sent("250 ok", f"<{item.token}@test>")

    async def aclose(self) -> None:
        return None


async def test_an_unexpected_error_costs_one_row_an_attempt_not_the_batch(rt: Runtime) -> None:
    vouch(rt)
    first, second = await collect_and_route(rt, 1, 2)
    flaky = Flaky("Momsangivelse 1")
    assert await deliver(rt, channels={"email": flaky}) == 2
    assert flaky.sent == ["Momsangivelse 2"]
    assert state(rt, second).message == "delivered"
    broken = state(rt, first)
    assert broken.deliveries == [("reception", "pending", 1)]
    assert broken.event("delivery_retry").reason == "internal error: RuntimeError"
