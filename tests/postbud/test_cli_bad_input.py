"""Every command in the README's table, given bad input (unknown ids, organisations, recipients,
statuses, channels, dates, missing files), answers with one error line and a non-zero exit: 2 for a
usage error, 1 for a failure; never a traceback, never exit 0. Nothing is written for a typo."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from postbud.cli import invoke
from postbud.cli.app import app
from sandbox.demo import write_demo_recipients
from sandbox.mailserver import ensure_demo_recipient

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "rules" / "examples" / "tests" / "messages"


@dataclass(frozen=True)
class World:
    folder: Path
    config: str
    held: str  # a held message's id
    broken: str  # a config whose rules directory is missing
    bad_db: str  # a config whose database cannot be reached


def config_text(database: str, rules: str = "rules") -> str:
    return f"""
[database]
url = "{database}"
[http]
enabled = false
[rules]
directory = "{rules}"
[recipients]
file = "recipients.toml"
[model]
enabled = true
min_examples = 10
[delivery]
smtp_port = 1
smtp_timeout_seconds = 1
[[organisations]]
cvr = "12345678"
name = "Eksempel Holding ApS"
default_route = ["frontdesk"]
  [[organisations.mailboxes]]
  name = "drop"
  type = "folder"
  path = "drop"
  settle_seconds = 0
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The example rules and demo recipients (none approved); the example letters collected and routed."""
    folder = tmp_path_factory.mktemp("cli")
    write_demo_recipients(folder / "recipients.toml", ["12345678"], ensure_demo_recipient(folder / "keys"))
    shutil.copytree(ROOT / "rules" / "examples", folder / "rules", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(FIXTURES, folder / "drop")
    (folder / "postbud.toml").write_text(config_text("sqlite:///var/postbud.db"))
    (folder / "broken.toml").write_text(config_text("sqlite:///var/postbud.db", rules="no-such-rules"))
    (folder / "bad-db.toml").write_text(config_text("postgresql://nobody@127.0.0.1:1/none"))
    (folder / "garbage.xml").write_text("not a message")
    (folder / "answer.pdf").write_bytes(b"%PDF-1.4")
    config = str(folder / "postbud.toml")
    assert invoke(["-c", config, "run", "--once"]) == 0
    return World(folder, config, "", str(folder / "broken.toml"), str(folder / "bad-db.toml"))


def held_id(world: World, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert invoke(["-c", world.config, "trace", "search", "--status", "held", "--json"]) == 0
    return str(json.loads(capsys.readouterr().out)[0]["id"])


# (command as the README's table names it, arguments after it, expected exit code); {c} is the config,
# {held} a held message, {broken}/{bad_db} the broken configs, {dir} the test's folder.
CASES: list[tuple[str, str, int]] = [
    ("run", "-c {broken} --once", 1),
    ("status", "-c {bad_db}", 1),
    ("config check", "-c {broken}", 1),
    ("db upgrade", "-c {bad_db}", 1),
    ("keys rotate", "-c {c} --batch-size 0", 2),
    ("trace search", "-c {c} --since yesterday", 2),
    ("trace search", "-c {c} --since 5x", 2),
    ("trace search", "-c {c} --until 2026-13-45", 2),
    ("trace search", "-c {c} --status bogus", 2),
    ("trace search", "-c {c} --channel fax", 2),
    ("trace search", "-c {c} --cvr 99999999", 1),
    ("trace search", "-c {c} --mailbox dorp", 1),
    ("trace search", "-c {c} --provider ngpd", 1),
    ("trace search", "-c {c} --limit 0", 2),
    ("trace show", "-c {c} abc", 1),
    ("trace show", "-c {c} ffffffffff", 1),
    ("trace download", "-c {c} ffffffffff -o {dir}/out", 1),
    ("trace download", "-c {c} {held} -o {dir}/answer.pdf", 2),
    ("trace resend", "-c {c} {held} --to nosuch", 1),
    ("trace resend", "-c {c} {held} --to soren --channel fax", 2),
    ("trace resend", "-c {c} ffffffffff", 1),
    ("inspect", "{dir}/missing.xml", 2),
    ("inspect", "{dir}/garbage.xml", 1),
    ("reply", "-c {c} ffffffffff --file {dir}/answer.pdf", 1),
    ("reply", "-c {c} {held} --file {dir}/missing.pdf", 2),
    ("rules check", "{dir}/no-such-rules", 1),
    ("rules test", "{dir}/missing.xml --rules {dir}/rules", 2),
    ("rules test", f"{FIXTURES}/skat-moms.xml -c {{c}} --received lasttuesday", 2),
    ("rules test", f"{FIXTURES}/skat-moms.xml -c {{c}} --org 99999999", 1),
    ("rules test-suite", "{dir}/no-such-tests --rules {dir}/rules", 1),
    ("rules replay", "-c {c} --since yesterday", 2),
    ("rules replay", "-c {c} --rules {dir}/no-such-rules", 1),
    ("queue list", "-c {c} --org 99999999", 1),
    ("queue show", "-c {c} ffffffffff", 1),
    ("queue assign", "-c {c} ffffffffff soren", 1),
    ("queue assign", "-c {c} {held} nosuch", 1),
    ("queue assign", "-c {c} {held} soren", 1),  # listed, but not approved
    ("queue correct", "-c {c} ffffffffff soren", 1),
    ("queue correct", "-c {c} {held} nosuch", 1),
    ("queue correct", "-c {c} {held} soren", 1),  # listed, but not approved
    ("model evaluate", "{dir}/missing.jsonl", 2),
    ("model train", "-c {c} --org 99999999", 1),
    ("model show", "-c {c} --org 99999999", 1),
    ("recipients invite", "-c {c} 99999999 Søren soren@example.dk", 1),
    ("recipients invite", "-c {c} 12345678 'Ny Person' not-an-email", 2),
    ("recipients confirm", "-c {c} not-a-code", 1),
    ("recipients list", "-c {c} --org 99999999", 1),
    ("recipients approve", "-c {c} 12345678 nosuch", 1),
    ("recipients approve", "-c {c} 99999999 soren", 1),
    ("recipients revoke", "-c {c} 12345678 nobody", 1),
    ("recipients revoke", "-c {c} 99999999 soren", 1),
    ("recipients add", "-c {c} 12345678 finance --name Økonomi", 1),  # listed already
    ("recipients add", "-c {c} 12345678 ny --name Ny --channel fax", 2),
    ("recipients add", "-c {c} 99999999 ny --name Ny", 1),
    ("recipients set", "-c {c} 12345678 nobody --name X", 1),
    ("recipients set", "-c {c} 12345678 finance --clear name", 2),
    ("recipients remove", "-c {c} 12345678 frontdesk", 1),  # the organisation's default_route
    ("recipients remove", "-c {c} 12345678 nobody", 1),
    ("recipients group", "set -c {c} 12345678 board nobody", 1),
    ("recipients group", "remove -c {c} 12345678 nogroup", 1),
    ("recipients show-version", "-c {dir}/missing.toml", 1),
    ("recipients notifications", "list -c {c} --org 99999999", 1),
    ("recipients notifications", "set -c {c} 12345678 nobody --off", 1),
    ("recipients notifications", "set -c {c} 12345678 reception", 2),
    ("recipients notifications", "set -c {c} 99999999 reception --on", 1),
    ("purge", "-c {dir}/missing.toml", 1),
    ("erase", "-c {c} --cpr 123", 2),
    ("erase", "-c {c}", 2),
    ("stats", "-c {c} --by week", 2),
    ("stats", "-c {c} --org 99999999", 1),
    ("connectors list", "--bogus", 2),
    ("sandbox", "-c {dir}/missing.toml", 1),
    ("locations list", "-c {c} --org 99999999", 1),
    ("locations add", "-c {c} 12345678 the-office", 2),
    ("locations add", "-c {c} 99999999 192.0.2.0/24", 1),
    ("locations remove", "-c {c} 12345678 192.0.2.0/24", 1),
]


def readme_commands() -> set[str]:
    """The commands the README's table lists, as `group sub` or `command`."""
    root = typer.main.get_command(app)
    groups = {name for name, cmd in getattr(root, "commands", {}).items() if hasattr(cmd, "commands")}
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    found = set()
    for cell in re.findall(r"^\| `postbud (.+?)\` \|", section, flags=re.MULTILINE):
        parts = [p.strip(" `") for p in cell.split(" / ")]
        first = parts[0].split()
        group = first[0] if first[0] in groups else None
        for i, part in enumerate(parts):
            words = part.split() if i else first
            if group is None:
                found.add(words[0])
            else:
                found.add(f"{group} {words[1] if i == 0 else words[0]}")
    return found


