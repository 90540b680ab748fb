"""The database engine and transactions; SQLite (WAL) by default, PostgreSQL when the URL says so."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from core.storage.checkpoint import Checkpointer
from core.storage.vault import Vault, private_dir


def normalize_url(url: str) -> str:
    """Pick the installed PostgreSQL driver (psycopg 3) for plain postgresql:// URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            _private_file(Path(database))
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkin", _back_to_normal_sync)
        if database and database != ":memory:":
            _checkpoint_in_background(engine, Checkpointer(database))
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _private_file(path: Path) -> None:
    """The database file exists owner-only (0600) before SQLite opens it; its -wal and -shm files
    take the same mode from it."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # A statement that may fail halfway (several rows, a trigger) keeps a journal to undo itself,
    # and past 64 KB SQLite moves it to a temporary file: with rows that carry their sealed content,
    # 183,000 writes (410 MB) of a 2,000-letter run went to such files. Nothing reads them after
    # the statement, so memory is enough.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _checkpoint_in_background(engine: Engine, checkpointer: Checkpointer) -> None:
    """The pool's connections leave checkpoints to the checkpointer's thread (core/storage/checkpoint.py),
    which runs while the engine has connections and stops, checkpointing what is left, at its dispose."""

    def no_auto_checkpoint(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()
        checkpointer.ensure_running()

    event.listen(engine, "connect", no_auto_checkpoint)
    event.listen(engine, "engine_disposed", lambda _engine: checkpointer.stop())
    _CHECKPOINTERS[engine] = checkpointer


_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, Checkpointer] = weakref.WeakKeyDictionary()


def checkpointer_of(engine: Engine) -> Checkpointer | None:
    """The checkpointer of an engine on a SQLite file that make_engine made."""
    return _CHECKPOINTERS.get(engine)


_SYNCED_COMMITS = "postbud_synchronous_full"


def _back_to_normal_sync(dbapi_connection: Any, record: Any) -> None:
    """A connection a durable transaction used goes back to the pool at synchronous=NORMAL."""
    if record.info.pop(_SYNCED_COMMITS, False):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


class Store:
    """The engine plus the vault that seals content columns."""

    def __init__(self, engine: Engine, vault: Vault) -> None:
        self.engine = engine
        self.vault = vault
        # SQLite has one writer at a time; threads that collide back off in its busy handler with
        # sleeps of up to 100 ms. Queueing writers on a lock here costs nothing and avoids those.
        # The checkpointer takes the same lock to finish a checkpoint between two writers.
        checkpointer = checkpointer_of(engine)
        self._write_lock: threading.Lock | contextlib.nullcontext[None] = (
            checkpointer.write_lock if checkpointer is not None
            else threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, *, durable: bool = False, immediate: bool = False) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any exception.

        SQLite runs with synchronous=NORMAL: a commit outlives the process at once, but a power cut
        or an OS crash may undo it until the log is next synced. `durable` syncs the log at this
        commit (everything committed before it too), for what a provider may forget once it is stored;
        on PostgreSQL it waits for the WAL flush even where the server is set to synchronous_commit=off.

        `immediate`: on SQLite the transaction takes the file's write lock as it begins (BEGIN
        IMMEDIATE), so what it reads is still so when it writes, whatever another process writes to the
        same file (otherwise its reads run before its first write takes the lock).
        """
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                if self.is_sqlite and (durable or immediate):
                    connection = session.connection()
                    if durable:
                        # first, before SQLite's transaction begins: the level cannot change inside one
                        connection.exec_driver_sql("PRAGMA synchronous=FULL")
                        connection.info[_SYNCED_COMMITS] = True
                    if immediate:
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                elif durable:
                    session.connection().exec_driver_sql("SET LOCAL synchronous_commit TO on")
                yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
