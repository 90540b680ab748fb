"""A crash between acknowledging at the provider and recording it: reconciled after the restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from collector import ledger, poll
from collector.ledger import MailboxKey, sync_mailboxes
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import Mailbox, Message, TraceEvent
from postbud.daemon import Daemon
from postbud.runtime import Runtime, open_store
from tests.collector.fakes import ScriptedConnector
from tests.collector.test_dispatch import write_config
from tests.conftest import MakeConfig


@pytest.fixture
def store(tmp_path: Path, database_url: str) -> Iterator[Store]:
    config = write_config(tmp_path, database_url, 1)
    store = open_store(config)
    sync_mailboxes(store, config)
    yield store
    store.dispose()


def _mailbox(store: Store) -> MailboxKey:
    with store.read() as session:
        row = session.exec(select(Mailbox)).one()
    assert row.id is not None
    return MailboxKey(row.id, "12345678", row.name, row.provider)


def _crash_after_provider_ack(monkeypatch: pytest.MonkeyPatch) -> None:
    def power_cut(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("power cut after the provider forgot the message")

    monkeypatch.setattr(ledger, "mark_acknowledged", power_cut)


def _ack_events(store: Store) -> list[TraceEvent]:
    with store.read() as session:
        return list(session.exec(select(TraceEvent).where(TraceEvent.kind == "acknowledged")))


def test_provider_side_ack_before_a_crash_is_recorded_after_the_restart(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a provider that forgets a message once acknowledged (NgDP delete, mit.dk mark read)
    mailbox = _mailbox(store)
    provider = ScriptedConnector([["m1"]])
    # WHEN the process dies after the provider acted but before the acknowledgement was recorded
    _crash_after_provider_ack(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    monkeypatch.undo()
    assert provider.acked == ["m1"]
    # THEN the next poll (the restart; the provider no longer lists it) records it, exactly once
    asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    with store.read() as session:
        (row,) = session.exec(select(Message))
    assert row.acknowledged_at is not None and row.ack_ref is None
    (event,) = _ack_events(store)
    assert event.message_id == row.id
    asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    assert len(_ack_events(store)) == 1


def test_drop_file_moved_before_a_crash_is_acknowledged_after_the_restart(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime.create(make_config())
    try:
        drop = runtime.config.base_dir / "drop"
        drop.mkdir(exist_ok=True)
        (drop / "a.eml").write_bytes(b"From: a@b.dk\nSubject: Moms\nMessage-ID: <x@b.dk>\n\nhej\n")
        _crash_after_provider_ack(monkeypatch)
        with pytest.raises(KeyboardInterrupt):
            (mb,) = runtime.dispatcher.mailboxes.values()
            asyncio.run(poll.poll_mailbox(runtime.store, mb.key, mb.connector, Metrics()))
        monkeypatch.undo()
        assert not (drop / "a.eml").exists()  # the provider side (the drop folder) was done

        asyncio.run(Daemon(runtime).run_once())  # the restart
        with runtime.store.read() as session:
            (row,) = session.exec(select(Message))
        assert row.acknowledged_at is not None
        assert len(_ack_events(runtime.store)) == 1
    finally:
        asyncio.run(runtime.aclose())
