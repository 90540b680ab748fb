"""The collector's dispatcher against scripted providers: faults, leases, restarts, several instances."""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from collector import leases, poll
from collector.dispatch import Dispatcher, MailboxRuntime, utcnow
from collector.ledger import sync_mailboxes
from connectors.base import AuthError, TransientError
from core.config import CollectorSettings, Config
from core.configfile import load_config
from core.metrics import Metrics
from core.notify import TraceNotifier
from postbud.runtime import Runtime, open_store
from core.storage.db import Store
from core.storage.models import Mailbox, MailboxStatus, Message, TraceEvent
from tests.collector.fakes import ScriptedConnector

FAST = CollectorSettings(lease_seconds=3, retries=3, breaker_threshold=2, breaker_cooldown_seconds=60)


def write_config(folder: Path, database_url: str, mailboxes: int, token: str = "one") -> Config:
    boxes = "".join(
        f'  [[organisations.mailboxes]]\n  name = "mb{i}"\n  type = "folder"\n  path = "in{i}"\n'
        f'  max_files_per_poll = {sum(map(ord, token))}\n'
        for i in range(mailboxes)
    )
    path = folder / "postbud.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n[[organisations]]\ncvr = "12345678"\nname = "T"\n'
        f'administrators = ["it@t.dk"]\n{boxes}'
    )
    return load_config(path)


@pytest.fixture
def store(tmp_path: Path, database_url: str) -> Iterator[Store]:
    config = write_config(tmp_path, database_url, 4)
    store = open_store(config)
    sync_mailboxes(store, config)
    yield store
    store.dispose()


def dispatcher(store: Store, owner: str = "a", settings: CollectorSettings = FAST) -> Dispatcher:
    return Dispatcher(store, Metrics(), settings, TraceNotifier(store, {"12345678": ("it@t.dk",)}),
                      owner=owner, jitter=0)


def attach(d: Dispatcher, store: Store, connectors: list[ScriptedConnector], interval: float = 60) -> None:
    keys = sync_mailboxes_keys(store)
    d.mailboxes = {
        key.id: MailboxRuntime(key, connector, interval, "fp")
        for key, connector in zip(keys, connectors, strict=False)
    }


def sync_mailboxes_keys(store: Store):  # type: ignore[no-untyped-def]
    from collector.ledger import MailboxKey

    with store.read() as session:
        rows = session.exec(select(Mailbox).order_by(Mailbox.id)).all()  # type: ignore[arg-type]
    return [MailboxKey(r.id, "12345678", r.name, r.provider) for r in rows if r.id is not None]


def stored_keys(store: Store) -> list[str]:
    with store.read() as session:
        return sorted(m.provider_message_id for m in session.exec(select(Message)))


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def no_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(poll, "sleep", no_sleep)
    return recorded


async def test_retry_after_is_honoured(store: Store, waits: list[float]) -> None:
    connector = ScriptedConnector([["m1"]])
    connector.faults["list"].append(TransientError("429", retry_after=7.5))
    d = dispatcher(store)
    attach(d, store, [connector])
    await d.run_all_once()
    assert waits == [7.5]
    assert stored_keys(store) == ["m1"]


async def test_backoff_grows_then_the_poll_gives_up_until_next_time(store: Store, waits: list[float]) -> None:
    connector = ScriptedConnector([["m1"]])
    connector.faults["list"].extend(TransientError("503") for _ in range(3))
    d = dispatcher(store)
    attach(d, store, [connector], interval=60)
    await d.run_all_once()
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 2.0
    assert stored_keys(store) == []
    with store.read() as session:
        row = session.exec(select(Mailbox).order_by(Mailbox.id)).first()  # type: ignore[arg-type]
    assert row is not None and row.consecutive_failures == 1
    assert row.next_poll_at is not None and row.next_poll_at > utcnow() + timedelta(seconds=50)
    assert row.lease_owner is None


