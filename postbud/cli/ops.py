"""`postbud purge`, `erase` and `stats`: retention, erasure of one data subject, and the figures."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from core.config import Config
from core.storage.db import Store
from postbud.cli.common import (
    ConfigOpt,
    JsonOpt,
    OperatorError,
    OperatorGroup,
    config_of,
    known_organisation,
    out,
    print_json,
    table,
)

if TYPE_CHECKING:
    from postbud.stats import By

ops_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Retention, erasure and statistics.", cls=OperatorGroup)


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
    store = open_store(cfg)
    report = purge(store, cfg, datetime.now(timezone.utc), dry_run=dry_run)
    notices = None if dry_run else _send_notices(store, cfg)
    if as_json:
        print_json({**report.to_json(), **({"notices_sent": notices[0], "notices_pending": notices[1]}
                                           if notices else {})})
        return
    verb = "would purge" if dry_run else "purged"
    grid = table("organisation", "retention", "before", "messages", "attachments", "originals",
                 "trace events", "final warnings")
    for o in report.organisations:
        c = o.counts
        grid.add_row(o.organisation, f"{o.retention_days} d", o.cutoff.isoformat()[:19], str(c.content),
                     str(c.attachment), str(c.original), str(c.trace_event), str(c.escalated))
    out.print(grid)
    t = report.totals
    out.print(f"{verb}: {t.content} messages, {t.attachment} attachments, {t.original} originals, "
              f"{t.trace_event + report.system_trace_events} trace events", highlight=False)
    told = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in sorted(report.told.items()))
    if told:
        out.print(f"held letters {'due' if dry_run else 'told'}: {told}", highlight=False)
    if notices is not None and (notices[0] or notices[1]):
        out.print(f"notices: {notices[0]} sent, {notices[1]} left for the daemon to send", highlight=False)


def _send_notices(store: Store, cfg: Config) -> tuple[int, int]:
    """Send what the run queued now (the daemon sends whatever cannot go now, e.g. relay down)."""
    import asyncio

    from delivery.notices import pending_notices, send_notices

    import os

    # a one-off command: its own name, never the daemon's (whose leases it must not take)
    owner = cfg.service.instance or f"{os.uname().nodename}-{os.getpid()}"
    run = asyncio.run(send_notices(store, cfg, owner=f"{owner}-purge"))
    return run.sent, pending_notices(store)


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
        raise OperatorError(f"{exc}", exit_code=2) from None
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
    out.print(f"  at provider    {receipt.provider_acknowledged} already acknowledged there; "
              f"{receipt.provider_acknowledged_at_next_poll} still held there, acknowledged at the next poll "
              "(never collected again)", highlight=False)
    for digest in receipt.message_id_hashes:
        out.print(f"  sha256(id)     {digest}", highlight=False)


# -- statistics -------------------------------------------------------------------------------

_PERIODS: dict[str, By] = {"day": "day", "month": "month", "year": "year"}


@ops_app.command("stats")
def stats_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    org: Annotated[Optional[str], typer.Option("--org", "--cvr", help="Only this organisation (CVR).")] = None,
    by: Annotated[str, typer.Option("--by", help="day, month or year.")] = "day",
    as_json: JsonOpt = False,
) -> None:
    """Messages collected, routed by rule / model / the fallback route / hand, held, delivered, failed."""
    from postbud.runtime import open_store
    from postbud.stats import stats

    period = _PERIODS.get(by)
    if period is None:
        raise OperatorError(f"--by is day, month or year, not {by!r}", exit_code=2)
    cfg = config_of(ctx, config)
    store = open_store(cfg)
    periods = stats(store, known_organisation(cfg, store, org) if org else None, period, datetime.now(timezone.utc))
    if as_json:
        print_json([p.to_json() for p in periods])
        return
    grid = table("period", "collected", "rule", "model", "fallback", "hand", "held", "delivered", "failed",
                 "automation", "median to delivery", "per channel")
    for p in periods:
        rate = "" if p.automation_rate is None else f"{p.automation_rate:.0%}"
        median = "" if p.median_delivery_seconds is None else f"{p.median_delivery_seconds:.0f} s"
        channels = ", ".join(f"{c} {n}" for c, n in p.delivered_by_channel.items())
        grid.add_row(p.period, str(p.collected), str(p.routed_by_rule), str(p.routed_by_model),
                     str(p.routed_by_fallback), str(p.routed_by_hand), str(p.held), str(p.delivered), str(p.failed),
                     rate, median, channels)
    out.print(grid)
