"""A command run from the command line mounts its own module alone, and gets the same command as the
full `postbud` (postbud/cli/root.py)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from postbud.cli.app import app
from postbud.cli.root import GROUPS, ROOT_COMMANDS, app_for, command_of

runner = CliRunner()


def commands(root: typer.Typer) -> list[str]:
    return list(getattr(typer.main.get_command(root), "commands", {}))


def test_the_table_names_every_command_of_the_root_and_nothing_else() -> None:
    # a command added to a module that holds root commands must be named in ROOT_COMMANDS
    assert sorted(commands(app)) == sorted([*GROUPS, *ROOT_COMMANDS])


@pytest.mark.parametrize("name", [*GROUPS, *ROOT_COMMANDS])
def test_a_command_alone_is_the_command_of_the_full_root(name: str) -> None:
    alone = app_for(["-c", "postbud.toml", name, "--help"])
    module, _ = ROOT_COMMANDS.get(name, (name, ""))
    holders = [n for n, (m, _) in ROOT_COMMANDS.items() if m == module] if name in ROOT_COMMANDS else [name]
    assert commands(alone) == [n for n in commands(app) if n in holders]
    assert (runner.invoke(alone, [name, "--help"], prog_name="postbud").output
            == runner.invoke(app, [name, "--help"], prog_name="postbud").output)


@pytest.mark.parametrize(("args", "name"), [
    (["run", "--once"], "run"),
    (["-c", "run", "status"], "status"),  # -c takes a value, even one that looks like a command
    (["--config=x.toml", "--debug", "recipients", "group", "list"], "recipients"),
    (["--help"], None),
    ([], None),
    (["no-such-command"], None),
])
def test_the_command_is_the_first_word_that_is_no_root_option_or_its_value(args: list[str], name: str | None) -> None:
    assert command_of(args) == name


def test_help_and_mistakes_get_every_command() -> None:
    assert commands(app_for(["--help"])) == commands(app)
    assert commands(app_for(["no-such-command"])) == commands(app)


def test_run_loads_neither_the_console_nor_the_http_stack_nor_what_main_keeps_out() -> None:
    """Start-up: `run` prints nothing when its configuration is sound, so rich stays unloaded (the
    consoles are made at their first use, postbud/cli/common.py); `run --once` serves no HTTP, so
    starlette stays unloaded (postbud/runtime.py); httpx's own CLI and trio are kept out by `main`."""
    import subprocess
    import sys

    probe = ("import sys\n"
             "from postbud.cli import _UNUSED_MODULES\n"
             "for name in _UNUSED_MODULES: sys.modules.setdefault(name, None)\n"
             "from postbud.cli.root import app_for\n"
             "app_for(['run', '--once'])\n"
             "import core.logs, postbud.parsing, postbud.preflight, postbud.service\n"
             "print(sorted({m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}))\n")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    for absent in ("rich", "starlette", "pygments", "trio"):
        assert f"'{absent}'" not in loaded
