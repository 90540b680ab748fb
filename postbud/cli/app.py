"""The `postbud` command: the daemon, configuration, database, keys, trace and inspection commands."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from postbud.cli.model import app as model_app
from postbud.cli.ops import ops_app, trace_extra
from postbud.cli.queue import app as queue_app
from postbud.cli.recipients import app as recipients_app
from postbud.cli.routing import rules_app
from postbud.cli.common import CliContext, ConfigOpt, JsonOpt, config_of, err, out, print_json
from core.config import Config

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Validate the configuration.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
keys_app = typer.Typer(no_args_is_help=True, help="Encryption keys for content at rest.")
trace_app = typer.Typer(no_args_is_help=True, help="Track and trace: find messages and read their history.")
connectors_app = typer.Typer(no_args_is_help=True, help="Installed mailbox connectors.")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(trace_app, name="trace")
app.add_typer(connectors_app, name="connectors")
app.add_typer(rules_app, name="rules", help="Routing rules: check, test, test-suite, replay.")
app.add_typer(queue_app, name="queue")
app.add_typer(model_app, name="model", help="The ML suggester: evaluate on a corpus, train on placements.")
app.add_typer(recipients_app, name="recipients", help="Approved recipients: invite, confirm, list, approve, revoke.")
app.registered_commands.extend(ops_app.registered_commands)  # purge, erase, stats
trace_app.registered_commands.extend(trace_extra.registered_commands)  # trace download, trace resend

@app.callback()
def root(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """postbud collects, routes, delivers and traces a company's digital mail."""
    ctx.obj = CliContext(config)




# -- run --------------------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run every stage until no work is left, then exit.")] = False,
) -> None:
    """Run the daemon (or one pass of every stage with --once)."""
    from core import logs
    from postbud.service import serve

    cfg = config_of(ctx, config)
    logs.configure(cfg.logging.level, cfg.logging.format)
    asyncio.run(serve(cfg, once=once))


# -- config -----------------------------------------------------------------------------------


@config_app.command("check")
def config_check(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Validate the configuration and print every problem; exit 1 if there is any."""
    cfg = config_of(ctx, config)
    warnings = _secret_warnings(cfg)
    for warning in warnings:
        err.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    mailboxes = sum(len(o.mailboxes) for o in cfg.organisations)
    out.print(f"{cfg.path}: ok ({len(cfg.organisations)} organisations, {mailboxes} mailboxes)", highlight=False)


def _secret_warnings(cfg: Config) -> list[str]:
    from connectors.registry import is_secret_ref
    from core.config import SecretRef

    warnings = []
    for org in cfg.organisations:
        for mb in org.mailboxes:
            for key, value in mb.connector_settings.items():
                if not is_secret_ref(value):
                    continue
                ref = SecretRef.model_validate(value, context={"base_dir": cfg.base_dir})
                try:
                    ref.reveal()
                except LookupError as exc:
                    warnings.append(f"{org.cvr}/{mb.name}.{key}: {exc} (needed when the mailbox starts)")
    return warnings


# -- db and keys ------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Apply every pending schema migration."""
    from core.storage import migrate
    from core.storage.db import make_engine

    cfg = config_of(ctx, config)
    engine = make_engine(cfg.database_url)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    out.print(f"database at revision {after}" + ("" if before == after else f" (was {before})"))


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    config: ConfigOpt = None,
    batch_size: Annotated[int, typer.Option(help="Rows re-encrypted per transaction.")] = 500,
) -> None:
    """Make a new active key and re-encrypt all stored content with it, in batches."""
    from postbud.runtime import open_store
    from core.storage.rotate import reencrypt_all
    from core.storage.vault import Vault, load_keyring, save_keyring

    cfg = config_of(ctx, config)
    keyring = load_keyring(cfg.encryption.keyring, create=False).rotated()
    save_keyring(cfg.encryption.keyring, keyring)
    store = open_store(cfg)
    store.vault = Vault(keyring)
    report = reencrypt_all(
        store, batch_size=batch_size,
        progress=lambda r: err.print(f"  {r.reencrypted} blobs re-encrypted ({r.batches} batches)"),
    )
    out.print(f"active key {keyring.active}; {report.reencrypted} blobs re-encrypted")


# -- trace ------------------------------------------------------------------------------------


