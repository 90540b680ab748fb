"""`postbud run`: the daemon, or one pass of every stage."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from postbud.cli.common import ConfigOpt, OperatorGroup, config_of, err

app = typer.Typer(add_completion=False, cls=OperatorGroup)


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run every stage until no work is left, then exit.")] = False,
) -> None:
    """Run the daemon (or one pass of every stage with --once)."""
    from core import logs
    from postbud.preflight import check_config

    cfg = config_of(ctx, config)
    problems = check_config(cfg)
    for problem in problems:
        level = "error" if problem.fatal else "warning"
        err.print(f"{level}: {problem}" + ("" if problem.fatal else f" ({problem.mailbox} does not start)"),
                  highlight=False, markup=False)
    if any(p.fatal for p in problems):
        err.print("  postbud does not start with these problems; fix them (`postbud config check` lists them)",
                  highlight=False, markup=False)
        raise typer.Exit(1)
    logs.configure(cfg.logging.level, cfg.logging.format)
    # Before the daemon's modules are imported: the parse workers' own start (a fork server importing
    # the parsers, then the forks) takes that long too, and runs beside it on the other core.
    from postbud.parsing import start_parse_workers

    start_parse_workers(cfg)
    from postbud.service import serve

    asyncio.run(serve(cfg, once=once, force_exit=True))
