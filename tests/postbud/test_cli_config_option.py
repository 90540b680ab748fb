"""-c/--config works before or after the sub-command, for every command; command modules stand alone."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import postbud.cli
from postbud.cli.app import app
from tests.collector.test_folder_collection import EML
from tests.conftest import MakeConfig

runner = CliRunner()
RULES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def leaves(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    # typer may vendor its own click: tell groups by their sub-commands, not by class
    subs = getattr(command, "commands", None)
    if subs is None:
        yield path
        return
    for name, sub in subs.items():
        yield from leaves(sub, (*path, name))


COMMANDS = sorted(leaves(typer.main.get_command(app)))


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_takes_config_after_its_name(path: tuple[str, ...], tmp_path: Path) -> None:
    # click rejects an unknown option while parsing, before the eager --help can answer
    config = tmp_path / "postbud.toml"
    result = runner.invoke(app, [*path, "-c", str(config), "--help"])
    assert result.exit_code == 0, result.output


def test_every_group_runs_with_config_after_the_sub_command(
        make_config: MakeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a config that only -c names: no $POSTBUD_CONFIG, no ./postbud.toml
    cfg = make_config(extra=f'[rules]\ndirectory = "{RULES}"\n')
    assert cfg.path is not None
    c = str(cfg.path)
    monkeypatch.setenv("POSTBUD_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)
    letter = tmp_path / "a.eml"
    letter.write_bytes(EML)

    def ok(*args: str) -> str:
        result = runner.invoke(app, [*args, "-c", c])
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    # WHEN each command group runs with -c after the sub-command THEN it uses that config
    assert c in ok("config", "check")
    assert "database at revision" in ok("db", "upgrade")
    ok("run", "--once")
    assert "active key" in ok("keys", "rotate")
    assert json.loads(ok("trace", "search", "--json")) == []
    assert "folder" in ok("connectors", "list")
    assert "ok (11 rules" in ok("rules", "check")
    assert "0 messages replayed" in ok("rules", "replay")
    assert json.loads(ok("queue", "list", "--json")) == []
    assert "12345678: trained on 0 examples" in ok("model", "train")
    assert json.loads(ok("recipients", "list", "--json")) == []
    assert json.loads(ok("purge", "--dry-run", "--json"))["organisations"]
    assert json.loads(ok("stats", "--json")) == []
    assert json.loads(ok("inspect", str(letter), "--json"))["title"] == "Momsangivelse for 3. kvartal"
    unknown = runner.invoke(app, ["reply", "ffffffffff", "--file", str(letter), "-c", c])
    assert unknown.exit_code == 1 and "no message ffffffffff" in unknown.stderr
    # the same commands still take -c before the sub-command
    before = runner.invoke(app, ["-c", c, "queue", "list", "--json"])
    assert before.exit_code == 0 and json.loads(before.stdout) == []


def test_no_command_module_imports_another() -> None:
    # shared parsing and views live in common.py; only the root (root.py, and app.py, which mounts
    # every command on it) imports the command modules, and none imports the root back
    folder = Path(postbud.cli.__file__).parent
    commands = {p.stem for p in folder.glob("*.py")} - {"__init__", "common"}
    for path in folder.glob("*.py"):
        if path.stem in ("app", "root", "__init__"):  # the root and the entry point
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                reached = {n.removeprefix("postbud.cli.") for n in names if n.startswith("postbud.cli.")}
                assert not reached & commands, f"{path.name} imports {reached & commands}"
