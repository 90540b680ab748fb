"""`postbud config check`: the configuration and everything `run` loads with it, every problem at once."""

from __future__ import annotations

import typer

from postbud.cli.common import ConfigOpt, OperatorGroup, config_of, err, out, say

app = typer.Typer(no_args_is_help=True, help="Validate the configuration.", cls=OperatorGroup)


@app.command("check")
def check_cmd(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Check the configuration and everything `run` loads with it (rules, recipients, secrets, keyring);
    print every problem as file:line: key: message, exit 1 if there is any."""
    from collector.addressing import foreign_cvr_warnings
    from postbud.preflight import check_config

    cfg = config_of(ctx, config)
    problems = check_config(cfg)
    for warning in foreign_cvr_warnings(cfg):  # allowed, but another company's mail may arrive here
        err.print(f"warning: {warning}", highlight=False, markup=False)
    for problem in problems:
        say(str(problem))
    if problems:
        raise typer.Exit(1)
    mailboxes = sum(len(o.mailboxes) for o in cfg.organisations)
    out.print(f"{cfg.path}: ok ({len(cfg.organisations)} organisations, {mailboxes} mailboxes)", highlight=False)
