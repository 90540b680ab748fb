"""`postbud trace …`: find messages, read their history, download their documents, send them again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from postbud.cli.common import (
    ConfigOpt,
    JsonOpt,
    actor,
    config_of,
    err,
    out,
    parse_time,
    print_json,
    show_message,
)

app = typer.Typer(no_args_is_help=True, help="Track and trace: find messages and read their history.")


@app.command("search")
def search_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    cvr: Annotated[Optional[str], typer.Option("--cvr", "--org", help="Organisation CVR.")] = None,
    mailbox: Annotated[Optional[str], typer.Option(help="Mailbox name.")] = None,
    provider: Annotated[Optional[str], typer.Option(help="Provider (connector type).")] = None,
    sender: Annotated[Optional[str], typer.Option(help="Sender name (part) or id.")] = None,
    status: Annotated[Optional[str], typer.Option(help="Message status.")] = None,
    since: Annotated[Optional[str], typer.Option(help="From (ISO date, or 30d / 12h ago).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Until (ISO date, or 30d / 12h ago).")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Text in the title or sender.")] = None,
    recipient: Annotated[Optional[str], typer.Option(help="Delivered (or to be) to this recipient.")] = None,
    channel: Annotated[Optional[str], typer.Option(help="Delivery channel (email, webhook).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many messages.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Find messages; newest first."""
    from postbud.runtime import open_store
    from postbud.trace import SearchFilter, search

    store = open_store(config_of(ctx, config))
    flt = SearchFilter(cvr, mailbox, provider, sender, status, parse_time(since), parse_time(until), text, limit,
                       recipient=recipient, channel=channel)
    rows = search(store, flt)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "received", "status", "org", "mailbox", "sender", "title")
    for r in rows:
        table.add_row(r["id"][:12], r["received_at"][:19], r["status"], r["organisation"], r["mailbox"],
                      r["sender"] or "", r["title"])
    out.print(table)
    err.print(f"{len(rows)} messages")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id (or a unique prefix).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One message and its timeline, oldest first."""
    show_message(config_of(ctx, config), message_id, as_json=as_json)


@app.command("download")
def download_cmd(
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


@app.command("resend")
def resend_cmd(
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
