"""The folder connector: a drop folder of `.eml` and MeMo `.xml` files, as scanners and exports produce.

A file's identity is the SHA-256 of its bytes, so the same file dropped twice is one message. A file
is deleted when postbud acknowledges it, which it does once its content is stored encrypted (after the
commit, or after delivery where the mailbox says so): no plaintext original stays on disk, so
retention and erasure, which cover the encrypted copy, cover everything kept. A crash in between
leaves the file in place, and the next poll finds it already stored and only deletes it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from connectors import watchdog
from connectors.dropfiles import NotRegular, fingerprint, read_and_parse, read_regular, sha256, unchanged
from connectors.base import (
    AcknowledgePolicy,
    Capability,
    ConnectorContext,
    ConnectorError,
    ConnectorSettings,
    Fetched,
    MessageRef,
    Page,
    PermanentError,
    TransientError,
)

_MEDIA_TYPES = {".xml": "application/xml", ".eml": "message/rfc822"}


class FolderSettings(ConnectorSettings):
    path: Path
    # Earlier versions moved collected files here, in clear, for ever; refused so nobody relies on it.
    processed: Path | None = None
    settle_seconds: float = Field(default=2.0, ge=0)
    max_files_per_poll: int = Field(default=1000, gt=0)
    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    # An oversize file is quarantined with its first `evidence_bytes` kept (encrypted) as evidence.
    evidence_bytes: int = Field(default=50 * 1024 * 1024, ge=0)

    @field_validator("processed")
    @classmethod
    def _no_processed_folder(cls, value: Path | None) -> Path | None:
        if value is not None:
            raise ValueError("drop folders no longer keep collected files (they were plaintext at rest): "
                             "remove `processed` and delete that folder; the original is kept encrypted")
        return value


class FolderConnector:
    """See `connectors.base.Connector` for the obligations; this is the drop-folder provider."""

    name: ClassVar[str] = "folder"
    Settings: ClassVar[type[ConnectorSettings]] = FolderSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Scanners and exports expect their files to leave the drop folder once postbud has them.
    default_acknowledge: ClassVar[AcknowledgePolicy] = AcknowledgePolicy.AFTER_COMMIT
    # Local files: reading and parsing (in the parse workers) several letters ahead of the commit keeps
    # the workers busy while a group is stored, instead of one letter's hops after another's.
    letters_in_flight: ClassVar[int] = 16

    def __init__(self, settings: FolderSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        self.folder = settings.path

    @property
    def poll_requests(self) -> int:
        """Reading and deleting local files costs no provider anything, and a listing is bounded by
        `max_files_per_poll`: a poll may fetch and acknowledge all that its two listings show (the
        second, from the start again, finds what arrived meanwhile), instead of stopping at the
        collector's request budget halfway through a full folder."""
        return 2 * (2 * self.settings.max_files_per_poll + 1)

    async def list_new(self, cursor: str | None) -> Page:
        refs = await asyncio.to_thread(self._scan)
        return Page(refs=tuple(refs), cursor=None, more=False)

    def _scan(self) -> list[MessageRef]:
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            return []
        except OSError as exc:
            raise TransientError(f"cannot list {self.folder}: {exc.strerror}") from None
        now = time.time()
        candidates = []
        for entry in entries:
            suffix = Path(entry.name).suffix.lower()
            # Regular files only: a symlink (to /etc/shadow, say), device or FIFO is never read.
            if entry.name.startswith(".") or suffix not in _MEDIA_TYPES or not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            if now - info.st_mtime < self.settings.settle_seconds:
                continue  # still being written by the scanner or export
            candidates.append((info.st_mtime, entry.name))
        refs = []
        now_ns = int(now * 1e9)
        for _, name in sorted(candidates)[: self.settings.max_files_per_poll]:
            try:
                digest, identity = fingerprint(self.folder / name, now_ns)
            except (FileNotFoundError, NotRegular):
                continue
            # The identity lets the acknowledgement delete the file without hashing it again (connectors.dropfiles).
            refs.append(MessageRef(key=f"sha256:{digest}", handle=name, meta={"file": identity} if identity else {}))
        return refs

    async def fetch(self, ref: MessageRef) -> Fetched:
        from connectors.files import parse_message_file

        path = self.folder / ref.handle
        try:
            # Read in the parse worker too: the daemon's process does no file I/O for a letter.
            raw, message, document = await watchdog.run(read_and_parse, parse_message_file, str(path),
                                                        self.settings.max_bytes, self.settings.evidence_bytes)
        except PermanentError as exc:
            # Over max_bytes or unparsable, the worker sent what it read; a parse that overran its
            # budget or crashed its worker did not: the evidence is read here then (a rare path).
            evidence = exc.raw if exc.raw is not None else await asyncio.to_thread(self._evidence, path)
            raise PermanentError(f"{ref.handle}: {exc}", raw=evidence) from None
        media_type = _MEDIA_TYPES[Path(ref.handle).suffix.lower()]
        return Fetched(ref=ref, raw=raw, raw_media_type=media_type, message=message, document=document)

    def _evidence(self, path: Path) -> bytes | None:
        try:
            return read_regular(path, max(self.settings.max_bytes, self.settings.evidence_bytes))[0]
        except OSError:
            return None  # gone, or no longer a regular file

    async def acknowledge(self, ref: MessageRef) -> None:
        await asyncio.to_thread(self._remove, ref)

    async def acknowledge_many(self, refs: Sequence[MessageRef]) -> list[ConnectorError | None]:
        """A stored group's files deleted in one thread hop (see `Connector`)."""
        return await asyncio.to_thread(self._remove_many, refs)

    def _remove_many(self, refs: Sequence[MessageRef]) -> list[ConnectorError | None]:
        errors: list[ConnectorError | None] = []
        for ref in refs:
            try:
                self._remove(ref)
            except TransientError as error:
                errors.append(error)
            else:
                errors.append(None)
        return errors

    def _remove(self, ref: MessageRef) -> None:
        """Delete the original, but only if it still holds the bytes that were stored: a file of the same
        name dropped since (another letter) is left for the next poll. Unchanged since it was listed is
        enough (a look at its status); else its bytes are hashed again."""
        path = self.folder / ref.handle
        try:
            if not unchanged(path, ref.meta.get("file")) and sha256(path) != ref.key.removeprefix("sha256:"):
                return
            path.unlink()
        except (FileNotFoundError, NotRegular):
            return  # already deleted (acknowledging twice is harmless), or replaced by what is never read
        except OSError as exc:
            raise TransientError(f"cannot delete {ref.handle}: {exc.strerror}") from None

    async def aclose(self) -> None:
        return None
