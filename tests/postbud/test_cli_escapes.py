"""Nothing a sender controls reaches the operator's terminal raw: escapes and markup are shown, not obeyed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postbud.cli.app import app
from postbud.service import serve
from tests.collector.test_folder_collection import drop
from tests.conftest import MakeConfig

runner = CliRunner()
CLEAR, TITLE, LINK = "\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
HOSTILE_SUBJECT = f"Moms {CLEAR}{TITLE}{LINK} \x1b[31mred\x1b[0m \x9b31m \u202eevil [link=https://evil.example]x[/link]"
HOSTILE = (
    f"From: =?utf-8?q?Skat_=1B[2J?= <noreply@skat.dk>\r\n"
    f"To: post@test.dk\r\nSubject: {HOSTILE_SUBJECT}\r\nMessage-ID: <esc-1@skat.dk>\r\n\r\n"
    "Line one\r\n\x1b]0;body-title\x07 body\r\n"
).encode("utf-8")


@pytest.fixture
def config_path(make_config: MakeConfig) -> Path:
    config = make_config()
    drop(config.base_dir, "esc.eml", HOSTILE)
    asyncio.run(serve(config, once=True))
    assert config.path is not None
    return config.path


def _assert_inert(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output and "\u202e" not in output
    assert "\\x1b" in output  # shown, so the operator sees something was there


def test_trace_search_and_show_show_escapes_instead_of_obeying_them(config_path: Path) -> None:
    search = runner.invoke(app, ["-c", str(config_path), "trace", "search"], env={"COLUMNS": "400"})
    assert search.exit_code == 0, search.output
    _assert_inert(search.output)
    rows = json.loads(runner.invoke(app, ["-c", str(config_path), "trace", "search", "--json"]).stdout)
    (row,) = rows
    assert row["title"].startswith("Moms \x1b[2J")  # the data itself is kept as received
    show = runner.invoke(app, ["-c", str(config_path), "trace", "show", row["id"]])
    assert show.exit_code == 0, show.output
    _assert_inert(show.output)
    assert "[link=https://evil.example]" in show.output  # markup printed as text, not a link


def test_queue_list_and_show_show_escapes(config_path: Path) -> None:
    listing = runner.invoke(app, ["-c", str(config_path), "queue", "list"], env={"COLUMNS": "400"})
    assert listing.exit_code == 0, listing.output
    _assert_inert(listing.output)
    as_json = runner.invoke(app, ["-c", str(config_path), "queue", "list", "--json"])
    assert "\x9b" not in as_json.stdout and "\u202e" not in as_json.stdout
    (item,) = json.loads(as_json.stdout)
    show = runner.invoke(app, ["-c", str(config_path), "queue", "show", item["id"]])
    _assert_inert(show.output)


def test_inspect_shows_escapes(tmp_path: Path) -> None:
    path = tmp_path / "esc.eml"
    path.write_bytes(HOSTILE)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    _assert_inert(result.output)
    as_json = runner.invoke(app, ["inspect", str(path), "--json"])
    assert "\x1b" not in as_json.stdout and "\x9b" not in as_json.stdout
