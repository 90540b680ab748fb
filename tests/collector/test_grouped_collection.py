"""A page's letters are stored in groups: listing order kept, one transaction per group, each stored before its ack."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from collector import ledger, poll
from connectors.base import ConnectorError, TransientError
from core.domain import Attention, Document, DocumentKind, File
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import Message, TraceEvent
from tests.collector.fakes import ScriptedConnector
from tests.collector.test_ack_crash import _mailbox, store  # noqa: F401 - the fixture: one mailbox

KEYS = [f"m{n:03d}" for n in range(120)]


def _stored(store: Store) -> list[Message]:
    with store.read() as session:
        return list(session.exec(select(Message).order_by(col(Message.received_at))))


def _events(store: Store, kind: str) -> list[TraceEvent]:
    with store.read() as session:
        return list(session.exec(select(TraceEvent).where(TraceEvent.kind == kind)))


class _Fanned(ScriptedConnector):
    """Fetches several at once and finishes them out of order: later letters are quicker."""

    letters_in_flight = 8

    async def fetch(self, ref):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.002 * (int(ref.key[1:]) % 8 == 0))
        return await super().fetch(ref)


class _Batched(_Fanned):
    """Acknowledges a group in one call, as the drop folder does, each ref's error in its place."""

    async def acknowledge_many(self, refs):  # type: ignore[no-untyped-def]
        errors = []
        for ref in refs:
            try:
                await self.acknowledge(ref)
            except ConnectorError as error:
                errors.append(error)
            else:
                errors.append(None)
        return errors


@pytest.mark.parametrize("connector", [ScriptedConnector, _Fanned, _Batched])
def test_a_page_is_stored_in_listing_order_in_a_few_transactions_and_each_letter_acknowledged_once(
    store: Store, connector: type[ScriptedConnector]
) -> None:
    # GIVEN a provider listing 120 letters on one page
    provider = connector([KEYS])
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    # WHEN one poll collects them
    result = asyncio.run(poll.poll_mailbox(store, _mailbox(store), provider, Metrics()))
    # THEN every letter is stored once, received in listing order, and acknowledged once after its commit
    assert result.collected == 120 and result.newly_acknowledged == 120
    rows = _stored(store)
    assert [r.provider_message_id for r in rows] == KEYS
    assert len({r.received_at for r in rows}) == 120
    assert all(r.acknowledged_at is not None and r.ack_ref is None for r in rows)
    assert sorted(provider.acked) == KEYS
    assert len(_events(store, "collected")) == 120 and len(_events(store, "acknowledged")) == 120
    # in groups: far fewer transactions than the three per letter it took one by one
    assert len(commits) <= 12


