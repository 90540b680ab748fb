"""The spine end to end with the folder connector: collect, deduplicate, survive crashes, quarantine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from collector import poll
from connectors.base import MessageRef
from connectors.folder import FolderConnector
from postbud.daemon import Daemon
from core.metrics import Metrics
from postbud.runtime import Runtime
from core.storage import migrate
from core.storage.models import Delivery, Message, TraceEvent
from postbud.trace import SearchFilter, search, show
from tests.conftest import MakeConfig

SECRET_LINE = "Fortroligt: kunde 0102031234 skylder 4711 kr. til Skattestyrelsen."

EML = f"""From: Skattestyrelsen <noreply@skat.dk>
To: post@test.dk
Subject: Momsangivelse for 3. kvartal
Date: Mon, 23 Nov 2026 10:00:00 +0000
Message-ID: <moms-1@skat.dk>

{SECRET_LINE}
""".encode()


def drop(config_dir: Path, name: str, data: bytes) -> Path:
    folder = config_dir / "drop"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


async def run_once(runtime: Runtime) -> None:
    await Daemon(runtime).run_once()


@pytest.fixture
def runtime(make_config: MakeConfig):  # type: ignore[no-untyped-def]
    rt = Runtime.create(make_config())
    yield rt
    asyncio.run(rt.aclose())


def messages(rt: Runtime) -> list[Message]:
    with rt.store.read() as session:
        return list(session.exec(select(Message)))


def test_migration_from_empty_reaches_head_and_matches_the_models(runtime: Runtime) -> None:
    assert migrate.current_revision(runtime.store.engine) == migrate.head_revision()
    migrate.upgrade(runtime.store.engine)  # idempotent
    assert migrate.current_revision(runtime.store.engine) == migrate.head_revision()
    assert migrate.pending_model_changes(runtime.store.engine) == []


def test_dropped_file_is_collected_routed_traced_and_deleted(runtime: Runtime) -> None:
    base = runtime.config.base_dir
    drop(base, "a.eml", EML)
    asyncio.run(run_once(runtime))
    (found,) = search(runtime.store, SearchFilter(organisation="12345678"))
    assert found["title"] == "Momsangivelse for 3. kvartal"
    assert found["sender"] == "Skattestyrelsen"
    # Routed by the default; with no recipients file, delivery holds it for a person, saying why.
    assert found["status"] == "held" and "no recipients file" in found["status_reason"]
    assert found["mailbox"] == "drop"
    timeline = show(runtime.store, found["id"])
    assert timeline is not None
    kinds = [e["kind"] for e in timeline["events"]]
    # run --once routes a group as soon as it is stored: routing may be traced before the drop
    # folder's acknowledgement (the file's deletion), never before the collection
    assert kinds[0] == "collected" and sorted(kinds[1:3]) == ["acknowledged", "routed"]
    assert not (base / "drop" / "a.eml").exists()
    with runtime.store.read() as session:
        outbox = list(session.exec(select(Delivery)))
    assert [(d.recipient, d.channel, d.status) for d in outbox] == [("reception", "email", "held")]


def test_same_file_twice_is_one_message(runtime: Runtime) -> None:
    base = runtime.config.base_dir
    drop(base, "a.eml", EML)
    asyncio.run(run_once(runtime))
    drop(base, "again.eml", EML)
    asyncio.run(run_once(runtime))
    assert len(messages(runtime)) == 1
    assert not (base / "drop" / "again.eml").exists()


def test_crash_between_commit_and_move_leaves_no_duplicate(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = runtime.config.base_dir
    path = drop(base, "a.eml", EML)

    async def crash(self: FolderConnector, ref: object) -> None:
        raise KeyboardInterrupt("power cut after the commit")

    monkeypatch.setattr(FolderConnector, "acknowledge", crash)
    monkeypatch.setattr(FolderConnector, "acknowledge_many", crash)
    with pytest.raises(KeyboardInterrupt):
        (mailbox,) = runtime.dispatcher.mailboxes.values()
        asyncio.run(poll.poll_mailbox(runtime.store, mailbox.key, mailbox.connector, Metrics()))
    assert path.exists() and len(messages(runtime)) == 1
    monkeypatch.undo()

    asyncio.run(run_once(runtime))  # the restart
    (message,) = messages(runtime)
    assert message.acknowledged_at is not None
    assert not path.exists()


def test_malformed_files_are_quarantined_and_the_next_is_collected(runtime: Runtime) -> None:
    base = runtime.config.base_dir
    drop(base, "1-broken.xml", b"<memo:Message xmlns:memo='https://DigitalPost.dk/MeMo-1'><oops")
    drop(base, "2-empty.eml", b"\x00\x01\x02\xff" * 10)
    drop(base, "3-good.eml", EML)
    asyncio.run(run_once(runtime))
    by_status = {m.status: m for m in messages(runtime)}
    statuses = sorted(m.status for m in messages(runtime))
    assert statuses == ["held", "quarantined", "quarantined"]
    quarantined = [m for m in messages(runtime) if m.status == "quarantined"]
    for message in quarantined:
        timeline = show(runtime.store, message.id)
        assert timeline is not None
        (event,) = [e for e in timeline["events"] if e["kind"] == "quarantined"]
        assert event["reason"] and ("broken.xml" in event["reason"] or "empty.eml" in event["reason"])
        assert message.raw is not None  # the evidence is kept, encrypted
    assert by_status["held"].title == "Momsangivelse for 3. kvartal"


def test_database_holds_no_plaintext_body(runtime: Runtime) -> None:
    drop(runtime.config.base_dir, "a.eml", EML)
    asyncio.run(run_once(runtime))
    needle = b"0102031234 skylder 4711"
    if runtime.store.is_sqlite:
        runtime.store.dispose()  # checkpoint the WAL so the main file holds everything
        db_file = Path(runtime.store.engine.url.database or "")
        blobs = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
        assert b"Momsangivelse" in blobs  # metadata stays searchable
        assert needle not in blobs
    else:
        with runtime.store.engine.connect() as connection:
            dump = b"".join(
                bytes(str(row), "utf-8") + (bytes(row[0]) if isinstance(row[0], (bytes, memoryview)) else b"")
                for table in ("message", "attachment", "trace_event", "routing_decision")
                for row in connection.execute(text(f"SELECT * FROM {table}"))
            )
        assert needle not in dump


def test_trace_events_are_written_with_each_transition(runtime: Runtime) -> None:
    drop(runtime.config.base_dir, "a.eml", EML)
    asyncio.run(run_once(runtime))
    with runtime.store.read() as session:
        events = list(session.exec(select(TraceEvent).order_by(TraceEvent.id)))  # type: ignore[arg-type]
    transitions = [(e.from_status, e.to_status) for e in events if e.to_status]
    assert transitions == [(None, "collected"), ("collected", "routed"), ("routed", "delivering"),
                           ("delivering", "held")]


def test_no_plaintext_original_stays_on_disk_after_commit(runtime: Runtime) -> None:
    # GIVEN a dropped letter about a data subject
    base = runtime.config.base_dir
    drop(base, "a.eml", EML)
    # WHEN it is collected (committed encrypted)
    asyncio.run(run_once(runtime))
    on_disk = [p for p in (base / "drop").rglob("*") if p.is_file()]
    # THEN no file under the drop folder holds the original in clear, not even in a processed/ folder
    assert not [p for p in on_disk if b"0102031234" in p.read_bytes()]
    assert not (base / "drop" / "processed").exists()


def test_a_processed_folder_setting_is_refused_with_a_reason(make_config: MakeConfig) -> None:
    from connectors.folder import FolderSettings

    with pytest.raises(ValueError, match="plaintext at rest"):
        FolderSettings(path=Path("drop"), processed=Path("drop/processed"))


def test_a_new_file_under_an_acknowledged_name_is_not_deleted(runtime: Runtime) -> None:
    base = runtime.config.base_dir
    path = drop(base, "scan.eml", EML)
    (mailbox,) = runtime.dispatcher.mailboxes.values()
    connector = mailbox.connector
    (ref,) = asyncio.run(connector.list_new(None)).refs
    path.write_bytes(EML.replace(b"moms-1", b"moms-2"))  # the scanner reused the name meanwhile
    asyncio.run(connector.acknowledge(ref))
    assert path.exists()


def test_a_drop_folder_fuller_than_the_request_budget_is_emptied_in_one_poll(
        make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 12 letters in a drop folder and a request budget that covers five (a fetch and a delete each)
    from collector import dispatch

    runtime = Runtime.create(make_config(extra="[collector]\npoll_request_budget = 10"))
    base = runtime.config.base_dir
    for n in range(12):
        drop(base, f"{n:02d}.eml", EML.replace(b"moms-1", f"moms-{n}".encode()))
    polls: list[poll.PollResult] = []
    real = dispatch.poll_mailbox

    async def counted(*args: object, **kwargs: object) -> poll.PollResult:
        polls.append(await real(*args, **kwargs))  # type: ignore[arg-type]
        return polls[-1]

    monkeypatch.setattr(dispatch, "poll_mailbox", counted)
    try:
        # WHEN the mailboxes are polled once
        asyncio.run(runtime.dispatcher.run_all_once())
        # THEN one poll collected and deleted them all: local files cost no provider a request
        assert [(p.collected, p.newly_acknowledged, p.more) for p in polls] == [(12, 12, False)]
        assert not list((base / "drop").iterdir())
    finally:
        asyncio.run(runtime.aclose())


def test_a_file_that_cannot_be_deleted_stays_for_the_next_poll_and_the_rest_of_its_group_go(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN three stored letters' files, one of which cannot be deleted for now
    from connectors.base import TransientError

    base = runtime.config.base_dir
    for n in range(3):
        drop(base, f"{n}.eml", EML.replace(b"moms-1", f"moms-{n}".encode()))
    real = FolderConnector._remove

    def busy(self: FolderConnector, ref: object) -> None:
        if getattr(ref, "handle", "") == "1.eml":
            raise TransientError("cannot delete 1.eml: Device or resource busy")
        real(self, ref)  # type: ignore[arg-type]

    monkeypatch.setattr(FolderConnector, "_remove", busy)
    monkeypatch.setattr(poll, "sleep", lambda seconds: asyncio.sleep(0))
    (mailbox,) = runtime.dispatcher.mailboxes.values()
    # WHEN a poll stores them and deletes the group's files
    result = asyncio.run(poll.poll_mailbox(runtime.store, mailbox.key, mailbox.connector, Metrics()))
    # THEN the other two are gone, that one is kept (its letter stored once) and counted as failed
    assert (result.collected, result.newly_acknowledged) == (3, 2) and result.failed >= 1
    assert sorted(p.name for p in (base / "drop").iterdir()) == ["1.eml"]
    # AND once it can be deleted, the next poll deletes it without storing it again
    monkeypatch.undo()
    asyncio.run(poll.poll_mailbox(runtime.store, mailbox.key, mailbox.connector, Metrics()))
    assert not list((base / "drop").iterdir()) and len(messages(runtime)) == 3


def _list_as_if_settled(connector: FolderConnector, monkeypatch: pytest.MonkeyPatch) -> MessageRef:
    """The folder's one file listed as a poll ten seconds from now would list it (its status long settled)."""
    import time

    real = time.time
    with monkeypatch.context() as later:
        later.setattr(time, "time", lambda: real() + 10)
        (ref,) = asyncio.run(connector.list_new(None)).refs
    return ref


