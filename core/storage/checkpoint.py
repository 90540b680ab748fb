"""SQLite's write-ahead log copied back into the database by a thread of its own, off the commits.

With SQLite's own auto-checkpoint, the commit that takes the log past 1000 pages copies them into
the database and syncs both files (two fdatasyncs, 6-20 ms each on our test machine) before it
returns, while its stage holds the store's write lock and every other writer waits. Here the pool's
connections run with `wal_autocheckpoint=0`, and one thread per engine reads how many of the log's
frames are not yet copied back (from the shared-memory wal-index's header,
https://www.sqlite.org/walformat.html; no database call) and checkpoints PASSIVE, which neither
waits for readers nor blocks writers, once `PAGES` are waiting.

A log is only started over by a writer that finds it all copied, which a checkpoint beside busy
writers never leaves it; so once the log holds `RESTART_PAGES` frames the thread copies the few
written during its last checkpoint while holding the write lock (`write_lock`, which the Store's
transactions take), and the next writer starts the log over. If readers keep it from starting over
and it passes `LIMIT_PAGES`, the thread waits briefly for them (TRUNCATE, under the write lock too),
which empties the file.

A checkpoint syncs the log before copying and the database after, as SQLite's own does at
synchronous=NORMAL. What a power cut may undo is still only NORMAL commits since the log's last
sync, never a durable (FULL) commit; and since the thread also syncs a log that has grown for
`SYNC_SECONDS` without a checkpoint, those are at most about a second's commits (before: up to
1000 pages' worth, however old). At the engine's dispose the thread checkpoints what is left and
closes its connection, and the log is removed as before.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time

log = logging.getLogger(__name__)

# The wal-index header (two copies of 48 bytes) holds mxFrame, the log's last frame, at byte 16;
# the checkpoint information after them nBackfill, the frames already copied back, at byte 96. Both
# are in the machine's byte order.
_HEADER = struct.Struct("=16xI76xI")
PAGES = 2000
RESTART_PAGES = 8000
LIMIT_PAGES = 32_000
POLL_SECONDS = 0.1
SYNC_SECONDS = 1.0
# How long a TRUNCATE checkpoint over the limit waits for readers before it gives up (a busy timeout).
LIMIT_WAIT_SECONDS = 0.2


class Checkpointer:
    """One thread checkpointing one SQLite database file; started on demand, stopped by `stop`."""

    def __init__(self, database: str, *, pages: int = PAGES, restart_pages: int = RESTART_PAGES,
                 limit_pages: int = LIMIT_PAGES) -> None:
        self.database = database
        self.shm = f"{database}-shm"
        self.pages, self.restart_pages, self.limit_pages = pages, restart_pages, limit_pages
        self.write_lock = threading.Lock()
        self.checkpoints = 0
        self.syncs = 0
        self._synced: tuple[int, float] = (0, time.monotonic())  # the log's frames at its last sync, when
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Checkpoint what is left and end the thread (it starts again on the engine's next connection)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self.database, timeout=LIMIT_WAIT_SECONDS, check_same_thread=False)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")
            while not self._stop.wait(POLL_SECONDS):
                self.round(connection)
            self.checkpoint(connection, "PASSIVE")
        finally:
            connection.close()  # the last connection to the database checkpoints and removes the log

    def round(self, connection: sqlite3.Connection) -> None:
        frames, copied = self.frames()
        if frames >= self.limit_pages:
            with self.write_lock:
                self.checkpoint(connection, "TRUNCATE")
        elif frames - copied >= self.pages or (frames >= self.restart_pages and copied < frames):
            self.checkpoint(connection, "PASSIVE")
            if frames >= self.restart_pages:
                with self.write_lock:
                    self.checkpoint(connection, "PASSIVE")
        elif frames != self._synced[0] and time.monotonic() - self._synced[1] >= SYNC_SECONDS:
            self.sync_log(frames)
            return
        else:
            return
        self._synced = (frames, time.monotonic())  # each checkpoint syncs the log first

    def sync_log(self, frames: int) -> None:
        try:
            fd = os.open(f"{self.database}-wal", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self.syncs += 1
        self._synced = (frames, time.monotonic())

    def checkpoint(self, connection: sqlite3.Connection, mode: str) -> None:
        try:
            connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # busy or locked: the next round tries again
            log.debug("checkpoint %s of %s did not run: %s", mode, self.database, exc)
            return
        self.checkpoints += 1

    def frames(self) -> tuple[int, int]:
        """The log's frames and how many of them are copied back: (0, 0) while there is no log, or
        its index cannot be read (the next round reads it again)."""
        try:
            fd = os.open(self.shm, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return 0, 0
        try:
            header = os.pread(fd, _HEADER.size, 0)
        finally:
            os.close(fd)
        if len(header) < _HEADER.size:
            return 0, 0
        frames, copied = _HEADER.unpack(header)
        return int(frames), int(copied)
