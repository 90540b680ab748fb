"""Operator commands: `purge`, `erase`, `stats` (ops_app) and `trace download` / `trace resend` (trace_extra).

Both apps are mounted by `postbud.cli.app` (their commands join the root and the `trace` group); each
command also takes -c/--config itself, so the apps run standalone in tests.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from postbud.cli.common import ConfigOpt, JsonOpt, actor, config_of, err, out, print_json

ops_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Retention, erasure and statistics.")
trace_extra = typer.Typer(no_args_is_help=True, add_completion=False, help="Download and resend messages.")



# -- retention and erasure --------------------------------------------------------------------


@ops_app.command("purge")
def purge_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be purged.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Purge content and trace older than each organisation's retention_days (the daemon does it daily)."""
    from postbud.retention import purge
    from postbud.runtime import open_store

    cfg = config_of(ctx, config)
    report = purge(open_store(cfg), cfg, datetime.now(timezone.utc), dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    verb = "would purge" if dry_run else "purged"
    table = Table("organisation", "retention", "before", "messages", "attachments", "originals",
                  "trace events", "escalated")
    for o in report.organisations:
        c = o.counts
        table.add_row(o.organisation, f"{o.retention_days} d", o.cutoff.isoformat()[:19], str(c.content),
                      str(c.attachment), str(c.original), str(c.trace_event), str(c.escalated))
    out.print(table)
    t = report.totals
    out.print(f"{verb}: {t.content} messages, {t.attachment} attachments, {t.original} originals, "
              f"{t.trace_event + report.system_trace_events} trace events", highlight=False)


@ops_app.command("erase")
def erase_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    cpr: Annotated[Optional[str], typer.Option("--cpr", help="The person's CPR number.")] = None,
    cvr: Annotated[Optional[str], typer.Option("--cvr", help="The company's CVR number.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Erase every message about one data subject (GDPR request) and print the receipt."""
    from postbud.erasure import SubjectError, erase, find_subject_messages, subject
    from postbud.runtime import open_store

    try:
        kind, value = subject(cpr, cvr)
    except SubjectError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    store = open_store(config_of(ctx, config))
    if not yes:
        found = len(find_subject_messages(store, kind, value))
        if not typer.confirm(f"Erase {found} messages about this {kind.upper()} for good?", err=True):
            raise typer.Exit(1)
    receipt = erase(store, cpr=value if kind == "cpr" else None, cvr=value if kind == "cvr" else None)
    if as_json:
        print_json(receipt.to_json())
        return
    out.print(f"erasure receipt {receipt.receipt_id}  ({receipt.erased_at.isoformat()[:19]} UTC)", highlight=False)
    out.print(f"  subject type   {receipt.subject_type.upper()}", highlight=False)
    for name in ("messages", "attachments", "deliveries", "decisions", "trace_events", "unreadable"):
        out.print(f"  {name:<14} {getattr(receipt, name)}", highlight=False)
    for digest in receipt.message_id_hashes:
        out.print(f"  sha256(id)     {digest}", highlight=False)


# -- statistics -------------------------------------------------------------------------------


@ops_app.command("stats")
def stats_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    org: Annotated[Optional[str], typer.Option("--org", "--cvr", help="Only this organisation (CVR).")] = None,
    by: Annotated[str, typer.Option("--by", help="day, month or year.")] = "day",
    as_json: JsonOpt = False,
) -> None:
    """Messages collected, routed by rule / model / hand, held, delivered, failed, per period."""
    from postbud.runtime import open_store
    from postbud.stats import stats

    if by not in ("day", "month", "year"):
        err.print(f"[red]error[/red] --by is day, month or year, not {by!r}", highlight=False)
        raise typer.Exit(2)
    store = open_store(config_of(ctx, config))
    periods = stats(store, org, by, datetime.now(timezone.utc))  # type: ignore[arg-type]
    if as_json:
        print_json([p.to_json() for p in periods])
        return
    table = Table("period", "collected", "rule", "model", "hand", "held", "delivered", "failed", "automation",
                  "median to delivery", "per channel")
    for p in periods:
        rate = "" if p.automation_rate is None else f"{p.automation_rate:.0%}"
        median = "" if p.median_delivery_seconds is None else f"{p.median_delivery_seconds:.0f} s"
        channels = ", ".join(f"{c} {n}" for c, n in p.delivered_by_channel.items())
        table.add_row(p.period, str(p.collected), str(p.routed_by_rule), str(p.routed_by_model),
                      str(p.routed_by_hand), str(p.held), str(p.delivered), str(p.failed), rate, median, channels)
    out.print(table)


# -- trace download / resend ------------------------------------------------------------------


@trace_extra.command("download")
def trace_download(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id (or a unique prefix).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write the documents into.")],
    config: ConfigOpt = None,
) -> None:
    """Write the decrypted original documents of one message into a folder (recorded in its trace)."""
    from postbud.runtime import open_store
    from postbud.trace_actions import TraceActionError, download

    store = open_store(config_of(ctx, config))
    try:
        result = download(store, message_id, output, actor=actor())
    except TraceActionError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    for path in result.files:
        out.print(str(path), highlight=False)
    err.print(f"{len(result.files)} files written; the download is recorded in the trace")


@trace_extra.command("resend")
def trace_resend(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id (or a unique prefix).")],
    to: Annotated[Optional[str], typer.Option("--to", help="Send to this recipient instead.")] = None,
    channel: Annotated[Optional[str], typer.Option("--channel", help="Channel for --to (default: the message's).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Queue a delivered or failed message for delivery again (to its recipients, or --to one more)."""
    from postbud.runtime import open_store
    from postbud.trace_actions import TraceActionError, resend

    store = open_store(config_of(ctx, config))
    try:
        result = resend(store, message_id, actor=actor(), to=to, channel=channel)
    except TraceActionError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    targets = list(result.requeued) + ([result.added] if result.added else [])
    out.print(f"message {result.message_id} queued again for {', '.join(targets)}", highlight=False)
