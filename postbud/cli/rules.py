"""`postbud rules …`: check a rule directory, try it on one message, run rule tests, replay stored mail.

The rule directory and recipients come from the config (-c before or after the command; in tests,
`ctx.obj` may be a dict with `rules_dir` and `recipients`); an explicit DIR / --rules wins.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from connectors.base import ConnectorError
from connectors.files import parse_message_file
from core.recipients import RecipientDirectory
from postbud.cli.common import ConfigOpt, config_of, context_of, err, out, parse_time
from rules.facts import MessageFacts
from rules.loader import check, load
from rules.model import Evaluation, RuleErrors
from rules.suite import MessageReader, run_test_suite

# The rules parse nothing: their tools read message files the way the connectors do.
READER = MessageReader(parse_message_file, refused=(ConnectorError,))

app = typer.Typer(no_args_is_help=True, help="Routing rules: check, test on a message, test suites.")

RulesOpt = Annotated[
    Path | None,
    typer.Option("--rules", help="Rule directory (default: the configured one)."),
]


def _obj(ctx: typer.Context, config: Path | None, key: str) -> Any:
    obj = context_of(ctx, config) if config is not None else ctx.obj
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _rules_dir(ctx: typer.Context, explicit: Path | None, config: Path | None) -> Path:
    chosen = explicit or _obj(ctx, config, "rules_dir")
    if not chosen:
        typer.echo("error: no rule directory: give DIR / --rules, or configure one", err=True)
        raise typer.Exit(2)
    return Path(chosen)


def _recipients(ctx: typer.Context, config: Path | None) -> RecipientDirectory | None:
    found = _obj(ctx, config, "recipients")
    return found if isinstance(found, RecipientDirectory) else None


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Argument(metavar="[DIR]", help="Rule directory.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Print every problem of the rule files as file:line:col: message; exit 1 if there is any."""
    rules_dir = _rules_dir(ctx, directory, config)
    recipients = _recipients(ctx, config)
    issues = check(rules_dir, recipients)
    for issue in issues:
        typer.echo(str(issue))
    if issues:
        raise typer.Exit(1)
    ruleset = load(rules_dir, recipients)
    typer.echo(f"{rules_dir}: ok ({len(ruleset.rules)} rules, version {ruleset.version})")


@app.command("test")
def test_cmd(
    ctx: typer.Context,
    message: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="MeMo .xml or .eml.")],
    rules: RulesOpt = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Organisation CVR (default: the message's recipient).")
    ] = None,
    mailbox: Annotated[str, typer.Option(help="Mailbox name the message arrived in.")] = "default",
    provider: Annotated[str, typer.Option(help="Provider the message came from.")] = "file",
    received: Annotated[
        str | None, typer.Option(help="Arrival time, ISO 8601 (default: sent time, else now).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run the rules on one message file and print the decision with its full explanation."""
    rules_dir = _rules_dir(ctx, rules, config)
    try:
        ruleset = load(rules_dir, _recipients(ctx, config))
    except RuleErrors as e:
        for issue in e.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    try:
        parsed = parse_message_file(message.read_bytes(), message.name)
    except ConnectorError as e:
        typer.echo(f"error: cannot parse {message}: {e}", err=True)
        raise typer.Exit(1) from None
    try:
        when = datetime.fromisoformat(received) if received else parsed.sent_at
    except ValueError:
        typer.echo(f"error: --received {received!r} is not an ISO 8601 date-time", err=True)
        raise typer.Exit(2) from None
    facts = MessageFacts(
        message=parsed,
        organisation=org or parsed.recipient.id or "",
        mailbox=mailbox,
        provider=provider,
        received_at=when or datetime.now(UTC),
    )
    evaluation = ruleset.evaluate(facts)
    if as_json:
        sys.stdout.write(json.dumps(evaluation.to_json(), ensure_ascii=False, indent=2) + "\n")
        return
    for line in describe(evaluation):
        typer.echo(line)


@app.command("test-suite")
def test_suite_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of *.toml test files.")],
    rules: RulesOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run rule unit tests ([[case]] tables); exit 1 if any case fails."""
    result = run_test_suite(directory, _rules_dir(ctx, rules, config), _recipients(ctx, config), reader=READER)
    for error in result.errors:
        typer.echo(f"error: {error}")
    for case in result.cases:
        typer.echo(f"{'PASS' if case.passed else 'FAIL'}  {case.name}  ({case.file}:{case.line})")
        for failure in case.failures:
            typer.echo(f"      {failure}")
    typer.echo(f"{len(result.cases) - len(result.failed)} passed, {len(result.failed)} failed")
    if not result.ok:
        raise typer.Exit(1)


@app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Messages received since (ISO date, or 30d / 12h ago).")] = "30d",
    until: Annotated[str | None, typer.Option(help="... and before (ISO date, or 7d ago).")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="Candidate rule directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOpt = None,
) -> None:
    """What-if: run a candidate rule set over the stored messages and report what would change."""
    from postbud.runtime import load_recipient_directory, open_store
    from router.by_rules import RulesDecider
    from router.default import DefaultRoute
    from router.replay import replay

    cfg = config_of(ctx, config)
    directory = rules or cfg.rules.directory
    if directory is None:
        err.print("error: no rule directory: give --rules DIR, or configure [rules] directory")
        raise typer.Exit(2)
    recipients = load_recipient_directory(cfg)
    try:
        ruleset = load(directory, recipients)
    except RuleErrors as exc:
        for issue in exc.issues:
            err.print(str(issue), highlight=False)
        raise typer.Exit(1) from None
    store = open_store(cfg)
    start, end = parse_time(since), parse_time(until)
    assert start is not None  # --since has a default
    decider = RulesDecider(lambda: ruleset, recipients, DefaultRoute(cfg))
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


def describe(evaluation: Evaluation) -> list[str]:
    """The decision and its explanation as indented text lines."""
    ex = evaluation.explanation
    lines = [f"action:     {evaluation.action}"]
    if evaluation.recipients:
        lines.append(f"recipients: {', '.join(evaluation.recipients)}")
    lines.append(f"rule:       {evaluation.rule or '(none)'}")
    if evaluation.reason:
        lines.append(f"reason:     {evaluation.reason}")
    if evaluation.tags:
        lines.append(f"tags:       {', '.join(evaluation.tags)}")
    lines.append(f"priority:   {evaluation.priority}")
    skipped, version = ex.get("skipped_out_of_scope", 0), ex.get("rule_set")
    lines.append(f"rules tried ({skipped} out of scope, rule set {version}):")
    for entry in ex.get("tried", []):
        mark = "✓" if entry["matched"] else "✗"
        lines.append(f"  {mark} {entry['rule']}  ({entry['at']})")
        lines += _conditions(entry.get("conditions", []), "      ")
        if "reason" in entry:
            lines.append(f"      reason: {entry['reason']}")
        if "route" in entry:
            lines.append(f"      route: {', '.join(entry['route'])}")
        if "captures" in entry:
            lines.append(f"      captures: {json.dumps(entry['captures'], ensure_ascii=False)}")
    return lines


def _conditions(trace: list[dict[str, Any]], indent: str) -> list[str]:
    lines = []
    for item in trace:
        mark = "✓" if item.get("matched") else "✗"
        for group in ("any", "all", "not"):
            if group in item:
                lines.append(f"{indent}{mark} {group}:")
                lines += _conditions(item[group], indent + "    ")
                break
        else:
            extra = {k: v for k, v in item.items() if k not in ("field", "matcher", "matched")}
            details = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in extra.items())
            lines.append(f"{indent}{mark} {item['field']} {item['matcher']}: {details}")
    return lines
