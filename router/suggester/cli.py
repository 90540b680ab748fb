"""`postbud model ...`: commands about the suggester (mounted by the main CLI as the `model` group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from router.suggester.errors import SuggesterError
from router.suggester.evaluation import evaluate as run_evaluation

app = typer.Typer(help="The ML suggester: evaluate it on a labelled corpus.", no_args_is_help=True)
_err = Console(stderr=True)

_ROWS = (
    ("accuracy", "accuracy", "{:.4f}"),
    ("macro_f1", "macro-F1", "{:.4f}"),
    ("coverage_at_99", "auto-routed at 99 % precision", "{:.1%}"),
    ("precision_at_99", "  precision reached on test", "{:.4f}"),
    ("coverage_at_95", "auto-routed at 95 % precision", "{:.1%}"),
    ("precision_at_95", "  precision reached on test", "{:.4f}"),
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
        Path, typer.Argument(help="JSONL (plain or .gz): label, split, title, sender, body.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Train on the corpus's train split, score its test split (or a stratified 20 % hold-out)."""
    try:
        report = run_evaluation(dataset, progress=lambda text: _err.print(f"[dim]{text}[/dim]"))
    except SuggesterError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
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
