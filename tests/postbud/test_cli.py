"""The command line: trace search/show JSON contracts, config check, db upgrade, key rotation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlmodel import select
from typer.testing import CliRunner

from core import codec
from postbud.cli.app import app
from core.configfile import load_config
from postbud.runtime import open_store
from postbud.service import serve
from core.storage import migrate
from core.storage.models import Attachment, Message
from tests.collector.test_folder_collection import EML, drop
from tests.conftest import MakeConfig

runner = CliRunner()


def collect_one(make_config: MakeConfig) -> Path:
    config = make_config()
    drop(config.base_dir, "a.eml", EML)
    asyncio.run(serve(config, once=True))
    assert config.path is not None
    return config.path


def test_trace_search_and_show_json(make_config: MakeConfig) -> None:
    path = collect_one(make_config)
    result = runner.invoke(app, ["-c", str(path), "trace", "search", "--json", "--text", "moms"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert {"id", "status", "organisation", "mailbox", "provider_message_id", "title", "sender",
            "received_at"} <= set(row)
    assert row["organisation"] == "12345678" and row["status"] == "held"  # no recipients file

    result = runner.invoke(app, ["trace", "show", row["id"][:10], "--json", "-c", str(path)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["id"] == row["id"]
    assert [e["kind"] for e in shown["events"]][:3] == ["collected", "acknowledged", "routed"]

    nothing = runner.invoke(app, ["-c", str(path), "trace", "search", "--json", "--status", "delivered"])
    assert json.loads(nothing.stdout) == []


def test_config_check_prints_all_errors_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[http]\nlisten = "nowhere"\nport = 1\n')
    result = runner.invoke(app, ["config", "check", "-c", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: http.listen: listen must be HOST:PORT, not 'nowhere'" in result.stderr
    assert f"{bad}:3: http.port: unknown key" in result.stderr


def test_db_upgrade_reports_revision(make_config: MakeConfig) -> None:
    config = make_config()
    result = runner.invoke(app, ["-c", str(config.path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"revision {migrate.head_revision()}" in result.stdout


def test_keys_rotate_reencrypts_everything(make_config: MakeConfig) -> None:
    path = collect_one(make_config)
    result = runner.invoke(app, ["-c", str(path), "keys", "rotate", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    config = load_config(path)
    store = open_store(config)
    active = store.vault.keyring.active
    with store.read() as session:
        message = session.exec(select(Message)).one()
        attachments = list(session.exec(select(Attachment)))
    assert store.vault.key_id(message.content or b"") == active
    assert all(store.vault.key_id(a.content) == active for a in attachments)
    assert "Momsangivelse" in codec.unseal(store.vault, message, attachments).title


def test_inspect_json_has_the_model_field_names(tmp_path: Path) -> None:
    path = tmp_path / "a.eml"
    path.write_bytes(EML)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"message_id", "title", "sender", "recipient", "attention", "documents", "text"} <= set(data)
    assert data["title"] == "Momsangivelse for 3. kvartal"


def test_inspect_reports_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text("<nope")
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 1
    assert "bad.xml" in result.stderr


def test_keys_rotate_while_the_daemon_runs_keeps_every_letter_readable(make_config: MakeConfig) -> None:
    from postbud.daemon import Daemon
    from postbud.runtime import Runtime

    # GIVEN a running daemon that has read the keyring and stored a letter
    path = collect_one(make_config)
    runtime = Runtime.create(load_config(path))
    try:
        # WHEN the operator rotates the key meanwhile
        result = runner.invoke(app, ["-c", str(path), "keys", "rotate", "--batch-size", "1"])
        assert result.exit_code == 0, result.output
        # THEN the daemon reads the re-encrypted letter without a restart, and new work goes on
        with runtime.store.read() as session:
            message = session.exec(select(Message)).one()
            attachments = list(session.exec(select(Attachment)))
        assert "Momsangivelse" in codec.unseal(runtime.store.vault, message, attachments).title
        asyncio.run(Daemon(runtime).run_once())
    finally:
        asyncio.run(runtime.aclose())


def test_keys_rotate_refuses_a_batch_size_below_one(make_config: MakeConfig) -> None:
    path = collect_one(make_config)
    before = load_config(path).encryption.keyring.read_text()
    result = runner.invoke(app, ["-c", str(path), "keys", "rotate", "--batch-size", "0"])
    assert result.exit_code == 2
    assert load_config(path).encryption.keyring.read_text() == before  # no new active key
