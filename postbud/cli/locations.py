"""`postbud locations …`: trusted locations — the networks each organisation admits its console users and
API tokens from (postbud.locations): list, add, remove. Each change is audited."""

from __future__ import annotations

import socket
from typing import Annotated, Optional

import typer

from postbud.cli.common import ConfigOpt, OperatorError, USAGE, actor, config_of, out, print_json, table

app = typer.Typer(no_args_is_help=True, help="Trusted locations: list, add, remove authorised networks.")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    org: Annotated[Optional[str], typer.Option("--org", help="One organisation (CVR or name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Every authorised network: from the config file, and those authorised by a link or an administrator."""
    from postbud.locations import authorised, guarded
    from postbud.names import organisation
    from postbud.runtime import open_store

    cfg = config_of(ctx, config)
    cvrs = [organisation(cfg, org)] if org else [o.cvr for o in cfg.organisations]
    on = set(guarded(cfg, cvrs))
    rows = [{"organisation": r.organisation, "network": r.network, "source": r.source, "enforced": r.organisation in on,
             "added_by": r.added_by, "added_from": r.added_from,
             "added_at": r.added_at.isoformat() if r.added_at else None}
            for r in authorised(open_store(cfg), cfg, cvrs)]
    if as_json:
        print_json(rows)
        return
    shown = table("organisation", "network", "source", "enforced", "added by", "from", "at",
                  whole=("organisation", "network", "source", "enforced", "at"))
    for r in rows:
        shown.add_row(str(r["organisation"]), str(r["network"]), str(r["source"]), "yes" if r["enforced"] else "no",
                      str(r["added_by"] or ""), str(r["added_from"] or ""), str(r["added_at"] or "")[:16].replace("T", " "))
    out.print(shown)
    for cvr in cvrs:
        if cvr not in on:
            out.print(f"{cvr}: trusted_locations is off; these networks are not enforced", highlight=False)


def _change(ctx: typer.Context, config: ConfigOpt, org: str, network: str, by: str | None, *, remove: bool) -> None:
    from postbud import locations
    from postbud.names import organisation
    from postbud.runtime import open_store

    cfg = config_of(ctx, config)
    cvr = organisation(cfg, org)
    try:
        chosen = locations.normalise(network)
    except locations.LocationError as exc:
        raise OperatorError(str(exc), exit_code=USAGE) from None
    store = open_store(cfg)
    # The audit's "from where" for a command is the host it ran on.
    where = f"cli@{socket.gethostname()}"[:64]
    try:
        if remove:
            locations.remove(store, cfg, cvr, chosen, actor=actor(by), address=where, via="cli")
            out.print(f"{chosen} removed from {cvr}", highlight=False)
        elif locations.authorise(store, cfg, cvr, chosen, actor=actor(by), address=where, via="cli"):
            out.print(f"{chosen} authorised for {cvr}", highlight=False)
        else:
            out.print(f"{chosen} was authorised for {cvr} already", highlight=False)
    except locations.LocationError as exc:
        raise OperatorError(str(exc)) from None


By = Annotated[Optional[str], typer.Option("--by", help="Who, for the audit trail (default: $POSTBUD_USER or login).")]


@app.command("add")
def add_cmd(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG", help="The organisation (CVR or name).")],
    network: Annotated[str, typer.Argument(metavar="NETWORK", help="An address or CIDR, IPv4 or IPv6.")],
    by: By = None,
    config: ConfigOpt = None,
) -> None:
    """Authorise a network for an organisation (audited)."""
    _change(ctx, config, org, network, by, remove=False)


@app.command("remove")
def remove_cmd(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG", help="The organisation (CVR or name).")],
    network: Annotated[str, typer.Argument(metavar="NETWORK", help="The network as `locations list` shows it.")],
    by: By = None,
    config: ConfigOpt = None,
) -> None:
    """Withdraw a network authorised at run time (audited); sessions from it end at their next request."""
    _change(ctx, config, org, network, by, remove=True)
