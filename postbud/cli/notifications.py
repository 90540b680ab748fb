"""`postbud recipients notifications …`: what each recipient is told when a letter arrives (the letter,
a notice, a daily digest), whether it is switched on, and where it goes; the administrator's side of
the recipients' own settings page (delivery/preferences.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from postbud.cli.common import ConfigOpt, OperatorError, OperatorGroup, actor, config_of, out, table

if TYPE_CHECKING:
    from core.config import Config
    from core.storage.db import Store

app = typer.Typer(no_args_is_help=True, cls=OperatorGroup,
                  help="Recipients' notifications: mode (letter, notice, digest), on/off, separate address.")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation (CVR or name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Every listed recipient's notification mode, on/off, the address in use and one awaiting confirmation."""
    from delivery.preferences import listing
    from postbud import names
    from postbud.cli.common import recipients_of
    from postbud.runtime import open_store

    cfg = config_of(ctx, config)
    directory = recipients_of(cfg)
    if directory is None:
        raise OperatorError("no recipients file: set [recipients] file in the configuration")
    wanted = names.organisation(cfg, org) if org else None
    listed = wanted is None or wanted in directory.organisations()
    items = listing(open_store(cfg), directory, wanted) if listed else []
    if as_json:
        sys.stdout.write(json.dumps([asdict(i) for i in items], ensure_ascii=False, indent=2) + "\n")
        return
    grid = table("org", "id", "name", "mode", "notifications", "address", "awaiting confirmation")
    for i in items:
        state = "-" if i.mode == "letter" else ("on" if i.enabled else "off")
        grid.add_row(i.organisation, i.recipient, i.name, i.mode, state, i.address or "", i.pending_address or "")
    out.print(grid)


@app.command("set")
def set_cmd(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG", help="The organisation's CVR number (or its name).")],
    rid: Annotated[str, typer.Argument(metavar="ID", help="Recipient id, name or alias.")],
    on: Annotated[bool, typer.Option("--on", help="Switch notices and digests on.")] = False,
    off: Annotated[bool, typer.Option("--off", help="Switch notices and digests off (the letter itself, "
                                      'for notify = "letter", is never switched off).')] = False,
    address: Annotated[str | None, typer.Option("--address", metavar="EMAIL", help="A separate notification "
                                                "address: mailed a link, used once it is opened.")] = None,
    file_address: Annotated[bool, typer.Option("--file-address", help="Drop the separate address: the "
                                               "recipients file's address again.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Change a recipient's notifications as they could on their settings page."""
    from delivery import preferences
    from postbud import names
    from postbud.cli.common import recipients_of
    from postbud.runtime import open_store

    if on and off:
        raise OperatorError("give --on or --off, not both", exit_code=2)
    if address is not None and file_address:
        raise OperatorError("give --address or --file-address, not both", exit_code=2)
    if not (on or off or address is not None or file_address):
        raise OperatorError("nothing to change: give --on, --off, --address EMAIL or --file-address", exit_code=2)
    new_address = names.email_address(address) if address is not None else None
    cfg = config_of(ctx, config)
    org = names.organisation(cfg, org)
    rid = names.recipient(recipients_of(cfg), org, rid)
    store, by = open_store(cfg), actor()
    if on or off:
        preferences.set_enabled(store, org, rid, on, actor=by)
        out.print(f"notifications of {rid} of {org} are {'on' if on else 'off'}", highlight=False)
    if file_address:
        preferences.use_file_address(store, org, rid, actor=by)
        out.print(f"notifications of {rid} of {org} go to the recipients file's address", highlight=False)
    if new_address is not None:
        _request(cfg, store, org, rid, new_address, by)


def _request(cfg: Config, store: Store, org: str, rid: str, address: str, by: str) -> None:
    """Ask for a separate address and mail its one-time link (over the delivery relay, TLS always)."""
    from delivery.channels import smtp_settings
    from delivery.errors import DeliveryError
    from delivery.preferences import confirmation_email, request_address
    from delivery.smtp import SmtpSender

    confirmation = request_address(store, cfg, org, rid, address, actor=by)
    wire = confirmation_email(confirmation, cfg, organisation_name=cfg.organisation(org).name)

    async def send() -> str:
        async with SmtpSender(smtp_settings(cfg.delivery)) as sender:
            return await sender.send(wire, sender=cfg.delivery.from_address, recipients=[address])

    try:
        asyncio.run(send())
    except (DeliveryError, LookupError) as exc:
        raise OperatorError(f"confirmation link not sent ({exc}); run set --address again") from None
    out.print(f"a confirmation link was sent to {address}; notices of {rid} go there once it is opened "
              f"(until {confirmation.expires_at:%Y-%m-%d %H:%M} UTC)", highlight=False)