async def test_circuit_breaker_pauses_only_the_failing_mailbox(store: Store, waits: list[float]) -> None:
    connectors = [ScriptedConnector([["x"]], ident=f"b{i}") for i in range(4)]
    connectors[0].faults["list"].extend(TransientError("down") for _ in range(30))
    d = dispatcher(store)
    attach(d, store, connectors)
    for _ in range(3):  # threshold 2: the second failure in a row opens mailbox 0's circuit
        await d.dispatch(all_due=True)
        await d.wait_idle()
    with store.read() as session:
        rows = session.exec(select(Mailbox).order_by(Mailbox.id)).all()  # type: ignore[arg-type]
    assert [r.status for r in rows] == ["paused", "active", "active", "active"]
    assert rows[0].consecutive_failures == 3 and rows[0].last_error == "down"
    # The pause doubles per failure from the cooldown (60 s, then 120 s), and is on the row for all to see.
    assert rows[0].next_poll_at is not None and rows[0].next_poll_at > utcnow() + timedelta(seconds=110)
    assert sorted(c.ident for c in connectors if c.acked) == ["b1", "b2", "b3"]  # the others went on


async def test_auth_failure_stops_polling_notifies_and_resumes_when_credentials_change(
    tmp_path: Path, database_url: str, waits: list[float]
) -> None:
    config = write_config(tmp_path, database_url, 1, token="old")
    runtime = Runtime.create(config)
    try:
        (mb,) = runtime.dispatcher.mailboxes.values()
        failing = ScriptedConnector([["m1"]])
        failing.faults["list"].append(AuthError("password expired"))
        runtime.dispatcher.mailboxes[mb.key.id] = MailboxRuntime(mb.key, failing, 60, mb.fingerprint)
        await runtime.dispatcher.run_all_once()
        with runtime.store.read() as session:
            row = session.get(Mailbox, mb.key.id)
            notes = session.exec(select(TraceEvent).where(TraceEvent.kind == "notification")).all()
        assert row is not None and row.status == MailboxStatus.NEEDS_REAUTH
        assert len(notes) == 1 and notes[0].detail["to"] == ["it@t.dk"]
        assert await runtime.dispatcher.dispatch(all_due=True) == []  # stopped

        await runtime.reconfigure(write_config(tmp_path, database_url, 1, token="old"))
        assert await runtime.dispatcher.dispatch(all_due=True) == []  # same credentials: still stopped

        await runtime.reconfigure(write_config(tmp_path, database_url, 1, token="new"))
        claimed = await runtime.dispatcher.dispatch(all_due=True)
        assert claimed == [mb.key.id]
        await runtime.dispatcher.wait_idle()
        with runtime.store.read() as session:
            row = session.get(Mailbox, mb.key.id)
        assert row is not None and row.status == MailboxStatus.ACTIVE
    finally:
        await runtime.aclose()


async def test_poison_message_is_quarantined_and_the_rest_collected(store: Store, waits: list[float]) -> None:
    connector = ScriptedConnector([["m1", "bad", "m3"]])
    connector.poison.add("bad")
    d = dispatcher(store)
    attach(d, store, [connector])
    await d.run_all_once()
    with store.read() as session:
        statuses = {m.provider_message_id: m.status for m in session.exec(select(Message))}
    assert statuses == {"m1": "collected", "bad": "quarantined", "m3": "collected"}
    assert sorted(connector.acked) == ["bad", "m1", "m3"]


async def test_a_mailbox_waiting_for_delivery_acknowledges_only_delivered_messages(
        store: Store, waits: list[float]) -> None:
    connector = ScriptedConnector([["m1", "bad"]])
    connector.poison.add("bad")
    d = dispatcher(store)
    attach(d, store, [connector])
    d.mailboxes = {i: MailboxRuntime(dataclasses.replace(mb.key, ack_after_delivery=True), mb.connector,
                                     mb.interval, mb.fingerprint) for i, mb in d.mailboxes.items()}
    await d.run_all_once()
    assert connector.acked == ["bad"]  # quarantined: its evidence is kept, the provider may let go
    await d.run_all_once()
    assert connector.acked == ["bad"] and connector.fetched == ["m1"]  # listed again, not fetched again
    with store.transaction() as session:
        message = session.exec(select(Message).where(Message.provider_message_id == "m1")).one()
        message.status = "delivered"
    await d.run_all_once()
    assert connector.acked == ["bad", "m1"]


