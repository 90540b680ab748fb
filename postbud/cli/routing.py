"""`postbud rules …`: the rules' own commands plus `replay`, which needs the stored messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from postbud.cli.common import config_of, err, out

from rules.cli import app as rules_app


@rules_app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Messages received since (ISO date, or 30d / 12h ago).")] = "30d",
    until: Annotated[Optional[str], typer.Option(help="... and before (ISO date, or 7d ago).")] = None,
    rules: Annotated[Optional[Path], typer.Option("--rules", help="Candidate rule directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What-if: run a candidate rule set over the stored messages and report what would change."""
    from postbud.cli.app import _since
    from postbud.runtime import load_recipient_directory, open_store
    from router.by_rules import RulesDecider
    from router.default import DefaultRoute
    from router.replay import replay
    from rules import RuleErrors, load

    config = config_of(ctx)
    directory = rules or config.rules.directory
    if directory is None:
        err.print("error: no rule directory: give --rules DIR, or configure [rules] directory")
        raise typer.Exit(2)
    recipients = load_recipient_directory(config)
    try:
        ruleset = load(directory, recipients)
    except RuleErrors as exc:
        for issue in exc.issues:
            err.print(str(issue), highlight=False)
        raise typer.Exit(1) from None
    store = open_store(config)
    start, end = _since(since), _since(until)
    assert start is not None
    decider = RulesDecider(lambda: ruleset, recipients, DefaultRoute(config))
    report = replay(store, decider, since=start, until=end)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
        return
    out.print(f"{report.examined} messages replayed against {directory} (version {ruleset.version})",
              highlight=False)
    for org, counts in sorted(report.by_organisation.items()):
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        out.print(f"  {org}: {summary}", highlight=False)
    for change in report.changes[:50]:
        before, after = change["before"], change["after"]
        out.print(f"  {change['id'][:12]} {change['change']:<17} {before['action']} {before['recipients']} → "
                  f"{after['action']} {after['recipients']}  {change['title']}", highlight=False)
