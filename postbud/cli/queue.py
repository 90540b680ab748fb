"""`postbud queue …`: the manual queue — list, show and assign held messages."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from postbud.cli.common import ConfigOpt, actor, config_of, err, out, print_json, show_message

app = typer.Typer(no_args_is_help=True, help="The manual queue: messages waiting for a person.")


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
    """Held messages, oldest first, with age, reason and the top suggestions."""
    from rich.table import Table

    from postbud.runtime import open_store
    from router.queue import held

    items = held(open_store(config_of(ctx, config)), organisation=org)
    if as_json:
        print_json([i.to_json() for i in items])
        return
    table = Table("id", "age", "org", "sender", "title", "reason", "suggestions")
    for i in items:
        suggested = ", ".join(f"{s['label']} {s['probability']:.0%}" for s in i.suggestions[:3]) \
            or (f"none: {i.model_reason}" if i.model_reason else "")
        table.add_row(i.id[:12], _age(i.age_seconds), i.organisation, i.sender or "", i.title, i.reason or "",
                      suggested)
    out.print(table)
    err.print(f"{len(items)} held")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """One held message: the trace timeline with the suggestions."""
    show_message(config_of(ctx, config), message_id, as_json=as_json)


@app.command("assign")
def assign_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID")],
    recipients: Annotated[list[str], typer.Argument(metavar="RECIPIENT...", help="Ids or names (fuzzy).")],
    by: Annotated[Optional[str], typer.Option("--by", help="Who assigns (default: $POSTBUD_USER or the login).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Place a held message with one or more approved recipients, matched by id or name."""
    from postbud.runtime import load_recipient_directory, open_store
    from postbud.trace import show
    from router.queue import NotHeld, assign, resolve_recipient

    cfg = config_of(ctx, config)
    store = open_store(cfg)
    found = show(store, message_id)
    if found is None:
        err.print(f"no message {message_id}")
        raise typer.Exit(1)
    directory = load_recipient_directory(cfg)
    names = directory.names(found["organisation"]) if directory else {}
    chosen = []
    for query in recipients:
        if not names:
            chosen.append(query)  # no recipients file: ids are taken as given
            continue
        resolution = resolve_recipient(query, names)
        if resolution.recipient is None:
            err.print(f"{query!r} does not name one recipient of {found['organisation']}; candidates:")
            for rid, label, score in resolution.candidates:
                err.print(f"  {rid:<20} {label} ({score:.0f})", highlight=False)
            raise typer.Exit(1)
        chosen.append(resolution.recipient)
    who = actor(by)
    try:
        assign(store, found["id"], chosen, actor=who, directory=directory, channels=cfg.delivery.channels)
    except NotHeld as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"{found['id']} assigned to {', '.join(chosen)} by {who}", highlight=False)
