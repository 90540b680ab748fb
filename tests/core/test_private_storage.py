"""What is stored about a sender stays private: owner-only files, CPR numbers masked, one keyring variable."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.storage.db import make_engine
from core.storage.models import Attachment, Message, TraceEvent
from core.storage.vault import Keyring, VaultError, load_keyring
from postbud.runtime import Runtime
from tests.collector.test_folder_collection import drop, messages, run_once
from tests.collector.test_folder_collection import runtime as runtime  # noqa: F401 - the fixture

CPR = "0102031234"
WITH_CPR_ATTACHMENT = f"""From: Kommunen <post@kommune.dk>
To: post@test.dk
Subject: Bevilling
Message-ID: <bevilling-1@kommune.dk>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

Se vedhæftet.
--b
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="afgoerelse {CPR}.txt"

indhold
--b--
""".encode()


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_folder_are_owner_only_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    database = tmp_path / "new" / "var" / "postbud.db"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert _mode(database) == 0o600
    assert _mode(database.parent) == 0o700 and _mode(database.parent.parent) == 0o700
    for sidecar in database.parent.glob("postbud.db-*"):
        assert _mode(sidecar) == 0o600, sidecar
    engine.dispose()


def test_postbud_keyring_is_a_path_and_the_file_is_created_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    path = tmp_path / "keys" / "keyring.json"
    monkeypatch.setenv("POSTBUD_KEYRING", str(path))
    created = load_keyring(tmp_path / "elsewhere.json", create=True)
    assert path.is_file() and not (tmp_path / "elsewhere.json").exists()
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert load_keyring(tmp_path / "elsewhere.json", create=False) == created
    monkeypatch.setenv("POSTBUD_KEYRING", Keyring.generate().to_json())
    with pytest.raises(VaultError, match="path, not its JSON"):
        load_keyring(path, create=False)


def test_cpr_numbers_are_masked_in_stored_reasons_and_attachment_names(runtime: Runtime) -> None:  # noqa: F811
    base = runtime.config.base_dir
    drop(base, f"kunde-{CPR}.xml", f"<m>{CPR}<oops".encode())
    drop(base, "good.eml", WITH_CPR_ATTACHMENT)
    asyncio.run(run_once(runtime))
    quarantined = [m for m in messages(runtime) if m.status == "quarantined"]
    assert len(quarantined) == 1
    with runtime.store.read() as session:
        reasons = [m.status_reason or "" for m in session.exec(select(Message))]
        reasons += [e.reason or "" for e in session.exec(select(TraceEvent))]
        reasons += [json.dumps(e.detail) for e in session.exec(select(TraceEvent))]
        names = [a.name for a in session.exec(select(Attachment))]
    assert any("kunde-[cpr].xml" in r for r in reasons)
    assert not [r for r in reasons if CPR in r]
    assert "afgoerelse [cpr].txt" in names and not [n for n in names if CPR in n]