def test_a_file_unchanged_since_its_listing_is_deleted_without_reading_it_again(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a settled file, listed (and hashed) once
    from connectors import folder

    path = drop(runtime.config.base_dir, "scan.eml", EML)
    (mailbox,) = runtime.dispatcher.mailboxes.values()
    ref = _list_as_if_settled(mailbox.connector, monkeypatch)

    def no_second_read(path: Path) -> str:
        raise AssertionError(f"{path} was hashed again")

    # WHEN it is acknowledged
    monkeypatch.setattr(folder, "sha256", no_second_read)
    asyncio.run(mailbox.connector.acknowledge(ref))
    # THEN it is deleted on a look at its status alone
    assert not path.exists()


def test_a_settled_file_replaced_under_its_name_after_its_listing_is_not_deleted(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a settled file, listed, then replaced by another letter of the same size under its name
    path = drop(runtime.config.base_dir, "scan.eml", EML)
    (mailbox,) = runtime.dispatcher.mailboxes.values()
    ref = _list_as_if_settled(mailbox.connector, monkeypatch)
    other = path.with_name("incoming.tmp")
    other.write_bytes(EML.replace(b"moms-1", b"moms-2"))
    other.replace(path)
    # WHEN the first one is acknowledged
    asyncio.run(mailbox.connector.acknowledge(ref))
    # THEN the new letter stays for the next poll
    assert path.read_bytes() == EML.replace(b"moms-1", b"moms-2")


def test_a_dropped_letter_comes_from_its_parse_worker_with_its_content_ready_to_seal(runtime: Runtime) -> None:
    # GIVEN a letter in the drop folder, listed
    from core.domain import content_json

    drop(runtime.config.base_dir, "scan.eml", EML)
    (mailbox,) = runtime.dispatcher.mailboxes.values()
    (ref,) = asyncio.run(mailbox.connector.list_new(None)).refs
    # WHEN it is fetched (read and parsed in a parse worker)
    fetched = asyncio.run(mailbox.connector.fetch(ref))
    # THEN its bytes, the parsed letter and the content the collector seals come back together
    assert fetched.raw == EML and fetched.message.title == "Momsangivelse for 3. kvartal"
    assert fetched.document == content_json(fetched.message)
