"""The folder connector: a drop folder of `.eml` and MeMo `.xml` files, as scanners and exports produce.

A file's identity is the SHA-256 of its bytes, so the same file dropped twice is one message. A file
is deleted when postbud acknowledges it, which it does once its content is stored encrypted (after the
commit, or after delivery where the mailbox says so): no plaintext original stays on disk, so
retention and erasure, which cover the encrypted copy, cover everything kept. A crash in between
leaves the file in place, and the next poll finds it already stored and only deletes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from connectors.base import (
    AcknowledgePolicy,
    Capability,
    ConnectorContext,
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

    def __init__(self, settings: FolderSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        self.folder = settings.path

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
            if entry.name.startswith(".") or suffix not in _MEDIA_TYPES or not entry.is_file():
                continue
            stat = entry.stat()
            if now - stat.st_mtime < self.settings.settle_seconds:
                continue  # still being written by the scanner or export
            candidates.append((stat.st_mtime, entry.name))
        refs = []
        for _, name in sorted(candidates)[: self.settings.max_files_per_poll]:
            try:
                digest = _sha256(self.folder / name)
            except FileNotFoundError:
                continue
            refs.append(MessageRef(key=f"sha256:{digest}", handle=name))
        return refs

    async def fetch(self, ref: MessageRef) -> Fetched:
        from connectors.files import parse_message_file

        path = self.folder / ref.handle
        try:
            size = path.stat().st_size
            if size > self.settings.max_bytes:
                raise PermanentError(f"{ref.handle}: {size} bytes exceeds max_bytes")
            raw = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise TransientError(f"{ref.handle} disappeared before it was read") from None
        except OSError as exc:
            raise TransientError(f"cannot read {ref.handle}: {exc.strerror}") from None
        try:
            message = await asyncio.to_thread(parse_message_file, raw, ref.handle)
        except PermanentError as exc:
            raise PermanentError(f"{ref.handle}: {exc}", raw=raw) from None
        media_type = _MEDIA_TYPES[Path(ref.handle).suffix.lower()]
        return Fetched(ref=ref, raw=raw, raw_media_type=media_type, message=message)

    async def acknowledge(self, ref: MessageRef) -> None:
        await asyncio.to_thread(self._remove, ref)

    def _remove(self, ref: MessageRef) -> None:
        """Delete the original, but only if it still holds the bytes that were stored: a file of the same
        name dropped since (another letter) is left for the next poll."""
        path = self.folder / ref.handle
        try:
            if _sha256(path) != ref.key.removeprefix("sha256:"):
                return
            path.unlink()
        except FileNotFoundError:
            return  # already deleted: acknowledging twice is harmless
        except OSError as exc:
            raise TransientError(f"cannot delete {ref.handle}: {exc.strerror}") from None

    async def aclose(self) -> None:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
