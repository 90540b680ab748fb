"""Lanes send in runs: a run's attempts are charged in one commit before its first letter goes out, and
accepted sends are recorded together; a crash mid-run leaves the run's letters in doubt, re-sent once
under their own Message-IDs; a run the channel stops gives its unsent letters back uncharged."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlmodel import select
from worker_testkit import collect_and_route, deliver, delivery_toml, recipients_toml, state, vouch

from core.storage.db import Store
from core.storage.models import Delivery, utcnow
from delivery import group_commit, outbox
from delivery.channels import Outbound, Sent
from delivery.errors import RelayUnreachable
from delivery.group_commit import Delivered, GroupCommitter
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

LEASE = dt.timedelta(seconds=60)  # delivery_toml's lease_seconds


@pytest.fixture
async def rt(make_config: MakeConfig, smtp_server: ServeFactory, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    smtp: RunningSmtp = await smtp_server()
    recipients = recipients_toml(tmp_path, smime_recipient)
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients, extra="max_attempts = 3")))
    yield runtime
    await runtime.aclose()


def rows(rt: Runtime) -> list[tuple[str, int]]:
    with rt.store.read() as session:
        return sorted((r.status, r.attempts) for r in session.exec(select(Delivery)))


class Relay:
    """A channel that notes each send's token and the outbox as it stood when the send began; it hangs
    on send number `hang_at` (a process that stops there) and fails with `fault` while one is set."""

    name = "email"

    def __init__(self, rt: Runtime, *, hang_at: int = 0, fault: Exception | None = None) -> None:
        self.rt, self.hang_at, self.fault = rt, hang_at, fault
        self.tokens: list[str] = []
        self.outbox_then: list[list[tuple[str, int]]] = []
        self.hanging = asyncio.Event()

    async def send(self, item: Outbound) -> Sent:
        self.outbox_then.append(rows(self.rt))
        self.tokens.append(item.token)
        if len(self.tokens) == self.hang_at:
            self.hanging.set()
            await asyncio.Event().wait()
        if self.fault is not None:
            raise self.fault
        return Sent("250 OK", f"<postbud.{item.token}@test.example>")

    async def aclose(self) -> None:
        return None


class Groups:
    """Wraps group_commit.commit: how many changes each transaction carried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.lock = threading.Lock()
        self.real = group_commit.commit
        monkeypatch.setattr(group_commit, "commit", self)

    def __call__(self, store: Store, changes: Sequence[group_commit.Change], **kwargs: Any) -> list[group_commit.Result]:
        with self.lock:
            self.sizes.append(len(changes))
        return self.real(store, changes, **kwargs)


async def test_a_run_is_charged_in_one_commit_before_its_first_letter_goes_out(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN six routed letters and one lane
    vouch(rt)
    ids = await collect_and_route(rt, *range(6))
    groups = Groups(monkeypatch)
    monkeypatch.setattr(group_commit, "RECORD_WITHIN", 60.0)  # however slow the machine
    relay = Relay(rt)
    # WHEN a delivery run sends them
    assert await deliver(rt, channels={"email": relay}, lanes=1) == 6
    # THEN every attempt of the run was committed before the first letter went out
    assert relay.outbox_then[0] == [("sending", 1)] * 6
    # AND the six starts took one transaction, the six accepted sends one more
    assert groups.sizes == [6, 6]
    assert sorted(state(rt, mid).deliveries[0][1:] for mid in ids) == [("delivered", 1)] * 6
    for mid in ids:
        assert [k for k in state(rt, mid).kinds() if k.startswith("deliver")] == [
            "delivering", "delivery_sent", "delivered"]


async def test_a_process_that_stops_mid_run_leaves_the_run_in_doubt_and_each_letter_is_resent_once(
        rt: Runtime) -> None:
    # GIVEN six routed letters, and a process that stops during the third send of its run (two
    # accepted, not yet recorded; one under way; three charged, not yet begun)
    vouch(rt)
    ids = await collect_and_route(rt, *range(6))
    stopping = Relay(rt, hang_at=3)
    dead = asyncio.create_task(deliver(rt, channels={"email": stopping}, lanes=1))
    await asyncio.wait_for(stopping.hanging.wait(), 30)
    assert rows(rt) == [("sending", 1)] * 6
    # WHEN another instance takes the rows up once the lease has run out
    relay = Relay(rt)
    try:
        assert await deliver(rt, owner="w2", now=utcnow() + LEASE + dt.timedelta(seconds=1),
                             channels={"email": relay}) == 6
    finally:
        dead.cancel()
        await asyncio.gather(dead, return_exceptions=True)
    # THEN each letter went again under its own token (its Message-ID), once, and is delivered once
    assert sorted(relay.tokens) == sorted(set(relay.tokens)) and len(relay.tokens) == 6
    assert set(stopping.tokens) < set(relay.tokens)
    assert rows(rt) == [("delivered", 2)] * 6
    for mid in ids:
        kinds = state(rt, mid).kinds()
        assert kinds.count("delivery_resend") == 1 and kinds.count("delivery_sent") == 1
        assert kinds.count("delivered") == 1
    # AND the stopped process, cancelled late, changed nothing of the other instance's
    assert rows(rt) == [("delivered", 2)] * 6


async def test_a_channel_that_pauses_mid_run_gives_the_rest_of_the_run_back_uncharged(rt: Runtime) -> None:
    # GIVEN five routed letters, one lane, and a relay that is down
    vouch(rt)
    await collect_and_route(rt, *range(5))
    relay = Relay(rt, fault=RelayUnreachable("cannot connect to relay:25: refused"))
    # WHEN a delivery run charges the five and tries the first
    assert await deliver(rt, channels={"email": relay}, lanes=1, pauses=rt.pauses) == 0
    # THEN the relay was tried once, and no letter used an attempt
    assert len(relay.tokens) == 1 and relay.outbox_then[0] == [("sending", 1)] * 5
    assert rows(rt) == [("pending", 0)] * 5


async def test_an_accepted_send_waits_for_a_commit_only_so_long(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a letter whose send started, and no other change coming
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    [job] = outbox.claim(rt.store, "w1", now=utcnow(), ttl=LEASE, limit=50)
    committer = GroupCommitter(rt.store, owner="w1", now=utcnow(), record_within=0.01)
    started = await committer.start(job)
    assert started is not None
    # WHEN the relay accepted it
    recorded = committer.submit(Delivered(started, "250 OK", None))
    # THEN it is recorded of itself, though nothing else was committed and the run did not end
    assert await asyncio.wait_for(recorded, 30) is True
    assert state(rt, mid).message == "delivered"
