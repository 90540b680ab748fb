"""Hostile files in a drop folder: each is quarantined (or never read) and the next letter goes through."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from sqlmodel import select

from connectors import files
from connectors.base import ConnectorContext, MessageRef, PermanentError
from connectors.folder import FolderConnector, FolderSettings
from core.storage.models import Message
from postbud.runtime import Runtime
from sandbox.state import MemoryState
from postbud.trace import show
from tests.collector.test_folder_collection import EML, drop, messages, run_once
from tests.collector.test_folder_collection import runtime as runtime  # noqa: F401 - the fixture
from tests.connectors.hostile import workloads

DEEP_FROM = b"From: " + b"(" * 300 + b"\r\nSubject: deep\r\n\r\nbody\r\n"


def _nested_mime(levels: int) -> bytes:
    head = b"From: a@example.dk\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    parts = [head]
    for n in range(levels):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\nx\r\n")
    return b"".join(parts)


def _by_title(rt: Runtime) -> dict[str, Message]:
    return {m.title or m.status_reason or "": m for m in messages(rt)}


@pytest.mark.parametrize("raw", [DEEP_FROM, _nested_mime(500)], ids=["From ((( 300 deep", "MIME nested 500"])
def test_recursion_in_the_email_parser_quarantines_one_letter(runtime: Runtime, raw: bytes) -> None:  # noqa: F811
    base = runtime.config.base_dir
    path = drop(base, "1-deep.eml", raw)
    os.utime(path, (time.time() - 60, time.time() - 60))  # oldest first: it is read before the good one
    drop(base, "2-good.eml", EML)
    asyncio.run(run_once(runtime))
    statuses = sorted(m.status for m in messages(runtime))
    assert statuses == ["held", "quarantined"]
    (bad,) = [m for m in messages(runtime) if m.status == "quarantined"]
    assert bad.raw is not None  # the evidence, encrypted
    assert runtime.store.vault.decrypt(bad.raw, f"message:{bad.id}:raw") == raw
    timeline = show(runtime.store, bad.id)
    assert timeline is not None
    (event,) = [e for e in timeline["events"] if e["kind"] == "quarantined"]
    assert "1-deep.eml" in event["reason"]
    assert not path.exists()  # acknowledged: it no longer blocks the folder


def test_symlinks_fifos_and_devices_are_never_read(runtime: Runtime, tmp_path: Path) -> None:  # noqa: F811
    base = runtime.config.base_dir
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRET-HASH:19000:0:99999:7:::\n", encoding="utf-8")
    folder = base / "drop"
    folder.mkdir(exist_ok=True)
    (folder / "shadow.xml").symlink_to(secret)
    (folder / "zero.eml").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe.eml")
    drop(base, "good.eml", EML)
    asyncio.run(asyncio.wait_for(run_once(runtime), 60))
    (only,) = messages(runtime)
    assert only.status == "held" and only.title == "Momsangivelse for 3. kvartal"
    # Nothing was stored from the link target, the device or the FIFO.
    with runtime.store.read() as session:
        keys = {m.provider_message_id for m in session.exec(select(Message))}
    assert len(keys) == 1


def test_a_symlink_swapped_in_after_the_listing_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    secret = tmp_path / "secret.eml"
    secret.write_bytes(EML)
    (folder / "a.eml").symlink_to(secret)
    connector = FolderConnector(FolderSettings(path=folder), _context(tmp_path))
    with pytest.raises(PermanentError, match="symbolic link") as caught:
        asyncio.run(connector.fetch(MessageRef(key="sha256:x", handle="a.eml")))
    assert caught.value.raw is None  # the target's bytes are not even read as evidence


def test_an_oversize_file_is_quarantined_with_its_first_bytes_as_evidence(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    big = EML + b"x" * 5000
    (folder / "big.eml").write_bytes(big)
    settings = FolderSettings(path=folder, max_bytes=1000, evidence_bytes=600)
    connector = FolderConnector(settings, _context(tmp_path))
    with pytest.raises(PermanentError, match="exceeds max_bytes") as caught:
        asyncio.run(connector.fetch(MessageRef(key="sha256:x", handle="big.eml")))
    assert caught.value.raw == big[:600]
    assert "first 600 bytes are kept" in str(caught.value)


def test_a_letter_over_its_time_budget_is_quarantined_and_the_next_goes_through(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from connectors import watchdog

    watchdog.configure(watchdog.Budget(seconds=1.5, workers=1))
    # The worker gets the parser by name: a module-level one that never returns for *stuck* files.
    monkeypatch.setattr(files, "parse_message_file", workloads.stuck_or_parse)
    base = runtime.config.base_dir
    path = drop(base, "1-stuck.eml", EML.replace(b"moms-1", b"stuck"))
    os.utime(path, (time.time() - 60, time.time() - 60))
    drop(base, "2-good.eml", EML)
    started = time.monotonic()
    try:
        asyncio.run(run_once(runtime))
    finally:
        watchdog.configure(watchdog.Budget())
    assert time.monotonic() - started < 30
    statuses = sorted(m.status for m in messages(runtime))
    assert statuses == ["held", "quarantined"]
    (bad,) = [m for m in messages(runtime) if m.status == "quarantined"]
    assert "longer than the budget" in (bad.status_reason or "")


def _context(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(mailbox="drop", organisation="12345678", base_dir=tmp_path, state=MemoryState())


def test_a_stuck_poll_shows_in_the_metrics_while_it_runs(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from core.metrics import IN_FLIGHT

    async def stuck_listing(self: FolderConnector, cursor: str | None) -> object:
        await asyncio.Event().wait()  # a provider that never answers
        raise AssertionError("unreachable")

    async def scenario() -> float:
        monkeypatch.setattr(FolderConnector, "list_new", stuck_listing)
        await runtime.dispatcher.dispatch(all_due=True)
        await asyncio.sleep(1.0)
        age = IN_FLIGHT.oldest()["poll"]
        for task in list(runtime.dispatcher.running.values()):
            task.cancel()
        await asyncio.gather(*runtime.dispatcher.running.values(), return_exceptions=True)
        return age

    assert asyncio.run(scenario()) >= 0.9
    assert IN_FLIGHT.oldest()["poll"] == 0.0
