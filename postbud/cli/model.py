"""`postbud model …`: evaluate the ML suggester on a labelled corpus; train it on the stored placements and show its state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from postbud.cli.common import ConfigOpt, OperatorError, OperatorGroup, config_of, err, out, print_json

app = typer.Typer(help="The ML suggester: evaluate it on a labelled corpus.", no_args_is_help=True, cls=OperatorGroup)

_ROWS = (
    ("accuracy", "accuracy", "{:.4f}"),
    ("macro_f1", "macro-F1", "{:.4f}"),
    ("coverage_at_99", "auto-routed at 99 % precision", "{:.1%}"),
    ("precision_at_99", "  precision realised on test", "{:.4f}"),
    ("coverage_at_95", "auto-routed at 95 % precision", "{:.1%}"),
    ("precision_at_95", "  precision realised on test", "{:.4f}"),
    ("train_seconds", "training time (s)", "{:.1f}"),
    ("predict_ms", "prediction per message (ms)", "{:.2f}"),
    ("n_train", "training messages", "{}"),
    ("n_test", "test messages", "{}"),
)


@app.callback()
def _group() -> None:
    """The ML suggester: evaluate it on a labelled corpus."""


@app.command()
def evaluate(
    dataset: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL (plain or .gz): label, split, title, sender, body.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="Without test lines, hold out each label's most recent 20 % (time) or a hashed 20 % (random).",
        ),
    ] = "time",
    config: ConfigOpt = None,
) -> None:
    """Train on the corpus's train split, score its test split (or each label's most recent 20 %)."""
    from router.suggester.errors import SuggesterError
    from router.suggester.evaluation import evaluate as run_evaluation

    if split not in ("time", "random"):
        raise OperatorError(f"--split must be time or random, got {split!r}", exit_code=2)
    try:
        report = run_evaluation(
            dataset,
            progress=lambda text: err.print(f"[dim]{text}[/dim]"),
            by="time" if split == "time" else "random",
        )
    except SuggesterError as exc:  # the DATASET argument is unusable
        raise OperatorError(str(exc), exit_code=2) from exc
    if as_json:
        typer.echo(json.dumps(report, sort_keys=True))
        return
    table = Table(title=f"suggester on {dataset.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label, template in _ROWS:
        value = report[key]
        table.add_row(label, "—" if value is None else template.format(value))
    Console().print(table)


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    org: Annotated[Optional[str], typer.Option("--org", help="Only this organisation (CVR).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Train even if the placements did not change.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Train each organisation's model on its confirmed placements (skipped when nothing changed)."""
    from postbud.runtime import open_models, open_store

    from postbud import names

    cfg = config_of(ctx, config)
    cvrs = [names.organisation(cfg, org)] if org else [o.cvr for o in cfg.organisations]  # no model for a typo
    if not cfg.model.enabled:
        raise OperatorError("the model is disabled ([model] enabled = false); enable it to train")
    models = open_models(cfg, open_store(cfg))
    for cvr in cvrs:
        err.print(f"training {cvr} ...")
        outcome = models.train(cvr, force=force)
        state = "trained" if outcome.trained else "skipped"
        automation = (
            f"routes alone above {outcome.threshold:.1%}" if outcome.threshold not in (None, float("inf"))
            else f"no automation: {outcome.reason}"
        )
        out.print(f"{cvr}: {state} on {outcome.examples} examples; {automation}", highlight=False)


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    org: Annotated[Optional[str], typer.Option("--org", help="Only this organisation (CVR).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Each organisation's model: threshold, examples, coverage, realised precision, why not automating."""
    from postbud import names
    from postbud.runtime import open_models, open_store
    from router.model_status import model_status

    cfg = config_of(ctx, config)
    cvrs = [names.organisation(cfg, org)] if org else [o.cvr for o in cfg.organisations]
    models = open_models(cfg, open_store(cfg))
    states = [model_status(models, cvr, target=cfg.model.target_precision) for cvr in cvrs]
    if as_json:
        print_json([s.to_json() for s in states])
        return
    for s in states:
        threshold = "never alone" if s.threshold is None else f"{s.threshold:.4f}"
        out.print(f"[bold]{s.organisation}[/bold]  trained {s.trained_at or '—'}", highlight=False)
        out.print(f"  examples {s.examples}, recipients {s.recipients}; threshold {threshold} "
                  f"(target {s.target_precision:.0%})", highlight=False)
        shown = "—" if s.precision is None else f"{s.precision:.4f} (lower bound {s.precision_lower or 0:.4f})"
        out.print(f"  most recent {s.evidence} letters: coverage {s.coverage:.1%}, precision {shown}",
                  highlight=False)
        realised = "—" if s.realised_precision is None else f"{s.realised_precision:.4f}"
        out.print(f"  last 30 days: {s.routed_alone} routed alone, {s.corrected} corrected, realised "
                  f"precision {realised}", highlight=False)
        out.print("  automating" if s.automating else f"  not automating: {s.why_not}", highlight=False)
