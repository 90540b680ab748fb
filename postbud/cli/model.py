"""`postbud model …`: the suggester's `evaluate` plus `train`, which needs the stored placements."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from postbud.cli.common import config_of, err, out

from router.suggester.cli import app


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    org: Annotated[Optional[str], typer.Option("--org", help="Only this organisation (CVR).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Train even if the placements did not change.")] = False,
) -> None:
    """Train each organisation's model on its confirmed placements (skipped when nothing changed)."""
    from postbud.runtime import open_models, open_store

    config = config_of(ctx)
    models = open_models(config, open_store(config))
    cvrs = [org] if org else [o.cvr for o in config.organisations]
    for cvr in cvrs:
        err.print(f"training {cvr} ...")
        outcome = models.train(cvr, force=force)
        state = "trained" if outcome.trained else "skipped"
        automation = (
            f"routes alone above {outcome.threshold:.1%}" if outcome.threshold not in (None, float("inf"))
            else f"no automation: {outcome.reason}"
        )
        out.print(f"{cvr}: {state} on {outcome.examples} examples; {automation}", highlight=False)
