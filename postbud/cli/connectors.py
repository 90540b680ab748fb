"""`postbud connectors list`: the installed mailbox connectors, built-in or plugin."""

from __future__ import annotations

import typer

from postbud.cli.common import ConfigOpt, OperatorError, OperatorGroup, out

app = typer.Typer(no_args_is_help=True, help="Installed mailbox connectors.", cls=OperatorGroup)


@app.command("list")
def list_cmd(config: ConfigOpt = None) -> None:
    """Every installed connector, built-in or plugin."""
    from connectors.registry import RegistryError, discover

    try:
        found = discover()
    except RegistryError as exc:
        raise OperatorError(f"{exc}; uninstall one of the plugins") from None
    for name, registered in sorted(found.items()):
        out.print(f"{name:<10} {registered.origin}", highlight=False)
