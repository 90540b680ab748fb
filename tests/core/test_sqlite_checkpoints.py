"""SQLite's log is checkpointed by a thread of its own, not in a stage's commit; statement journals stay in memory."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.storage import checkpoint
from core.storage.checkpoint import Checkpointer
from core.storage.db import Store, checkpointer_of, make_engine
from core.storage.vault import Vault, load_keyring


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'postbud.db'}"), Vault(load_keyring(tmp_path / "keys.json",
                                                                                          create=True)))
    with store.transaction() as session:
        session.connection().exec_driver_sql("CREATE TABLE letter (n INTEGER, body BLOB)")
    yield store
    store.dispose()


def write(store: Store, letters: int, *, first: int = 0) -> None:
    for n in range(first, first + letters):
        with store.transaction() as session:
            session.execute(text("INSERT INTO letter VALUES (:n, randomblob(6000))"), {"n": n})


def database(store: Store) -> str:
    name = store.engine.url.database
    assert name is not None
    return name


def test_a_commit_never_checkpoints_and_statement_journals_stay_in_memory(store: Store) -> None:
    # GIVEN a pool connection
    with store.read() as session:
        connection = session.connection()
        # THEN SQLite's own checkpoint after a commit is off, and a statement's undo journal is never
        # a temporary file
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        assert connection.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY


def test_a_round_copies_the_log_back_and_the_next_writer_starts_it_over(store: Store) -> None:
    # GIVEN more log than a checkpointer with small thresholds waits for (each letter is 2-3 pages)
    checkpointer = Checkpointer(database(store), pages=10, restart_pages=20)
    write(store, 20)
    frames, copied = checkpointer.frames()
    assert frames >= 40 and copied == 0
    # WHEN it takes its turn (its own connection, as its thread has)
    with sqlite3.connect(database(store)) as connection:
        checkpointer.round(connection)
    # THEN every frame is copied into the database, and the next commit writes the log from its start
    assert checkpointer.frames() == (frames, frames)
    write(store, 1, first=20)
    assert checkpointer.frames()[0] < 10


def test_a_round_without_enough_log_waiting_does_nothing(store: Store) -> None:
    checkpointer = Checkpointer(database(store), pages=1000, restart_pages=2000)
    write(store, 5)
    before = checkpointer.frames()
    with sqlite3.connect(database(store)) as connection:
        checkpointer.round(connection)
    assert checkpointer.frames() == before and before[1] == 0 and checkpointer.checkpoints == 0


def test_a_log_past_its_limit_is_emptied(store: Store) -> None:
    # GIVEN a log over the limit
    checkpointer = Checkpointer(database(store), pages=1000, restart_pages=2000, limit_pages=30)
    write(store, 15)
    assert checkpointer.frames()[0] >= 30
    # WHEN a round runs
    with sqlite3.connect(database(store)) as connection:
        checkpointer.round(connection)
    # THEN the log's file is empty
    assert os.path.getsize(f"{database(store)}-wal") == 0


def test_the_engines_dispose_leaves_everything_in_the_database_file(store: Store, tmp_path: Path) -> None:
    # GIVEN committed letters, still in the log (fewer than the thread waits for)
    write(store, 30)
    assert os.path.getsize(f"{database(store)}-wal") > 0
    # WHEN the engine is disposed (the daemon's close)
    store.dispose()
    # THEN the log is gone and the database file alone holds every letter
    assert not Path(f"{database(store)}-wal").exists()
    shutil.copy(database(store), tmp_path / "alone.db")
    with sqlite3.connect(tmp_path / "alone.db") as alone:
        assert alone.execute("SELECT count(*) FROM letter").fetchone() == (30,)


def test_the_thread_checkpoints_while_the_engine_is_in_use_and_again_after_a_dispose(store: Store) -> None:
    # GIVEN the engine's thread, started by its first connection
    checkpointer = checkpointer_of(store.engine)
    assert checkpointer is not None and checkpointer.running
    # WHEN the engine is disposed, and used again
    store.dispose()
    assert not checkpointer.running
    write(store, 1)
    # THEN the thread is back
    assert checkpointer.running



def test_a_log_that_grew_is_synced_without_waiting_for_a_checkpoint(store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN NORMAL commits, fewer than a checkpoint waits for, once the sync interval has passed
    monkeypatch.setattr(checkpoint, "SYNC_SECONDS", 0.0)
    checkpointer = Checkpointer(database(store), pages=1000, restart_pages=2000)
    write(store, 3)
    with sqlite3.connect(database(store)) as connection:
        # WHEN rounds run, the second with nothing new
        checkpointer.round(connection)
        checkpointer.round(connection)
    # THEN the log was synced once (what a power cut may undo is that interval's commits) and
    # nothing was checkpointed
    assert checkpointer.syncs == 1 and checkpointer.checkpoints == 0
