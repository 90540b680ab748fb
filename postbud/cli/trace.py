"""`postbud trace …`: find messages, read their history, download their documents, send them again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from postbud.cli.common import (
    ConfigOpt,
    JsonOpt,
    OperatorError,
    OperatorGroup,
    actor,
    cell,
    config_of,
    err,
    known_organisation,
    out,
    parse_time,
    print_json,
    recipients_of,
    show_message,
    shown,
    table,
)

app = typer.Typer(no_args_is_help=True, help="Track and trace: find messages and read their history.", cls=OperatorGroup)


@app.command("search")
def search_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    cvr: Annotated[Optional[str], typer.Option("--cvr", "--org", help="Organisation CVR.")] = None,
    mailbox: Annotated[Optional[str], typer.Option(help="Mailbox name.")] = None,
    provider: Annotated[Optional[str], typer.Option(help="Provider (connector type).")] = None,
    sender: Annotated[Optional[str], typer.Option(help="Sender name (part) or id.")] = None,
    status: Annotated[Optional[str], typer.Option(help="Message status.")] = None,
    since: Annotated[Optional[str], typer.Option(help="From (ISO date, or an age: 30d, 12h, 45m).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Until (ISO date, or an age: 30d, 12h, 45m).")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Text in the title or sender.")] = None,
    recipient: Annotated[Optional[str], typer.Option(help="Delivered (or to be) to this recipient.")] = None,
    channel: Annotated[Optional[str], typer.Option(help="Delivery channel (email, webhook).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages (stderr says when more match).")] = 100,
    every: Annotated[bool, typer.Option("--all", help="Every matching message, however many.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Find messages; newest first."""
    from postbud import names
    from postbud.runtime import open_store
    from postbud.trace import SearchFilter, search_page

    cfg = config_of(ctx, config)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    checked_status = names.status(status) if status else None
    checked_channel = names.channel(cfg, channel) if channel else None
    store = open_store(cfg)
    org = known_organisation(cfg, store, cvr) if cvr else None
    if mailbox:
        names.mailbox(cfg, mailbox, organisation=org)
    if provider:
        names.provider(cfg, provider)
    flt = SearchFilter(org, mailbox, provider, sender, checked_status, start, end, text, None if every else limit,
                       recipient=recipient, channel=checked_channel)
    page = search_page(store, flt)
    if as_json:
        print_json(page.rows)
    else:
        grid = table("id", "received", "status", "org", "mailbox", "sender", "title")
        for r in page.rows:
            grid.add_row(*(cell(v) for v in (r["id"][:12], r["received_at"][:16].replace("T", " "), r["status"],
                                             r["organisation"], r["mailbox"], r["sender"], r["title"])))
        out.print(grid)
    if page.truncated:
        err.print(f"{len(page.rows)} messages shown; more match: narrow the search, or give --limit N or --all",
                  highlight=False)
    elif not as_json:
        err.print(f"{len(page.rows)} messages")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id (or its first 6+ characters).")],
    config: ConfigOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Also every rule that did not match.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One message: who received what by which channel, the timeline, and why, in words."""
    show_message(config_of(ctx, config), message_id, as_json=as_json, full=full)


@app.command("download")
def download_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id (or its first 6+ characters).")],
    output: Annotated[Path, typer.Option("-o", "--output", file_okay=False,
                                         help="Folder to write the documents into.")],
    config: ConfigOpt = None,
) -> None:
    """Write the decrypted original documents of one message into a folder (recorded in its trace)."""
    from postbud.runtime import open_store
    from postbud.trace_actions import TraceActionError, download

    store = open_store(config_of(ctx, config))
    try:
        result = download(store, message_id, output, actor=actor())
    except TraceActionError as exc:
        raise OperatorError(str(exc)) from exc
    for path in result.files:
        out.print(shown(path), highlight=False)
    err.print(f"{len(result.files)} files written; the download is recorded in the trace")


@app.command("resend")
def resend_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id (or its first 6+ characters).")],
    to: Annotated[Optional[str], typer.Option("--to", help="Send to this approved recipient (id or name) too.")] = None,
    channel: Annotated[Optional[str], typer.Option("--channel", help="Channel for --to (default: the message's).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Queue a delivered or failed message for delivery again (to its recipients, or --to one more)."""
    from postbud import names
    from postbud.runtime import open_store
    from postbud.trace import show_message as find
    from postbud.trace_actions import NotFound, TraceActionError, resend

    cfg = config_of(ctx, config)
    checked_channel = names.channel(cfg, channel) if channel else None
    if channel and to is None:
        raise OperatorError("--channel goes with --to RECIPIENT (a resend to the same recipients keeps "
                            "their channels)", exit_code=2)
    store = open_store(cfg)
    if to is not None:  # the worker would hold a letter for someone unknown or unapproved
        to = names.approved_recipient(store, recipients_of(cfg), find(store, message_id)["organisation"], to)
    try:
        result = resend(store, message_id, actor=actor(), to=to, channel=checked_channel)
    except NotFound:
        raise
    except TraceActionError as exc:
        raise OperatorError(str(exc)) from exc
    targets = list(result.requeued) + ([result.added] if result.added else [])
    out.print(f"message {shown(result.message_id)} queued again for {shown(', '.join(targets))}", highlight=False)