async def test_restart_mid_page_loses_and_duplicates_nothing(store: Store, waits: list[float]) -> None:
    pages = [["a1", "a2"], ["b1", "b2"], ["c1"]]
    first = ScriptedConnector(pages)
    original_fetch = first.fetch
    never = asyncio.Event()

    async def hang_on_b2(ref):  # type: ignore[no-untyped-def]
        if ref.key == "b2":
            await never.wait()  # the process dies here, mid-page
        return await original_fetch(ref)

    first.fetch = hang_on_b2  # type: ignore[method-assign]
    d = dispatcher(store)
    attach(d, store, [first])
    await d.dispatch(all_due=True)
    for _ in range(200):
        if len(stored_keys(store)) == 3:
            break
        await asyncio.sleep(0.01)
    for task in list(d.running.values()):
        task.cancel()
    await asyncio.sleep(0.05)
    assert stored_keys(store) == ["a1", "a2", "b1"]

    # The restart: a new process; the provider still lists what was never acknowledged.
    second = ScriptedConnector(pages)
    second.acked = list(first.acked)
    d2 = dispatcher(store, owner="a2")
    attach(d2, store, [second])
    await asyncio.to_thread(leases.release_all, store, "a")
    await d2.run_all_once()
    assert stored_keys(store) == ["a1", "a2", "b1", "b2", "c1"]
    assert "a1" not in second.fetched and "b1" not in second.fetched


@pytest.mark.postgres
async def test_two_instances_never_poll_one_mailbox_at_once_and_take_over_a_dead_ones(
    tmp_path: Path, pg_url: str, waits: list[float]
) -> None:
    config = write_config(tmp_path, pg_url, 12)
    stores = [open_store(config), open_store(config)]
    sync_mailboxes(stores[0], config)
    ScriptedConnector.overlaps.clear()
    instances = []
    for n, store in enumerate(stores):
        d = dispatcher(store, owner=f"i{n}", settings=CollectorSettings(lease_seconds=1.5, max_concurrent_polls=4))
        connectors = [ScriptedConnector([[f"{n}-{i}"]], ident=f"mb{i}") for i in range(12)]
        for connector in connectors:
            connector.delay = 0.05
        attach(d, store, connectors, interval=0.01)
        instances.append(d)
    try:
        polled_by: dict[int, set[str]] = {}
        for _ in range(30):
            for d in instances:
                for mailbox_id in await d.dispatch():
                    polled_by.setdefault(mailbox_id, set()).add(d.owner)
            await asyncio.sleep(0.02)
        for d in instances:
            await d.wait_idle()
        assert ScriptedConnector.overlaps == []
        assert len(polled_by) == 12
        assert any(len(owners) == 2 for owners in polled_by.values())  # the work really is shared

        # Instance i0 dies holding a lease: nothing renews it, nothing releases it.
        dead_id = min(polled_by)
        now = utcnow()
        with stores[0].transaction() as session:
            for other in session.exec(select(Mailbox)):
                other.next_poll_at = now + timedelta(hours=1)  # only the dead one is due
            row = session.get(Mailbox, dead_id)
            assert row is not None
            row.lease_owner, row.lease_expires_at, row.next_poll_at = "i0", now + timedelta(seconds=1.5), now
        survivor = instances[1]
        assert dead_id not in await survivor.dispatch()
        await survivor.wait_idle()
        await asyncio.sleep(1.6)
        assert await survivor.dispatch() == [dead_id]
        await survivor.wait_idle()
    finally:
        for store in stores:
            store.dispose()


def test_config_reload_adds_mailboxes(tmp_path: Path, database_url: str) -> None:
    runtime = Runtime.create(write_config(tmp_path, database_url, 1))
    try:
        assert len(runtime.dispatcher.mailboxes) == 1
        asyncio.run(runtime.reconfigure(write_config(tmp_path, database_url, 3)))
        assert len(runtime.dispatcher.mailboxes) == 3
    finally:
        asyncio.run(runtime.aclose())


def test_example_config_mentions_every_collector_key() -> None:
    text = (Path(__file__).parents[2] / "config.example.toml").read_text()
    for key in CollectorSettings.model_fields:
        assert f"\n{key} = " in text, key
    assert textwrap.dedent("[collector]") in text
