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

from core.config import Config
from connectors.base import ConnectorError
from connectors.files import parse_message_file
from core.recipients import RecipientDirectory
from postbud.cli.common import (
    ConfigOpt,
    OperatorError,
    OperatorGroup,
    config_of,
    context_of,
    err,
    out,
    parse_time,
)
from rules.facts import MessageFacts
from rules.loader import check, load
from rules.model import Evaluation, RuleErrors
from rules.suite import MessageReader, run_test_suite

# The rules parse nothing: their tools read message files the way the connectors do.
READER = MessageReader(parse_message_file, refused=(ConnectorError,))

app = typer.Typer(no_args_is_help=True, help="Routing rules: check, test on a message, test suites.", cls=OperatorGroup)

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
        raise OperatorError("no rule directory: give DIR / --rules, or configure [rules] directory", exit_code=2)
    return _folder(Path(chosen), "rule folder")


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise OperatorError(f"{path} is not a folder; give the {what} (e.g. rules/examples)")
    return path


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
        raise OperatorError(f"cannot parse {message}: {e}") from None
    try:
        when = datetime.fromisoformat(received) if received else parsed.sent_at
    except ValueError:
        raise OperatorError(f"--received {received!r} is not an ISO 8601 date-time (2026-03-02T10:30:00+01:00)",
                            exit_code=2) from None
    known = _obj(ctx, config, "configured")
    if org and isinstance(known, Config):  # with a configuration, a typo in --org is caught
        from postbud import names

        org = names.organisation(known, org)
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
    result = run_test_suite(_folder(directory, "folder of test files"), _rules_dir(ctx, rules, config),
                            _recipients(ctx, config), reader=READER)
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
    since: Annotated[str, typer.Option(help="Messages received since (ISO date, or an age: 30d, 12h, 45m).")] = "30d",
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
        raise OperatorError("no rule directory: give --rules DIR, or configure [rules] directory", exit_code=2)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    _folder(directory, "rule folder")
    recipients = load_recipient_directory(cfg)
    try:
        ruleset = load(directory, recipients)
    except RuleErrors as exc:
        for issue in exc.issues:
            err.print(str(issue), highlight=False)
        raise typer.Exit(1) from None
    store = open_store(cfg)
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
    """The decision and its explanation as indented text lines (`trace show` prints stored ones alike)."""
    from postbud.explain import explanation_lines

    lines = [f"action:     {evaluation.action}"]
    if evaluation.recipients:
        lines.append(f"recipients: {', '.join(evaluation.recipients)}")
    lines.append(f"rule:       {evaluation.rule or '(none)'}")
    if evaluation.reason:
        lines.append(f"reason:     {evaluation.reason}")
    if evaluation.tags:
        lines.append(f"tags:       {', '.join(evaluation.tags)}")
    lines.append(f"priority:   {evaluation.priority}")
    return lines + explanation_lines(evaluation.explanation)