def _since(value: str | None) -> datetime | None:
    """ISO date/time, or a relative age like 30d / 12h."""
    if not value:
        return None
    if value[-1] in "dh" and value[:-1].isdigit():
        unit = {"d": "days", "h": "hours"}[value[-1]]
        return datetime.now(timezone.utc) - timedelta(**{unit: int(value[:-1])})
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@trace_app.command("search")
def trace_search(
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
    flt = SearchFilter(cvr, mailbox, provider, sender, status, _since(since), _since(until), text, limit,
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


@trace_app.command("show")
def trace_show(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id (or a unique prefix).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One message and its timeline, oldest first."""
    from postbud.runtime import open_store
    from postbud.trace import show

    store = open_store(config_of(ctx, config))
    found = show(store, message_id)
    if found is None:
        err.print(f"no message {message_id}")
        raise typer.Exit(1)
    if as_json:
        print_json(found)
        return
    out.print(f"[bold]{found['title']}[/bold]  ({found['id']})", highlight=False)
    out.print(f"from {found['sender']} · {found['organisation']}/{found['mailbox']} · status {found['status']}",
              highlight=False)
    for event in found["events"]:
        change = f"{event['from_status'] or ''} → {event['to_status']}" if event["to_status"] else ""
        line = f"{event['at'][:19]}  {event['kind']:<13} {event['actor']:<10} {change}"
        if event["reason"]:
            line += f"  ({event['reason']})"
        out.print(line, highlight=False)
        explanation = event["detail"].get("explanation")
        if explanation:
            out.print(f"    why: {json.dumps(explanation, ensure_ascii=False)}", highlight=False)


# -- inspect and connectors -------------------------------------------------------------------


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A MeMo .xml or .eml file.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Parse one message file exactly as the connectors do and print the normalized message."""
    from connectors.base import PermanentError
    from connectors.files import parse_message_file

    try:
        message = parse_message_file(file.read_bytes(), file.name)
    except PermanentError as exc:
        err.print(f"[red]invalid[/red] {file}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    data = message.to_json()
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{message.title}[/bold]", highlight=False)
    for key in ("message_type", "message_id", "format", "sent_at", "sender", "recipient", "attention", "flags"):
        value = data[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, False, ""))
        out.print(f"  {key:<13} {value}", highlight=False)
    for doc in message.documents:
        for f in doc.files:
            out.print(f"  {doc.kind.value:<13} {f.name} ({f.media_type}, {f.size} bytes)", highlight=False)
    lines = [line for line in message.text.splitlines() if line.strip()][:8]
    if lines:
        out.print("  text:", highlight=False)
        for line in lines:
            out.print(f"    {line}", highlight=False)


@app.command()
def reply(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="The message to answer.")],
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="The answer (e.g. a PDF).")],
    text: Annotated[Optional[str], typer.Option("--text", help="A short text sent with it.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who replies (default: $POSTBUD_USER or the login).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Reply to a Digital Post message that allows it, through the organisation's NgDP mailbox."""
    import getpass
    import os

    from connectors.base import ConnectorError
    from postbud.reply import ReplyRefused, send_reply
    from postbud.runtime import open_store
    from postbud.trace import show

    cfg = config_of(ctx, config)
    store = open_store(cfg)
    found = show(store, message_id)
    if found is None:
        err.print(f"no message {message_id}")
        raise typer.Exit(1)
    actor = by or os.environ.get("POSTBUD_USER") or getpass.getuser()
    try:
        sent = asyncio.run(send_reply(cfg, store, found["id"], file, text=text, actor=actor))
    except ReplyRefused as exc:
        err.print(f"[red]refused[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except ConnectorError as exc:
        err.print(f"[red]not sent[/red] {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"reply {sent.reply_uuid} sent through {sent.mailbox}", highlight=False)


@app.command()
def sandbox(
    ctx: typer.Context,
    config: ConfigOpt = None,
) -> None:
    """Run the built-in fake providers stand-alone (with the config's sandbox settings) until Ctrl-C."""
    from sandbox.demo import start_sandbox

    cfg = config_of(ctx, config)

    async def serve() -> None:
        handle = await start_sandbox(cfg)
        try:
            for name, endpoint in handle.providers.endpoints.items():
                out.print(f"{name:<6} {endpoint.base_url}", highlight=False)
            out.print(f"smtp   127.0.0.1:{handle.mail.port} (STARTTLS), mail kept in {handle.mail.mail_dir}",
                      highlight=False)
            out.print(f"CA {handle.providers.ca_path}; credentials in {cfg.sandbox.folder / 'secrets'}",
                      highlight=False)
            await asyncio.Event().wait()
        finally:
            await handle.aclose()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


@connectors_app.command("list")
def connectors_list(config: ConfigOpt = None) -> None:
    """Every installed connector, built-in or plugin."""
    from connectors.registry import RegistryError, discover

    try:
        found = discover()
    except RegistryError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    for name, registered in sorted(found.items()):
        out.print(f"{name:<10} {registered.origin}", highlight=False)
