"""`postbud connectors list` and `probe`: the installed mailbox connectors; what a mailbox's credentials see."""

from __future__ import annotations

from typing import Annotated

import typer

from core.config import Config
from postbud.cli.common import ConfigOpt, OperatorError, OperatorGroup, config_of, out, print_json

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


@app.command("probe")
def probe_cmd(
    ctx: typer.Context,
    mailbox: Annotated[str, typer.Argument(help="The mailbox: NAME, or CVR/NAME when names repeat.")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Ask the provider what this mailbox's credentials can see (mit.dk: every mailbox with its id,
    data source, owner name and any type field, and which one the configuration picks)."""
    import asyncio

    from connectors.base import ConnectorError

    cfg = config_of(ctx, config)
    try:
        seen = asyncio.run(_probe(cfg, mailbox))
    except (LookupError, ConnectorError) as exc:
        raise OperatorError(str(exc)) from None
    if as_json:
        print_json(seen)
        return
    for entry in seen:
        mark = "*" if entry.pop("chosen", "") else " "
        out.print(f"{mark} " + "  ".join(f"{k}={v}" for k, v in entry.items()), highlight=False)
    if not seen:
        out.print("the provider lists nothing for these credentials", highlight=False)


async def _probe(cfg: Config, wanted: str) -> list[dict[str, str]]:
    """Build the mailbox's connector as the daemon would (its stored state included) and probe it."""
    from collector.ledger import sync_mailboxes
    from collector.state import MailboxState
    from connectors.base import ConnectorContext
    from connectors.registry import build
    from postbud.runtime import open_store

    cvr, _, name = wanted.rpartition("/")
    found = [(org, mb) for org in cfg.organisations for mb in org.mailboxes
             if mb.name == name and cvr in ("", org.cvr)]
    if len(found) != 1:
        raise LookupError(f"{len(found) or 'no'} configured mailboxes are called {wanted!r}"
                          + ("; give CVR/NAME" if found else ""))
    org, mb = found[0]
    store = open_store(cfg)
    try:
        key = next(k for k in sync_mailboxes(store, cfg) if k.organisation_cvr == org.cvr and k.name == mb.name)
        # The daemon's own state: a token refreshed here is saved where the daemon finds it.
        context = ConnectorContext(mailbox=mb.name, organisation=org.cvr, base_dir=cfg.base_dir,
                                   state=MailboxState(store, key.id), organisation_name=org.name)
        connector = build(mb, context)
        try:
            probe = getattr(connector, "probe", None)
            if probe is None:
                raise LookupError(f"the {mb.type} connector has nothing to probe")
            seen: list[dict[str, str]] = await probe()
        finally:
            await connector.aclose()
        return seen
    finally:
        store.dispose()
