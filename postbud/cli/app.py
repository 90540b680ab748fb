"""The `postbud` command: the root, which mounts one module per command group and nothing else."""

from __future__ import annotations

from typing import Annotated

import typer

from postbud.cli import (
    config,
    connectors,
    db,
    inspect,
    keys,
    locations,
    model,
    notifications,
    ops,
    queue,
    recipients,
    recipients_file,
    reply,
    rules,
    run,
    sandbox,
    status,
    trace,
    users,
)
from postbud.cli.common import OperatorGroup, set_debug
from postbud.cli.common import CliContext, ConfigOpt

_HELP = "The `postbud` command: the daemon, configuration, database, keys, trace and inspection commands."
app = typer.Typer(no_args_is_help=True, add_completion=False, help=_HELP, cls=OperatorGroup)

# name -> (group, help shown in `postbud --help` when it differs from the group's own)
GROUPS: dict[str, tuple[typer.Typer, str | None]] = {
    "config": (config.app, None),
    "db": (db.app, None),
    "keys": (keys.app, None),
    "trace": (trace.app, None),
    "connectors": (connectors.app, None),
    "rules": (rules.app, "Routing rules: check, test, test-suite, replay."),
    "queue": (queue.app, None),
    "model": (model.app, "The ML suggester: evaluate on a corpus, train on placements."),
    "recipients": (recipients.app, "Recipients: add, set, remove, group; invite, confirm, list, approve, "
                   "revoke."),
    "users": (users.app, None),
    "locations": (locations.app, None),
}
# modules whose commands sit on the root itself
ROOT_COMMANDS: tuple[typer.Typer, ...] = (ops.ops_app, run.app, status.app, inspect.app, reply.app, sandbox.app)

# The recipients file's editing commands sit beside the approval workflow's, in their own module.
recipients.app.registered_commands.extend(recipients_file.app.registered_commands)
recipients.app.add_typer(recipients_file.group_app, name="group")

# `postbud recipients notifications …` lives in its own module beside the recipients group's
recipients.app.add_typer(notifications.app, name="notifications")
for _name, (_group, _help) in GROUPS.items():
    if _help is None:
        app.add_typer(_group, name=_name)
    else:
        app.add_typer(_group, name=_name, help=_help)
for _commands in ROOT_COMMANDS:
    app.registered_commands.extend(_commands.registered_commands)


@app.callback()
def root(
    ctx: typer.Context,
    config: ConfigOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error "
                                        "(allowed anywhere on the line).")] = False,
) -> None:
    """postbud collects, routes, delivers and traces a company's digital mail."""
    set_debug(debug)
    ctx.obj = CliContext(config)