def test_a_crash_among_a_groups_acknowledgements_is_finished_after_the_restart_once_each(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a group committed, and the process dying after the provider forgot some of it
    mailbox = _mailbox(store)
    provider = ScriptedConnector([KEYS[:10]])
    original = provider.acknowledge

    async def power_cut_after_four(ref):  # type: ignore[no-untyped-def]
        if len(provider.acked) == 4:
            raise KeyboardInterrupt("power cut mid-acknowledgements")
        await original(ref)

    monkeypatch.setattr(provider, "acknowledge", power_cut_after_four)
    monkeypatch.setattr(ledger, "mark_acknowledged", lambda *a, **k: None)  # dies before recording them too
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    monkeypatch.undo()
    assert len(_stored(store)) == 10 and len(provider.acked) == 4
    assert all(r.ack_requested_at is not None for r in _stored(store))  # the intent is in the group's commit
    # WHEN it restarts (the provider lists what it has not forgotten)
    asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    # THEN nothing is stored twice and every letter is recorded acknowledged exactly once
    rows = _stored(store)
    assert [r.provider_message_id for r in rows] == KEYS[:10]
    assert all(r.acknowledged_at is not None for r in rows)
    assert sorted({k for k in provider.acked}) == KEYS[:10]
    assert len(_events(store, "acknowledged")) == 10


def test_a_group_acknowledged_is_recorded_with_the_next_groups_commit_and_after_a_crash_before_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a page of two groups, the second group's commit recording the first group's acknowledgements
    mailbox = _mailbox(store)
    provider = ScriptedConnector([KEYS[:poll.GROUP_SIZE + 10]])
    saves: list[tuple[int, int]] = []
    original = poll.save_group

    def power_cut_at_the_second_commit(*args, **kwargs):  # type: ignore[no-untyped-def]
        saves.append((len(args[2]), len(args[4])))
        if len(saves) == 2:
            raise KeyboardInterrupt("power cut before the second group's commit")
        return original(*args, **kwargs)

    monkeypatch.setattr(poll, "save_group", power_cut_at_the_second_commit)
    monkeypatch.setattr(ledger, "mark_acknowledged", lambda *a, **k: None)  # a power cut runs no finally
    # WHEN the process dies after the provider forgot the first group, before the commit that records it
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    monkeypatch.undo()
    assert saves == [(poll.GROUP_SIZE, 0), (10, poll.GROUP_SIZE)]
    assert sorted(provider.acked) == KEYS[:poll.GROUP_SIZE]
    assert len(_stored(store)) == poll.GROUP_SIZE and not _events(store, "acknowledged")
    # THEN the restart records the first group (reconciled) and collects the rest: each letter stored
    # once and recorded acknowledged once
    asyncio.run(poll.poll_mailbox(store, mailbox, provider, Metrics()))
    rows = _stored(store)
    assert [r.provider_message_id for r in rows] == KEYS[:poll.GROUP_SIZE + 10]
    assert all(r.acknowledged_at is not None and r.ack_ref is None for r in rows)
    acknowledged = _events(store, "acknowledged")
    assert sorted(e.message_id for e in acknowledged) == sorted(r.id for r in rows)
    assert sum(bool(e.detail.get("reconciled_after_restart")) for e in acknowledged) == poll.GROUP_SIZE


def test_an_error_that_ends_the_poll_keeps_what_came_before_it_in_the_listing(store: Store) -> None:
    # GIVEN the provider refusing the credentials at the sixth letter's fetch
    from connectors.base import AuthError

    provider = ScriptedConnector([KEYS[:10]])
    original = provider.fetch

    async def refused_at_m005(ref):  # type: ignore[no-untyped-def]
        if ref.key == "m005":
            raise AuthError("token revoked")
        return await original(ref)

    provider.fetch = refused_at_m005  # type: ignore[method-assign]
    # WHEN a poll runs into it
    with pytest.raises(AuthError):
        asyncio.run(poll.poll_mailbox(store, _mailbox(store), provider, Metrics()))
    # THEN the five before it are stored and acknowledged, and nothing after it
    assert [r.provider_message_id for r in _stored(store)] == KEYS[:5]
    assert sorted(provider.acked) == KEYS[:5]


@pytest.mark.parametrize("connector", [ScriptedConnector, _Fanned, _Batched])
def test_a_poll_that_ends_on_its_budget_leaves_no_letter_half_done(
    store: Store, connector: type[ScriptedConnector]
) -> None:
    # GIVEN 20 letters and a budget of 12 requests (the listing, then a fetch and an ack per letter)
    provider = connector([KEYS[:20]])
    # WHEN one poll runs out of it
    result = asyncio.run(poll.poll_mailbox(store, _mailbox(store), provider, Metrics(), budget=12))
    # THEN it says more is left, and every letter it began is stored and acknowledged: none waits for a
    # reconciliation, none was fetched for nothing
    assert result.more and result.requests <= 12
    rows = _stored(store)
    assert [r.provider_message_id for r in rows] == KEYS[:5]
    assert all(r.acknowledged_at is not None for r in rows)
    assert sorted(provider.fetched) == KEYS[:5] and sorted(provider.acked) == KEYS[:5]


def test_a_group_with_a_letter_another_instance_stored_meanwhile_stores_the_rest_once(store: Store) -> None:
    # GIVEN a letter another instance stored after this one listed it as new
    from collector.storing import Collect, save_collected, save_group
    from connectors.base import Fetched, MessageRef
    from tests.collector.fakes import message

    mailbox = _mailbox(store)

    def fetched(key: str) -> Fetched:
        return Fetched(MessageRef(key, key), f"raw {key}".encode(), "text/plain", message(key))

    theirs = save_collected(store, mailbox, fetched("m001"))
    # WHEN this instance stores its group holding it
    knowns = save_group(store, mailbox, [Collect(fetched(k)) for k in KEYS[:3]])
    # THEN that letter is the other's row, the others are stored once each, all due for acknowledgement
    assert knowns[1].message_id == theirs.message_id
    rows = _stored(store)
    assert sorted(r.provider_message_id for r in rows) == KEYS[:3]
    assert len(_events(store, "collected")) == 3
    assert all(r.ack_requested_at is not None for r in rows)


def test_a_stored_letter_has_every_column_the_table_model_gives_a_new_row_and_unseals_whole(store: Store) -> None:
    # GIVEN a letter with an attachment, as a connector fetched it
    from collector.storing import Collect, save_group
    from connectors.base import Fetched, MessageRef
    from core import codec
    from core.storage.models import Attachment
    from tests.collector.fakes import message

    mailbox = _mailbox(store)
    letter = replace(message("m001"), attention=Attention(person_name="Søren Østergaard"),
                     sent_at=datetime(2026, 12, 1, 8, tzinfo=UTC), text="Brevets tekst",
                     documents=(Document(DocumentKind.MAIN, (File("brev.pdf", "application/pdf", b"%PDF-1.4 ..."),
                                                             File("bilag.txt", "text/plain", b"bilag", "da"))),))
    # WHEN it is stored (written as table rows, not through ORM objects)
    (known,) = save_group(store, mailbox, [Collect(Fetched(MessageRef("m001", "m001"), b"raw", "text/plain", letter))])
    with store.read() as session:
        row = session.get(Message, known.message_id)
        attachments = list(session.exec(select(Attachment).where(Attachment.message_id == known.message_id)))
    # THEN the columns it did not set hold the model's defaults, as a row made through the ORM would
    assert row is not None
    fresh = Message(mailbox_id=mailbox.id, organisation_cvr=mailbox.organisation_cvr, provider=mailbox.provider,
                    provider_message_id="m001")
    given = {"id", "received_at", "updated_at", "ack_requested_at", "ack_ref", "content", "raw", "raw_media_type",
             "message_type", "format", "title", "sender_id", "sender_name", "recipient_id", "sent_at"}
    for column in Message.model_fields:
        if column not in given:
            assert getattr(row, column) == getattr(fresh, column), column
    assert row.received_at is not None and row.updated_at is not None and row.ack_requested_at is not None
    assert (row.title, row.sender_name, row.format) == (letter.title, letter.sender.name, letter.format)
    # and it opens again into the same letter, its files included
    assert codec.unseal(store.vault, row, attachments) == letter
    assert codec.unseal_raw(store.vault, row) == b"raw"


def test_letters_a_group_acknowledgement_could_not_let_go_of_are_acknowledged_one_by_one(store: Store) -> None:
    # GIVEN a provider that acknowledges groups at once, failing the first letter of the first group once
    provider = _Batched([KEYS[:60]])
    provider.faults["ack"].append(TransientError("busy"))
    # WHEN a poll stores and acknowledges the page
    result = asyncio.run(poll.poll_mailbox(store, _mailbox(store), provider, Metrics()))
    # THEN that letter was acknowledged again on its own, and every letter is recorded acknowledged once
    assert result.failed == 0 and result.newly_acknowledged == 60
    assert sorted(provider.acked) == KEYS[:60]
    assert all(r.acknowledged_at is not None for r in _stored(store))
    assert len(_events(store, "acknowledged")) == 60
    assert result.requests == 2 + 60 + 60 + 1  # two listings, the fetches, the acks and the one again


def test_letters_are_synced_to_disk_before_the_provider_may_forget_them(store: Store) -> None:
    # GIVEN commits that are not synced at once (SQLite's synchronous=NORMAL; PostgreSQL's
    # synchronous_commit=off, as a server tuned for speed may have it), and a note of the level each
    # commit ran at, by whether it stored letters
    if store.is_sqlite:
        level_now, synced, unsynced = "PRAGMA synchronous", {2}, {1}  # FULL, NORMAL
    else:
        level_now, synced, unsynced = "SHOW synchronous_commit", {"on"}, {"off"}

        def not_synced(dbapi_connection, *_args):  # type: ignore[no-untyped-def]
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")

        event.listen(store.engine, "checkout", not_synced)
    levels: dict[str, set[object]] = {"stored letters": set(), "other": set()}
    storing: set[int] = set()

    def note_insert(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO MESSAGE "):
            storing.add(id(conn.connection.dbapi_connection))

    def note_commit(conn):  # type: ignore[no-untyped-def]
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        cursor.execute(level_now)
        level = cursor.fetchone()[0]
        cursor.close()
        levels["stored letters" if id(raw) in storing else "other"].add(level)
        storing.discard(id(raw))

    event.listen(store.engine, "before_cursor_execute", note_insert)
    event.listen(store.engine, "commit", note_commit)
    provider = ScriptedConnector([KEYS[:60]])
    # WHEN one poll collects and acknowledges a page
    result = asyncio.run(poll.poll_mailbox(store, _mailbox(store), provider, Metrics()))
    # THEN each commit that stored letters was synced before the acknowledgement, and the other
    # commits (acknowledgements recorded, trace) kept the cheaper level
    assert result.collected == 60 and sorted(provider.acked) == KEYS[:60]
    assert levels["stored letters"] == synced
    assert levels["other"] == unsynced
