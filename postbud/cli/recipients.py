"""`postbud recipients …`: invite, confirm, list, approve and revoke delivery recipients."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from postbud.cli.common import (
    ConfigOpt,
    OperatorError,
    OperatorGroup,
    actor,
    config_of,
    err,
    known_organisation,
    out,
    table,
)

if TYPE_CHECKING:
    from delivery.onboarding import Journey
    from delivery.recipients import RecipientsFile
    from core.config import Config
    from core.storage.db import Store

app = typer.Typer(no_args_is_help=True, help="Delivery recipients: the approval workflow and key status.", cls=OperatorGroup)


def _fail(message: str) -> OperatorError:
    return OperatorError(message)


def _setup(ctx: typer.Context, explicit: Path | None, *,
           need_directory: bool = True) -> tuple[Config, Store, RecipientsFile | None]:
    from delivery.recipients import load_recipients
    from postbud.runtime import open_store

    config: Config = config_of(ctx, explicit)
    directory = load_recipients(config.recipients.file) if config.recipients.file is not None else None
    if need_directory and directory is None:
        raise _fail("no recipients file: set [recipients] file in the configuration")
    return config, open_store(config), directory


@app.command("invite")
def invite_cmd(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG", help="The organisation's CVR number (or its name).")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Recipient id, name or alias (or a new name).")],
    email: Annotated[str, typer.Argument(metavar="EMAIL")],
    config: ConfigOpt = None,
) -> None:
    """Send an invitation with a one-time confirmation link and code (no document is sent)."""
    from delivery.approval import ApprovalError, invite, send_invitation
    from delivery.channels import smtp_settings
    from delivery.errors import DeliveryError
    from delivery.smtp import SmtpSender
    from postbud import names

    address = names.email_address(email)  # before anything is written or sent
    cfg, store, directory = _setup(ctx, config, need_directory=False)
    org = names.organisation(cfg, org)
    org_name = cfg.organisation(org).name
    try:
        invitation = invite(store, directory, cfg.delivery, org, name, address, actor=actor())
    except ApprovalError as exc:
        raise _fail(str(exc)) from None

    async def send() -> str:
        async with SmtpSender(smtp_settings(cfg.delivery)) as sender:
            return await send_invitation(sender, invitation, cfg.delivery, organisation_name=org_name)

    try:
        asyncio.run(send())
    except (DeliveryError, LookupError) as exc:
        raise _fail(f"invitation not sent ({exc}); run invite again to send a new one") from None
    out.print(f"invited {invitation.name} ({invitation.recipient}) of {org} at {address}; the link works until "
              f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC", highlight=False)
    if not invitation.listed:
        err.print(f"note: {invitation.recipient} is not in the recipients file yet: add "
                  f"[org.{org}.recipients.{invitation.recipient}] with this email and a key to approve them",
                  highlight=False, markup=False)


@app.command("confirm")
def confirm_cmd(ctx: typer.Context, code: Annotated[str, typer.Argument(metavar="CODE")],
                config: ConfigOpt = None) -> None:
    """Confirm an invitation with the code from its e-mail; approves at once when the key is valid."""
    from delivery.approval import ApprovalError, confirm

    cfg, store, directory = _setup(ctx, config, need_directory=False)
    try:
        row = confirm(store, code, directory=directory, trust_store=cfg.delivery.trust_store,
                      actor=actor())
    except ApprovalError as exc:
        raise _fail(str(exc)) from None
    out.print(f"{row.recipient} of {row.organisation_cvr} is {row.status}", highlight=False)


@app.command("approve")
def approve_cmd(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG")],
    rid: Annotated[str, typer.Argument(metavar="ID", help="Recipient id, name or alias.")],
    vouch: Annotated[bool, typer.Option("--vouch", help="Approve without a confirmed invitation: you "
                                        "vouch for the address (webhooks, demo recipients).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Approve a confirmed recipient once its key checks out (validity, key usage, trust store)."""
    from delivery.approval import ApprovalError, approve
    from postbud import names

    cfg, store, directory = _setup(ctx, config)
    assert directory is not None
    org = names.organisation(cfg, org)
    rid = names.recipient(directory, org, rid)
    try:
        row = approve(store, directory, org, rid, actor=actor(), trust_store=cfg.delivery.trust_store,
                      vouch=vouch)
    except ApprovalError as exc:
        raise _fail(str(exc)) from None
    out.print(f"{row.recipient} of {org} is approved", highlight=False)


