"""`postbud queue …`: the manual queue — list, show and assign held messages; correct routed ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from postbud.cli.common import (
    ConfigOpt,
    OperatorError,
    OperatorGroup,
    actor,
    cell,
    config_of,
    err,
    known_organisation,
    out,
    print_json,
    recipients_of,
    show_message,
    table,
)

if TYPE_CHECKING:
    from core.config import Config
    from core.storage.db import Store
    from delivery.recipients import RecipientsFile

app = typer.Typer(no_args_is_help=True, help="The manual queue: messages waiting for a person.", cls=OperatorGroup)


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h" if hours >= 1 else f"{seconds / 60:.0f}m"


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    org: Annotated[Optional[str], typer.Option("--org", help="Only this organisation (CVR).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Held messages, oldest first, with age, decision deadline, reason and the top suggestions."""
    from postbud.deadlines import deadlines
    from postbud.runtime import open_store
    from router.queue import held

    cfg = config_of(ctx, config)
    store = open_store(cfg)
    items = held(store, organisation=known_organisation(cfg, store, org) if org else None)
    dates = {i.id: deadlines(cfg, i.organisation, i.received_at) for i in items}
    if as_json:
        print_json([{**i.to_json(), "decision_deadline": dates[i.id][0].isoformat(),
                     "purge_at": dates[i.id][1].isoformat()} for i in items])
        return
    grid = table("id", "age", "deadline", "org", "sender", "title", "reason", "suggestions",
                 whole=("id", "age", "deadline", "org"))
    for i in items:
        suggested = ", ".join(f"{s['label']} {s['probability']:.0%}" for s in i.suggestions[:3]) \
            or (f"none: {i.model_reason}" if i.model_reason else "")
        grid.add_row(*(cell(v) for v in (i.id[:12], _age(i.age_seconds), f"{dates[i.id][0]:%Y-%m-%d}", i.organisation,
                                          i.sender, i.title, i.reason, suggested)))
    out.print(grid)
    err.print(f"{len(items)} held")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """One held message: who it is for, the timeline, and why it is held, with the model's suggestions."""
    show_message(config_of(ctx, config), message_id, as_json=as_json)


def _letter_and_targets(cfg: Config, message_id: str, queries: list[str]) -> tuple[Store, dict[str, Any],
                                                                                   RecipientsFile | None, list[str]]:
    """The letter an id (or prefix) names, and the approved recipients or groups the names match in its
    organisation: only approved recipients receive anything (an unapproved one would bounce it back)."""
    from postbud import names
    from postbud.runtime import open_store
    from postbud.trace import show_message as find

    store = open_store(cfg)
    found = find(store, message_id)
    directory = recipients_of(cfg)
    return store, found, directory, [names.approved_target(store, directory, found["organisation"], q) for q in queries]


@app.command("assign")
def assign_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID")],
    recipients: Annotated[list[str], typer.Argument(metavar="RECIPIENT...", help="Ids, names or groups (fuzzy).")],
    by: Annotated[Optional[str], typer.Option("--by", help="Who assigns (default: $POSTBUD_USER or the login).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Place a held message with one or more approved recipients (or groups), matched by id or name."""
    from router.queue import NotHeld, assign

    cfg = config_of(ctx, config)
    store, found, directory, chosen = _letter_and_targets(cfg, message_id, recipients)
    who = actor(by)
    try:
        assign(store, found["id"], chosen, actor=who, directory=directory, channels=cfg.delivery.channels)
    except NotHeld as exc:
        raise OperatorError(f"{exc}; only held messages are assigned (`postbud trace resend` sends again)") from exc
    out.print(f"{found['id']} assigned to {', '.join(chosen)} by {who}", highlight=False)


@app.command("correct")
def correct_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID")],
    recipients: Annotated[list[str], typer.Argument(metavar="RECIPIENT...", help="Ids, names or groups (fuzzy).")],
    by: Annotated[Optional[str], typer.Option("--by", help="Who corrects (default: $POSTBUD_USER or the login).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Re-route a letter the model or a rule sent wrong (routed, delivering or delivered): delivers it
    to the right approved recipients, records the override in the trace and teaches the model."""
    from postbud.corrections import correct_and_review
    from router.correction import NotCorrectable

    cfg = config_of(ctx, config)
    store, found, directory, chosen = _letter_and_targets(cfg, message_id, recipients)
    who = actor(by)
    try:
        done, paused = correct_and_review(store, cfg, found["id"], chosen, actor=who, directory=directory)
    except NotCorrectable as exc:
        raise OperatorError(f"{exc}; a held message is placed with `postbud queue assign`") from exc
    out.print(f"{done.message_id} corrected by {who}: {done.overruled} had sent it to "
              f"{', '.join(done.previous) or 'nobody'}; now {', '.join(done.recipients)}", highlight=False)
    if paused:
        err.print(paused, highlight=False)
