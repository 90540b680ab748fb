"""Issue 14: polls are bounded and end; a mailbox's state and reason are kept, shown and notified."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from collector.dispatch import MailboxRuntime
from connectors.base import AuthError, TransientError
from core.config import CollectorSettings
from core.configfile import load_config
from core.storage.db import Store
from core.storage.models import Mailbox, MailboxStatus, TraceEvent
from postbud.daemon import Daemon
from postbud.http import make_app
from postbud.runtime import Runtime
from tests.collector.fakes import ScriptedConnector
from tests.collector.test_dispatch import attach, dispatcher, stored_keys, write_config


def _rows(store: Store) -> list[Mailbox]:
    with store.read() as session:
        return list(session.exec(select(Mailbox).order_by(Mailbox.id)))  # type: ignore[arg-type]


def _set_status(store: Store, mailbox_id: int, status: str) -> None:
    with store.transaction() as session:
        row = session.get(Mailbox, mailbox_id)
        assert row is not None
        row.status = status


async def test_run_once_ends_within_one_interval_beside_a_needs_reauth_mailbox(
        tmp_path: Path, database_url: str, waits: list[float]) -> None:
    interval = 30.0  # the cron runs hammered for minutes; generous for a loaded test machine
    runtime = Runtime.create(write_config(tmp_path, database_url, 2))
    try:
        (stopped, active) = runtime.dispatcher.mailboxes.values()
        _set_status(runtime.store, stopped.key.id, MailboxStatus.NEEDS_REAUTH)
        connector = ScriptedConnector([["m1", "m2"]], ident="active")
        calls = 0
        original = connector.list_new

        async def counted(cursor: str | None):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return await original(cursor)

        connector.list_new = counted  # type: ignore[method-assign]
        runtime.dispatcher.mailboxes = {
            stopped.key.id: stopped,
            active.key.id: MailboxRuntime(active.key, connector, interval, active.fingerprint),
        }
        started = time.monotonic()
        await asyncio.wait_for(Daemon(runtime).run_once(), timeout=interval)
        assert time.monotonic() - started < interval
        # run --once collects twice (before and after delivery), each poll at most one extra pass
        # over a listing its acknowledgements moved: a handful of requests, not thousands.
        assert calls <= 4
        assert stored_keys(runtime.store) == ["m1", "m2"]
    finally:
        await runtime.aclose()


async def test_one_failed_fetch_costs_only_its_message(store: Store, waits: list[float]) -> None:
    connector = ScriptedConnector([["m1", "m2", "m3"]])
    original = connector.fetch
    resetting = True

    async def m1_resets(ref):  # type: ignore[no-untyped-def]
        if ref.key == "m1" and resetting:
            raise TransientError("connection reset")
        return await original(ref)

    connector.fetch = m1_resets  # type: ignore[method-assign]
    d = dispatcher(store)
    attach(d, store, [connector])
    await d.run_all_once()
    assert stored_keys(store) == ["m2", "m3"] and sorted(connector.acked) == ["m2", "m3"]
    row = _rows(store)[0]
    assert row.consecutive_failures == 0 and row.status == MailboxStatus.ACTIVE
    resetting = False
    await d.run_all_once()  # the next poll picks up what failed
    assert stored_keys(store) == ["m1", "m2", "m3"]


async def test_a_poll_ends_on_its_request_budget_and_run_once_resumes_it(store: Store, waits: list[float]) -> None:
    pages = [[f"p{p}m{i}" for i in range(5)] for p in range(8)]
    connector = ScriptedConnector(pages)
    settings = CollectorSettings(lease_seconds=3, retries=3, poll_request_budget=25)
    d = dispatcher(store, settings=settings)
    attach(d, store, [connector])
    await d.dispatch(all_due=True)
    await d.wait_idle()
    assert 0 < len(stored_keys(store)) < 40  # one poll: 25 requests, then it ends
    assert _rows(store)[0].cursor == "2"  # progress kept for the next poll
    await d.run_all_once()
    assert len(stored_keys(store)) == 40 and len(connector.fetched) == 40  # each fetched once


async def test_a_poll_resumed_mid_list_goes_round_to_the_start(store: Store, waits: list[float]) -> None:
    connector = ScriptedConnector([["a1"], ["b1"], ["c1"]])
    d = dispatcher(store)
    attach(d, store, [connector])
    with store.transaction() as session:
        row = session.exec(select(Mailbox).order_by(Mailbox.id)).first()  # type: ignore[arg-type]
        assert row is not None
        row.cursor = "1"  # a previous poll stopped after the first page
    await d.dispatch(all_due=True)
    await d.wait_idle()
    assert stored_keys(store) == ["a1", "b1", "c1"]  # one poll, not one per wrap of the listing


async def test_needs_reauth_keeps_its_reason_after_the_lease_release(store: Store, waits: list[float]) -> None:
    connector = ScriptedConnector([["m1"]])
    connector.faults["list"].append(AuthError("server certificate not trusted: self-signed"))
    d = dispatcher(store)
    attach(d, store, [connector])
    await d.run_all_once()
    row = _rows(store)[0]
    assert row.status == MailboxStatus.NEEDS_REAUTH
    assert row.last_error is not None and "server certificate not trusted" in row.last_error
    with store.read() as session:
        note = session.exec(select(TraceEvent).where(TraceEvent.kind == "notification")).one()
    assert "server certificate not trusted" in note.detail["text"]


def _ngdp_config(folder: Path, database_url: str, extra: str = "") -> Path:
    path = folder / "postbud.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n[[organisations]]\ncvr = "12345678"\nname = "T"\n'
        'administrators = ["it@t.dk"]\n'
        '  [[organisations.mailboxes]]\n  name = "dp"\n  type = "ngdp"\n  system_id = "sys"\n'
        '  api_token = { file = "token.txt" }\n  client_cert = "c.pem"\n  client_key = "k.pem"\n'
        f'  cvrs = ["12345678"]\n{extra}'
    )
    return path


async def test_correcting_a_secret_value_resumes_polling(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "token.txt").write_text("wrong")
    path = _ngdp_config(tmp_path, database_url)
    runtime = Runtime.create(load_config(path))
    try:
        (mb,) = runtime.dispatcher.mailboxes.values()
        failing = ScriptedConnector([["m1"]])
        failing.faults["list"].append(AuthError("401"))
        runtime.dispatcher.mailboxes[mb.key.id] = MailboxRuntime(mb.key, failing, 60, mb.fingerprint)
        await runtime.dispatcher.run_all_once()
        assert _rows(runtime.store)[0].status == MailboxStatus.NEEDS_REAUTH

        await runtime.reconfigure(load_config(path))  # same file, same value: still stopped
        assert _rows(runtime.store)[0].status == MailboxStatus.NEEDS_REAUTH
        (tmp_path / "token.txt").write_text("right")  # same reference, corrected value
        await runtime.reconfigure(load_config(path))
        assert _rows(runtime.store)[0].status == MailboxStatus.ACTIVE
    finally:
        await runtime.aclose()


async def test_a_mailbox_that_cannot_start_is_an_error_notified_and_not_ready(
        tmp_path: Path, database_url: str) -> None:
    path = _ngdp_config(tmp_path, database_url)  # token.txt does not exist
    runtime = Runtime.create(load_config(path))
    try:
        assert runtime.dispatcher.mailboxes == {}
        row = _rows(runtime.store)[0]
        assert row.status == MailboxStatus.ERROR
        assert row.last_error is not None and row.last_error.startswith("cannot start:")
        with runtime.store.read() as session:
            notes = session.exec(select(TraceEvent).where(TraceEvent.kind == "notification")).all()
        assert [n.reason for n in notes] == ["Mailbox dp (ngdp) cannot start"]
        transport = httpx.ASGITransport(app=make_app(runtime.metrics, runtime.store, lambda: True))
        async with httpx.AsyncClient(transport=transport, base_url="http://postbud") as client:
            ready = await client.get("/readyz")
            body = (await client.get("/metrics")).text
        assert ready.status_code == 503
        assert ready.json()["mailboxes"][0]["status"] == "error"
        assert 'postbud_mailboxes{provider="ngdp",status="error"} 1.0' in body
        assert 'postbud_mailbox_last_success_timestamp_seconds{mailbox="12345678/dp",provider="ngdp"} 0.0' in body

        (tmp_path / "token.txt").write_text("now there")  # the secret is added, then SIGHUP
        await runtime.reconfigure(load_config(path))
        assert _rows(runtime.store)[0].status == MailboxStatus.ACTIVE and len(runtime.dispatcher.mailboxes) == 1
        async with httpx.AsyncClient(transport=transport, base_url="http://postbud") as client:
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await runtime.aclose()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    from collector import poll

    recorded: list[float] = []

    async def no_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(poll, "sleep", no_sleep)
    return recorded


@pytest.fixture
def store(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    from collector.ledger import sync_mailboxes
    from postbud.runtime import open_store

    config = write_config(tmp_path, database_url, 4)
    store = open_store(config)
    sync_mailboxes(store, config)
    yield store
    store.dispose()


@pytest.mark.postgres
def test_instances_starting_together_on_a_fresh_postgres_schema_all_start(tmp_path: Path, pg_url: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from collector.ledger import sync_mailboxes
    from postbud.runtime import open_store

    config = write_config(tmp_path, pg_url, 6)
    barrier = threading.Barrier(3)

    def start() -> Runtime:
        barrier.wait()  # migrations, organisation and mailbox rows: all at the same moment
        return Runtime.create(config)

    pool = ThreadPoolExecutor(3)
    runtimes = [f.result(timeout=60) for f in [pool.submit(start) for _ in range(3)]]
    pool.shutdown(wait=False)
    try:
        assert {len(r.dispatcher.mailboxes) for r in runtimes} == {6}
        # And again for new organisations added while several instances run (a reload on each).
        stores = [r.store for r in runtimes]
        for round_ in range(5):
            text = (tmp_path / "postbud.toml").read_text().replace('cvr = "12345678"', f'cvr = "1234567{round_}"')
            (tmp_path / "postbud.toml").write_text(text)
            renamed = load_config(tmp_path / "postbud.toml")
            barrier = threading.Barrier(3)

            def sync(store: Store) -> int:
                barrier.wait()
                return len(sync_mailboxes(store, renamed))

            with ThreadPoolExecutor(3) as pool:
                assert [f.result() for f in [pool.submit(sync, s) for s in stores]] == [6, 6, 6]
    finally:
        for runtime in runtimes:
            asyncio.run(runtime.aclose())
    del open_store


async def test_a_configuration_error_is_an_error_state_not_needs_reauth(store: Store, waits: list[float]) -> None:
    from connectors.base import ConfigurationError

    connector = ScriptedConnector([["m1"]])
    connector.faults["list"].append(ConfigurationError("2 mailboxes match; set mailbox_id to one of: a, b"))
    d = dispatcher(store)
    attach(d, store, [connector])
    await d.run_all_once()
    row = _rows(store)[0]
    assert row.status == MailboxStatus.ERROR
    assert row.last_error == "configuration: 2 mailboxes match; set mailbox_id to one of: a, b"
    assert await d.dispatch(all_due=True, only={row.id or 0}) == []  # stopped until the configuration changes
