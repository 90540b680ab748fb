"""Crashes and channel faults never cost a letter: attempts count only when a send starts, a send that
may have completed is re-sent with the same Message-ID (never dead-lettered), a restarted instance takes
up its own work at once, and a relay outage pauses the channel instead of charging the letters."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from worker_testkit import (
    collect_and_route,
    deliver,
    delivery_toml,
    die_when_recording_sends,
    message_id_of,
    recipients_toml,
    state,
    vouch,
)

from core.storage.models import utcnow
from delivery import outbox
from delivery.channels import Outbound, Sent
from delivery.errors import RelayUnreachable, TlsRequired
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

LEASE = dt.timedelta(seconds=60)  # delivery_toml's lease_seconds


class PowerCut(BaseException):
    """The process dies here (a BaseException, as SystemExit: nothing may swallow it)."""


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
def config_extra(smtp: RunningSmtp, smime_recipient: SmimeRecipient, tmp_path: Path) -> str:
    return delivery_toml(smtp, recipients_toml(tmp_path, smime_recipient), extra="max_attempts = 3")


@pytest.fixture
async def rt(make_config: MakeConfig, config_extra: str) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_config(extra=config_extra))
    yield runtime
    await runtime.aclose()


async def test_a_crash_loop_before_the_send_charges_no_attempt(rt: Runtime, smtp: RunningSmtp) -> None:
    # GIVEN ten routed letters
    vouch(rt)
    ids = await collect_and_route(rt, *range(10))
    # WHEN five processes in a row claim the whole batch and die before sending any of it
    now = utcnow()
    for crash in range(5):
        assert len(outbox.claim(rt.store, f"dead-{crash}", now=now, ttl=LEASE, limit=50)) == 10
        now += LEASE + dt.timedelta(seconds=1)
    # THEN the next run sends every letter on its first attempt, and none is failed
    assert await deliver(rt, now=now) == 10
    assert sorted(state(rt, mid).deliveries[0][1:] for mid in ids) == [("delivered", 1)] * 10
    assert len(smtp.handler.messages) == 10


async def test_a_send_that_may_have_completed_is_re_sent_with_its_message_id_never_failed(
        rt: Runtime, smtp: RunningSmtp, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a letter whose every send reaches the relay, but the process dies before recording it
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)

    die_when_recording_sends(monkeypatch, PowerCut)
    now = utcnow()
    # WHEN that happens more often than the attempt limit (3)
    for _ in range(5):
        with pytest.raises(PowerCut):
            await deliver(rt, now=now)
        now += LEASE + dt.timedelta(seconds=1)
    monkeypatch.undo()
    # THEN the letter is never dead-lettered: it is settled as delivered, and the trace says why
    await deliver(rt, now=now)
    done = state(rt, mid)
    assert done.deliveries[0][1] == "delivered" and done.message == "delivered"
    assert "delivery_resend" in done.kinds() and "failed" not in done.kinds()
    assert "delivery_settled_in_doubt" in done.kinds() or "delivery_sent" in done.kinds()
    # AND every copy the relay got carries the same Message-ID
    assert len({message_id_of(m) for m, _ in smtp.handler.messages}) == 1


async def test_a_restarted_instance_resumes_its_own_in_flight_work_at_once(
        make_config: MakeConfig, config_extra: str, smtp: RunningSmtp) -> None:
    config = make_config(extra=config_extra)
    first = Runtime.create(config)
    vouch(first)
    ids = await collect_and_route(first, 1, 2, 3)
    # GIVEN an instance killed while its rows were claimed (leases 60 s from now)
    assert len(outbox.claim(first.store, first.instance, now=utcnow(), ttl=LEASE, limit=50)) == 3
    await first.aclose()
    # WHEN it starts again (same folder, so the same instance name)
    again = Runtime.create(config)
    try:
        assert again.instance == first.instance
        # THEN its first delivery run sends them, without waiting for the leases to run out
        assert await deliver(again, owner=again.instance) == 3
        assert [state(again, mid).deliveries[0][1] for mid in ids] == ["delivered"] * 3
    finally:
        await again.aclose()


async def test_a_second_process_on_the_same_folder_gets_its_own_name(make_config: MakeConfig) -> None:
    config = make_config()
    first = Runtime.create(config)
    try:
        second = Runtime.create(config)
        assert second.instance != first.instance
        await second.aclose()
    finally:
        await first.aclose()


class Relay:
    """A channel whose relay is down (or refuses TLS) until `up` is set."""

    name = "email"

    def __init__(self, fault: Exception) -> None:
        self.fault, self.up, self.tries = fault, False, 0

    async def send(self, item: Outbound) -> Sent:
        self.tries += 1
        if not self.up:
            raise self.fault
        return Sent("250 OK", f"<postbud.{item.token}@test.example>")

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("fault", [RelayUnreachable("cannot connect to relay:25: refused"),
                                   TlsRequired("TLS with relay:25 failed: certificate verify failed")])
async def test_an_hour_of_relay_outage_dead_letters_nothing(rt: Runtime, fault: Exception) -> None:
    # GIVEN five routed letters and a relay that is down (or whose certificate is broken)
    vouch(rt)
    ids = await collect_and_route(rt, *range(5))
    relay = Relay(fault)
    # WHEN the daemon keeps trying for an hour (max_attempts is 3)
    now = utcnow()
    for _ in range(13):
        await deliver(rt, now=now, channels={"email": relay}, pauses=rt.pauses)
        now += dt.timedelta(minutes=5)
    # THEN no letter used an attempt or failed, the channel shows as paused, and it was not hammered
    assert sorted(state(rt, mid).deliveries[0][1:] for mid in ids) == [("pending", 0)] * 5
    assert rt.metrics.delivery_channel_paused.labels("email")._value.get() == 1
    assert relay.tries <= 13 * 4  # at most one try per delivery lane and run
    # AND once the relay is back, every letter goes on its first attempt
    relay.up = True
    await deliver(rt, now=now + dt.timedelta(hours=1), channels={"email": relay}, pauses=rt.pauses)
    assert sorted(state(rt, mid).deliveries[0][1:] for mid in ids) == [("delivered", 1)] * 5
    assert rt.metrics.delivery_channel_paused.labels("email")._value.get() == 0
