"""`postbud run`: the daemon, or one pass of every stage."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from postbud.cli.common import ConfigOpt, config_of

app = typer.Typer(add_completion=False)


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run every stage until no work is left, then exit.")] = False,
) -> None:
    """Run the daemon (or one pass of every stage with --once)."""
    from core import logs
    from postbud.service import serve

    cfg = config_of(ctx, config)
    logs.configure(cfg.logging.level, cfg.logging.format)
    asyncio.run(serve(cfg, once=once))