def test_the_cases_cover_every_command_in_the_readme() -> None:
    listed = readme_commands()
    assert {"status", "trace search", "recipients revoke", "stats", "sandbox"} <= listed
    assert listed - {command for command, _, _ in CASES} == set()


@pytest.mark.parametrize(("command", "args", "code"), CASES, ids=[f"{c} {a}" for c, a, _ in CASES])
def test_bad_input_gets_one_error_line_and_an_exit_code(world: World, capsys: pytest.CaptureFixture[str],
                                                        command: str, args: str, code: int) -> None:
    held = held_id(world, capsys) if "{held}" in args else ""
    line = args.format(c=world.config, held=held, broken=world.broken, bad_db=world.bad_db, dir=world.folder)
    import shlex

    argv = [*command.split(), *shlex.split(line)]
    capsys.readouterr()
    exit_code = invoke(argv)
    output = capsys.readouterr()
    assert "Traceback" not in output.out + output.err
    assert exit_code == code, (argv, output.err)
    first = output.err.splitlines()[0] if output.err.strip() else ""
    assert first.startswith("error: "), (argv, output.err)
    # one line says it; more lines may only be the problems of a config, or indented candidates
    assert all(line.startswith(("error: ", "  ")) for line in output.err.splitlines()), output.err


def test_a_typo_writes_nothing(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(["-c", world.config, "model", "train", "--org", "99999999"]) == 1
    assert not (world.folder / "var" / "models" / "99999999.model").exists()
    capsys.readouterr()
    assert invoke(["-c", world.config, "recipients", "list", "--json"]) == 0
    listed = {(r["organisation"], r["id"]) for r in json.loads(capsys.readouterr().out)}
    assert ("99999999", "soren") not in listed and ("12345678", "nobody") not in listed


def test_a_name_is_resolved_not_invented(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """`revoke 12345678 Søren` revokes soren (Søren Østergaard), and creates no record named Søren."""
    assert invoke(["-c", world.config, "recipients", "revoke", "12345678", "Søren"]) == 0
    assert "soren of 12345678 is revoked" in capsys.readouterr().out
    assert invoke(["-c", world.config, "recipients", "list", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["soren"]["approval"] == "revoked" and "Søren" not in rows


def test_debug_shows_the_traceback(world: World) -> None:
    from postbud.cli.common import set_debug

    try:
        with pytest.raises(Exception):
            invoke(["--debug", "-c", world.bad_db, "status"])
    finally:
        # --debug is the process's (a command is a process); tests that invoke a group without the
        # root app's callback would otherwise inherit it and see tracebacks instead of exit codes.
        set_debug(False)
