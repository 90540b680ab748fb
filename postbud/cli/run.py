"""`postbud run`: the daemon, or one pass of every stage."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from postbud.cli import common
from postbud.cli.common import ConfigOpt, OperatorGroup, config_of

if TYPE_CHECKING:
    from core.config import Config
    from postbud.preflight import Problem

app = typer.Typer(add_completion=False, cls=OperatorGroup)


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run every stage until no work is left, then exit.")] = False,
) -> None:
    """Run the daemon (or one pass of every stage with --once)."""
    gc.disable()  # while the daemon's modules are imported: collecting then found no garbage worth the time
    try:
        cfg = _ready_to_serve(ctx, config)
        from postbud.service import serve

        # What is alive now (modules, classes, functions: most of what the process will ever hold)
        # lives as long as the process: kept out of every later collection, which otherwise walks
        # all of it each time the oldest generation is collected.
        gc.freeze()
    finally:
        gc.enable()
    asyncio.run(serve(cfg, once=once, force_exit=True))


def _ready_to_serve(ctx: typer.Context, config: Path | None) -> Config:
    """The checked configuration, logging set up and the parse workers starting; exits on a fatal problem."""
    from core import logs
    from postbud.preflight import check_config

    cfg = config_of(ctx, config)
    problems = check_config(cfg)
    if problems:  # the console (rich) is loaded only when there is something to say
        _report(problems)
    logs.configure(cfg.logging.level, cfg.logging.format)
    # Before the daemon's modules are imported: the parse workers' own start (a fork server importing
    # the parsers, then the forks) takes that long too, and runs beside it on the other core.
    from postbud.parsing import start_parse_workers

    start_parse_workers(cfg)
    return cfg


def _report(problems: Sequence[Problem]) -> None:
    """Each problem on stderr; exits when one of them keeps the daemon from starting."""
    err = common.err
    for problem in problems:
        level = "error" if problem.fatal else "warning"
        err.print(f"{level}: {problem}" + ("" if problem.fatal else f" ({problem.mailbox} does not start)"),
                  highlight=False, markup=False)
    if any(p.fatal for p in problems):
        err.print("  postbud does not start with these problems; fix them (`postbud config check` lists them)",
                  highlight=False, markup=False)
        raise typer.Exit(1)
