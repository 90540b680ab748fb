"""`postbud status`: the service's state at a glance (mailboxes, rules, recipients, backlog, models, keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from postbud.cli.common import ConfigOpt, OperatorGroup, config_of, out, print_json

app = typer.Typer(add_completion=False, cls=OperatorGroup)


def ago(iso: str | None, now: datetime) -> str:
    """'3m ago' / 'in 20s' for a timestamp, '-' for none."""
    if iso is None:
        return "-"
    seconds = (now - datetime.fromisoformat(iso)).total_seconds()
    text = duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _next(iso: str, now: datetime) -> str:
    """When the next poll is due; one long past means no daemon is polling."""
    late = (now - datetime.fromisoformat(iso)).total_seconds()
    return ago(iso, now) if late <= 60 else f"overdue by {duration(late)} (is the daemon running?)"


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The service's state: mailboxes, rules and recipients in force, outbox and queue backlog, the
    model per organisation and recipient keys that need attention."""
    from postbud.runtime import open_store
    from postbud.status import service_status

    cfg = config_of(ctx, config)
    facts = service_status(cfg, open_store(cfg))
    if as_json:
        print_json(facts.to_json())
        return
    now = datetime.fromisoformat(facts.at)
    lines = ["mailboxes"]
    for mb in facts.mailboxes:
        lines.append(f"  {mb.mailbox:<28} {mb.provider:<7} {mb.status:<15} last ok {ago(mb.last_success_at, now)}"
                     + (f", next poll {_next(mb.next_poll_at, now)}" if mb.next_poll_at else ""))
        if mb.last_error:
            failures = f" ({mb.consecutive_failures} in a row)" if mb.consecutive_failures else ""
            lines.append(f"      last error{failures}: {mb.last_error}")
    for name, state in (("rules", facts.rules), ("recipients", facts.recipients)):
        if state.path is None:
            lines.append(f"{name:<11}none configured")
            continue
        version = f" version {state.version}" if state.version else ""
        since = f", active since {state.active_since[:19]}" if state.active_since else ", not loaded by a daemon yet"
        lines.append(f"{name:<11}{state.path}{version}{since}")
        if state.refused_at:
            lines.append(f"           a change was refused {ago(state.refused_at, now)}: {state.refused}")
        if state.problem:
            lines.append(f"           on disk now: {state.problem}")
    b = facts.backlog
    waiting = sum(b.outbox_waiting.values())
    per_channel = ", ".join(f"{c} {n}" for c, n in b.outbox_waiting.items())
    oldest = f", oldest {duration(b.outbox_oldest_age_seconds)}" if b.outbox_oldest_age_seconds is not None else ""
    lines.append(f"outbox     {waiting} waiting" + (f" ({per_channel})" if per_channel else "") + oldest
                 + f"; {b.outbox_failed} failed")
    held_oldest = f", oldest {duration(b.queue_oldest_age_seconds)}" if b.queue_oldest_age_seconds is not None else ""
    lines.append(f"queue      {b.queue_held} held{held_oldest}")
    lines.append("models")
    for m in facts.models:
        trained = f"trained {m.trained_at[:19]} on {m.examples} examples; " if m.trained_at else ""
        automation = f"routes alone at ≥ {m.threshold:.1%}" if m.threshold is not None else \
            f"no automation: {m.no_automation}"
        lines.append(f"  {m.organisation}  {trained}{automation}")
    if facts.key_warnings:
        lines.append("keys")
        for k in facts.key_warnings:
            lines.append(f"  {k.organisation}/{k.recipient}: {k.problem}")
    for line in lines:
        out.print(line, highlight=False, markup=False)
