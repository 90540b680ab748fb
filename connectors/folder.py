"""The folder connector: a drop folder of `.eml` and MeMo `.xml` files, as scanners and exports produce.

A file's identity is the SHA-256 of its bytes, so the same file dropped twice is one message. A file
is moved to `processed/` only when postbud acknowledges it, which it does after the commit; a crash in
between leaves the file in place, and the next poll finds it already stored and only moves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from connectors.base import (
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
    processed: Path | None = None
    settle_seconds: float = Field(default=2.0, ge=0)
    max_files_per_poll: int = Field(default=1000, gt=0)
    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)


class FolderConnector:
    """See `connectors.base.Connector` for the obligations; this is the drop-folder provider."""

    name: ClassVar[str] = "folder"
    Settings: ClassVar[type[ConnectorSettings]] = FolderSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Scanners and exports expect their files to leave the drop folder once postbud has them.
    default_acknowledge: ClassVar[str] = "after_commit"

    def __init__(self, settings: FolderSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        self.folder = settings.path
        self.processed = settings.processed or settings.path / "processed"

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
        await asyncio.to_thread(self._move_processed, ref.handle)

    def _move_processed(self, name: str) -> None:
        source = self.folder / name
        if not source.exists():
            return  # already moved: acknowledging twice is harmless
        self.processed.mkdir(parents=True, exist_ok=True)
        target = self.processed / name
        if target.exists():
            target = self.processed / f"{target.stem}.{int(time.time() * 1000)}{target.suffix}"
        try:
            os.replace(source, target)
        except OSError as exc:
            raise TransientError(f"cannot move {name} to {self.processed}: {exc.strerror}") from None

    async def aclose(self) -> None:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