@app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG")],
    rid: Annotated[str, typer.Argument(metavar="ID", help="Recipient id, name or alias.")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a recipient: nothing more is sent to them, their pending deliveries are held."""
    from delivery.approval import revoke
    from postbud import names

    cfg, store, directory = _setup(ctx, config, need_directory=False)
    org = names.organisation(cfg, org)
    rid = _revocable(store, directory, org, rid)
    held = revoke(store, org, rid, actor=actor())
    out.print(f"{rid} of {org} is revoked; {len(held)} messages held for re-routing", highlight=False)


def _revocable(store: Store, directory: RecipientsFile | None, org: str, typed: str) -> str:
    """A recipient of the file (by id, name or alias), or one invited but not (or no longer) in it."""
    from postbud import names

    if names.approval(store, org, typed) is not None:
        return typed
    try:
        return names.recipient(directory, org, typed)
    except names.UnknownName as exc:
        raise names.UnknownName(str(exc).split("; did you mean")[0],
                                list(exc.candidates) + names.similar(typed, names.invited(store, org), limit=3)) from None


@dataclass(frozen=True)
class Listed:
    organisation: str
    id: str
    name: str
    email: str | None
    channel: str
    in_file: bool
    approval: str
    key: str
    key_days_left: int | None
    step: str = "not_invited"  # the onboarding checklist's step (delivery/onboarding.py)
    step_since: str | None = None


def listing(store: Store, directory: RecipientsFile | None, config: Config,
            org: str | None = None) -> list[Listed]:
    """Recipients-file entries joined with their approval and today's key check, then approval rows
    for people invited but not (or no longer) in the file."""
    from sqlmodel import select

    from delivery.keys import check_recipient_key
    from delivery.onboarding import journeys, uploaded_key
    from core.storage.models import RecipientApproval

    with store.read() as session:
        rows = {(r.organisation_cvr, r.recipient): r for r in session.exec(select(RecipientApproval))
                if org is None or r.organisation_cvr == org}
    out: list[Listed] = []
    from delivery.recipients import Channel

    enabled = [Channel(c) for c in config.delivery.channels]
    steps = journeys(store, directory)
    for cvr in directory.organisations() if directory is not None else ():
        if org is not None and cvr != org:
            continue
        assert directory is not None
        for rid in sorted(directory.names(cvr)):
            with store.read() as session:
                r, uploaded = uploaded_key(session, cvr, directory.get(cvr, rid))
            status = check_recipient_key(r, trust_store=config.delivery.trust_store, key=uploaded)
            row = rows.pop((cvr, rid), None)
            key = "valid" if status.valid else status.reason
            out.append(Listed(cvr, rid, r.name, r.email, str(directory.channel(cvr, rid, enabled=enabled)),
                              True, row.status if row else "not invited", key, status.days_left,
                              *_step(steps.get((cvr, rid)))))
    invited_as = _invited_names(store)
    for (cvr, rid), row in sorted(rows.items()):
        out.append(Listed(cvr, rid, invited_as.get((cvr, rid), rid), row.email, "", False, row.status,
                          "not in recipients file", None, *_step(steps.get((cvr, rid)))))
    return out


def _step(journey: Journey | None) -> tuple[str, str | None]:
    if journey is None:
        return "not_invited", None
    return journey.step.value, journey.since.isoformat() if journey.since else None


def _invited_names(store: Store) -> dict[tuple[str, str], str]:
    """The display names people were invited under (kept in the invitation's trace event)."""
    from sqlmodel import col, select

    from core.storage.models import TraceEvent

    with store.read() as session:
        events = session.exec(select(TraceEvent).where(TraceEvent.kind == "recipient_invited",
                                                       col(TraceEvent.message_id).is_(None))
                              .order_by(col(TraceEvent.id))).all()
    return {(e.detail["organisation"], e.detail["recipient"]): e.detail["name"] for e in events
            if {"organisation", "recipient", "name"} <= set(e.detail)}


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation (CVR).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Every recipient with approval status and key status (days to expiry)."""
    cfg, store, directory = _setup(ctx, config, need_directory=False)
    items = listing(store, directory, cfg, known_organisation(cfg, store, org) if org else None)
    if as_json:
        sys.stdout.write(json.dumps([asdict(i) for i in items], ensure_ascii=False, indent=2) + "\n")
        return
    grid = table("org", "id", "name", "email", "channel", "approval", "step", "key", "days left")
    for i in items:
        days = "" if i.key_days_left is None else str(i.key_days_left)
        grid.add_row(i.organisation, i.id, i.name, i.email or "", i.channel, i.approval, i.step.replace("_", " "),
                      i.key, days)
    out.print(grid)
