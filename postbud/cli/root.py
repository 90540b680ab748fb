"""The `postbud` root command and which module holds each of its commands, so that a command loads its
own module alone: `postbud run` does not import the other eighteen command modules (what they import
besides, the rules parser and the letter readers among it, was a tenth of run's start-up)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import cache
from typing import Annotated

import typer

from postbud.cli.common import CliContext, ConfigOpt, OperatorGroup, set_debug

_HELP = "The `postbud` command: the daemon, configuration, database, keys, trace and inspection commands."

# group name -> help shown in `postbud --help` when it differs from the group's own; its module is
# postbud.cli.<name>, whose `app` it is. In the order `postbud --help` lists them.
GROUPS: dict[str, str | None] = {
    "config": None,
    "db": None,
    "keys": None,
    "trace": None,
    "connectors": None,
    "rules": "Routing rules: check, test, test-suite, replay.",
    "queue": None,
    "model": "The ML suggester: evaluate on a corpus, train on placements.",
    "recipients": "Recipients: add, set, remove, group; invite, confirm, list, approve, revoke.",
    "users": None,
    "locations": None,
}
# command on the root itself -> the module (postbud.cli.<module>) and its Typer that holds it;
# tests/postbud/test_cli_root.py holds this table to what the modules register.
ROOT_COMMANDS: dict[str, tuple[str, str]] = {
    "purge": ("ops", "ops_app"),
    "erase": ("ops", "ops_app"),
    "stats": ("ops", "ops_app"),
    "run": ("run", "app"),
    "status": ("status", "app"),
    "inspect": ("inspect", "app"),
    "reply": ("reply", "app"),
    "sandbox": ("sandbox", "app"),
}
# the root's own options that take a value (the command's name is the first word that is neither)
_VALUED = ("-c", "--config")


def root(
    ctx: typer.Context,
    config: ConfigOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error "
                                        "(allowed anywhere on the line).")] = False,
) -> None:
    """postbud collects, routes, delivers and traces a company's digital mail."""
    set_debug(debug)
    ctx.obj = CliContext(config)


def command_of(args: Sequence[str]) -> str | None:
    """The command `postbud ARGS...` names (None: only root options, or one the root does not know)."""
    words = iter(args)
    for word in words:
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in GROUPS or word in ROOT_COMMANDS else None
    return None


def app_for(args: Sequence[str]) -> typer.Typer:
    """The root with the command `args` names alone, or with every command (help, a mistake)."""
    name = command_of(args)
    return build([name] if name is not None else [*GROUPS, *ROOT_COMMANDS])


def build(names: Sequence[str]) -> typer.Typer:
    """A root command with these commands and groups, each mounted as `postbud --help` lists it."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, help=_HELP, cls=OperatorGroup)
    app.callback()(root)
    for name in (n for n in GROUPS if n in names):
        help_text = GROUPS[name]
        if help_text is None:
            app.add_typer(_group(name), name=name)
        else:
            app.add_typer(_group(name), name=name, help=help_text)
    holders = dict.fromkeys(ROOT_COMMANDS[n] for n in ROOT_COMMANDS if n in names)  # once each, in order
    for module, attribute in holders:
        holder: typer.Typer = getattr(importlib.import_module(f"postbud.cli.{module}"), attribute)
        app.registered_commands.extend(holder.registered_commands)
    return app


@cache  # a group is put together once: its commands are added to the module's Typer
def _group(name: str) -> typer.Typer:
    group: typer.Typer = importlib.import_module(f"postbud.cli.{name}").app
    if name == "recipients":
        from postbud.cli import notifications, recipients_file

        # The recipients file's editing commands sit beside the approval workflow's, in their own
        # module; `postbud recipients notifications …` lives in its own module too.
        group.registered_commands.extend(recipients_file.app.registered_commands)
        group.add_typer(recipients_file.group_app, name="group")
        group.add_typer(notifications.app, name="notifications")
    return group
