"""Approval is a workflow: invitation (over TLS, no document) → one-time confirmation → approved when the
key checks out; revoked recipients get nothing. Through the library, the daemon's page and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import typer
from sqlmodel import col, select
from starlette.applications import Starlette
from typer.testing import CliRunner, Result
from worker_testkit import (
    ORG,
    collect_and_route,
    deliver,
    delivery_toml,
    recipients_toml,
    state,
)

from delivery.approval import (
    ApprovalError,
    approve,
    confirm,
    invite,
    revoke,
    send_invitation,
    token_hash,
)
from delivery.channels import smtp_settings
from delivery.recipients import RecipientsFile
from delivery.smtp import SmtpSender
from postbud.cli.common import CliContext
from postbud.confirm_page import confirm_route
from postbud.cli.recipients import app as recipients_app
from postbud.runtime import Runtime
from core.storage.models import RecipientApproval, TraceEvent, utcnow

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

runner = CliRunner()


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    extra = f"""
[org.{ORG}.recipients.carol]
name = "Carol"
email = "carol@example.com"
"""
    recipients = recipients_toml(tmp_path, smime_recipient, extra=extra)
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients)))
    yield runtime
    await runtime.aclose()


def directory(rt: Runtime) -> RecipientsFile:
    assert isinstance(rt.recipients, RecipientsFile)
    return rt.recipients


def approval(rt: Runtime, rid: str = "reception") -> RecipientApproval:
    with rt.store.read() as session:
        row = session.exec(select(RecipientApproval).where(RecipientApproval.recipient == rid)).one()
        return row


def cli(config_path: Path, *args: str) -> Result:
    root = typer.Typer()

    @root.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = CliContext(config_path)

    root.add_typer(recipients_app, name="recipients")
    return runner.invoke(root, ["recipients", *args])


async def test_invitation_link_confirms_and_approves_then_mail_flows(rt: Runtime, smtp: RunningSmtp) -> None:
    # GIVEN an invitation sent over the TLS-only sender
    invitation = invite(rt.store, directory(rt), rt.config.delivery, ORG, "Reception", "alice@example.com",
                        actor="admin")
    async with SmtpSender(smtp_settings(rt.config.delivery)) as sender:
        await send_invitation(sender, invitation, rt.config.delivery, organisation_name="Test ApS")
    [(raw, over_tls)] = smtp.handler.messages
    assert over_tls
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["To"] == "alice@example.com" and not mail.is_multipart()  # no document, no attachment
    body = mail.get_content()
    link = re.search(r"https://postbud\.test\.example/recipients/confirm/(\S+)", body)
    assert link is not None and invitation.token in body
    token = link.group(1)
    # the database keeps only the token's hash
    row = approval(rt)
    assert row.status == "invited" and row.token_hash == token_hash(token) and token not in str(row)
    # WHEN the recipient opens the link (GET changes nothing: mail scanners prefetch) and confirms
    app = Starlette(routes=[confirm_route(rt.store, directory=lambda: directory(rt))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = await client.get(f"/recipients/confirm/{token}")
        assert page.status_code == 200 and "<form" in page.text
        # in Danish, naming the organisation by name, not only by its CVR
        assert 'lang="da"' in page.text and "Test ApS (CVR 12345678)" in page.text and "Bekræft" in page.text
        assert approval(rt).status == "invited"
        confirmed = await client.post(f"/recipients/confirm/{token}")
        assert confirmed.status_code == 200 and "Bekræftet" in confirmed.text
        # THEN the link is used up
        again = await client.post(f"/recipients/confirm/{token}")
        assert again.status_code == 404
        assert (await client.get(f"/recipients/confirm/{token}")).status_code == 404
    row = approval(rt)
    assert row.status == "approved" and row.token_hash is None and row.key_fingerprint
    # AND mail is delivered to the approved recipient
    (mid,) = await collect_and_route(rt, 1)
    assert await deliver(rt) == 1
    assert state(rt, mid).message == "delivered"
    with rt.store.read() as session:
        unattached = select(TraceEvent).where(col(TraceEvent.message_id).is_(None)).order_by(col(TraceEvent.id))
        kinds = [e.kind for e in session.exec(unattached) if e.kind.startswith("recipient_")]
    assert kinds[:3] == ["recipient_invited", "recipient_confirmed", "recipient_approved"]


async def test_confirmed_without_directory_is_approved_by_the_worker_when_the_key_checks(
        rt: Runtime, smtp: RunningSmtp) -> None:
    invitation = invite(rt.store, directory(rt), rt.config.delivery, ORG, "reception", "alice@example.com",
                        actor="admin")
    assert confirm(rt.store, invitation.token).status == "confirmed"
    (mid,) = await collect_and_route(rt, 1)
    assert await deliver(rt) == 1
    assert state(rt, mid).message == "delivered"
    assert approval(rt).status == "approved"


async def test_confirmed_recipient_without_key_is_not_approved(rt: Runtime, smtp: RunningSmtp) -> None:
    invitation = invite(rt.store, directory(rt), rt.config.delivery, ORG, "Carol", "carol@example.com",
                        actor="admin")
    assert confirm(rt.store, invitation.token, directory=directory(rt)).status == "confirmed"
    with pytest.raises(ApprovalError, match="no key material"):
        approve(rt.store, directory(rt), ORG, "carol", actor="admin")
    assert approval(rt, "carol").status == "confirmed"


async def test_expired_or_wrong_codes_and_addresses_are_refused(rt: Runtime) -> None:
    now = utcnow()
    invitation = invite(rt.store, directory(rt), rt.config.delivery, ORG, "reception", "alice@example.com",
                        actor="admin", now=now)
    with pytest.raises(ApprovalError, match="expired"):
        confirm(rt.store, invitation.token, now=now + dt.timedelta(hours=73))
    with pytest.raises(ApprovalError, match="unknown"):
        confirm(rt.store, "not-a-code")
    renewed = invite(rt.store, directory(rt), rt.config.delivery, ORG, "reception", "alice@example.com",
                     actor="admin")
    with pytest.raises(ApprovalError, match="unknown"):  # the first token no longer works
        confirm(rt.store, invitation.token)
    assert confirm(rt.store, renewed.token).status == "confirmed"
    with pytest.raises(ApprovalError, match="gives reception the address alice@example.com"):
        invite(rt.store, directory(rt), rt.config.delivery, ORG, "reception", "mallory@evil.example",
               actor="admin")
    revoke(rt.store, ORG, "reception", actor="admin")
    with pytest.raises(ApprovalError, match="is revoked"):
        approve(rt.store, directory(rt), ORG, "reception", actor="admin")


async def test_cli_invite_confirm_list_approve_revoke(rt: Runtime, smtp: RunningSmtp) -> None:
    path = rt.config.path
    assert path is not None
    # invite: the e-mail goes out over TLS, the code is not printed to the administrator
    invited = await asyncio.to_thread(cli, path, "invite", ORG, "Alice Jensen", "alice@example.com")
    assert invited.exit_code == 0, invited.output
    [(raw, _)] = smtp.handler.messages
    body = email.message_from_bytes(raw, policy=email.policy.default).get_content()
    code = re.search(r"recipients/confirm/(\S+)", body)
    assert code is not None and code.group(1) not in invited.output
    # list shows the file joined with approval and key status
    listed = await asyncio.to_thread(cli, path, "list", "--json")
    assert listed.exit_code == 0, listed.output
    by_id = {i["id"]: i for i in json.loads(listed.stdout)}
    assert by_id["reception"]["approval"] == "invited"
    assert by_id["reception"]["key"] == "valid" and 360 <= by_id["reception"]["key_days_left"] <= 365
    assert by_id["carol"]["approval"] == "not invited" and "no key material" in by_id["carol"]["key"]
    # confirm with the code approves at once (the key is valid)
    confirmed = await asyncio.to_thread(cli, path, "confirm", code.group(1))
    assert confirmed.exit_code == 0, confirmed.output
    assert "approved" in confirmed.stdout
    # approve needs a confirmation unless the administrator vouches; a keyless one never
    refused = await asyncio.to_thread(cli, path, "approve", ORG, "carol")
    assert refused.exit_code == 1
    # revoke holds what was waiting
    (mid,) = await collect_and_route(rt, 1)
    revoked = await asyncio.to_thread(cli, path, "revoke", ORG, "reception")
    assert revoked.exit_code == 0 and "1 messages held" in revoked.stdout
    assert state(rt, mid).message == "held"
    assert await deliver(rt) == 0
    # vouching brings a revoked recipient back
    vouched = await asyncio.to_thread(cli, path, "approve", ORG, "reception", "--vouch")
    assert vouched.exit_code == 0, vouched.output
    table = await asyncio.to_thread(cli, path, "list", "--org", ORG)
    assert table.exit_code == 0 and "Alice" in table.stdout and "carol" in table.stdout
    relisted = await asyncio.to_thread(cli, path, "list", "--json")
    again = {i["id"]: i["approval"] for i in json.loads(relisted.stdout)}
    assert again == {"reception": "approved", "carol": "not invited"}
    assert len(smtp.handler.messages) == 1  # only the invitation: no document went out


async def test_cli_invite_of_a_new_person_keeps_the_display_name(rt: Runtime, smtp: RunningSmtp) -> None:
    """GIVEN someone not in the recipients file WHEN invited by name THEN the list shows that name;
    a bad address is refused before anything is written or sent."""
    path = rt.config.path
    assert path is not None
    bad = await asyncio.to_thread(cli, path, "invite", ORG, "Bo Nygaard", "not-an-email")
    assert bad.exit_code == 2 and "not an e-mail address" in bad.stderr
    assert smtp.handler.messages == []
    invited = await asyncio.to_thread(cli, path, "invite", ORG, "Bo Nygaard", "bo@example.com")
    assert invited.exit_code == 0, invited.output
    listed = await asyncio.to_thread(cli, path, "list", "--json")
    (bo,) = [i for i in json.loads(listed.stdout) if i["email"] == "bo@example.com"]
    assert (bo["name"], bo["in_file"], bo["approval"]) == ("Bo Nygaard", False, "invited")


def test_a_confirmation_code_never_reads_as_a_command_line_option() -> None:
    from delivery.approval import new_code

    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000 and not any(c.startswith("-") for c in codes)
