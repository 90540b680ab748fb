"""The onboarding checklist on the confirmation page: invited → address confirmed → key provided (uploaded,
or issued by the organisation's CA as PKCS#12) → encrypted test letter, its code typed → approved; each
step closes itself and is traced; letters then go encrypted to that key. Reminders with a fake clock."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from delivery_testkit import make_smime_cert
from sqlmodel import col, select
from starlette.applications import Starlette
from typer.testing import CliRunner
from worker_testkit import ORG, collect_and_route, decrypt_smime, deliver, delivery_toml, recipients_toml, state

from core.storage.models import RecipientApproval, TraceEvent, utcnow
from delivery.approval import invite
from delivery.onboarding import Step, journeys
from delivery.onboarding_run import onboarding_pass
from delivery.recipients import RecipientsFile
from postbud.cli.common import CliContext
from postbud.cli.recipients import app as recipients_app
from postbud.cli.recipients import listing
from postbud.console.app import console_mount
from postbud.confirm_page import confirm_route
from postbud.runtime import Runtime
from postbud.status import service_status
from tests.postbud.console.console_testkit import client as console_client
from tests.postbud.console.console_testkit import sign_in, user

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from sandbox.testca import LocalCA
    from tests.conftest import MakeConfig

CAROL = "carol@example.com"


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient, test_ca: LocalCA,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    """Carol is in the recipients file with an address and no key: she gives one on the page."""
    recipients = recipients_toml(tmp_path, smime_recipient,
                                 extra=f'[org.{ORG}.recipients.carol]\nname = "Carol Holm"\nemail = "{CAROL}"\n')
    org = (f'default_route = ["carol"]\nissue_certificates = true\nca_cert = "{test_ca.cert_path}"\n'
           f'ca_key = "{test_ca.folder / "ca-key.pem"}"')
    runtime = Runtime.create(make_config(extra_org=org, extra=delivery_toml(smtp, recipients)))
    yield runtime
    await runtime.aclose()


def directory(rt: Runtime) -> RecipientsFile:
    assert isinstance(rt.recipients, RecipientsFile)
    return rt.recipients


Client = Callable[[], httpx.AsyncClient]


def client(rt: Runtime) -> httpx.AsyncClient:
    app = Starlette(routes=[confirm_route(rt.store, directory=lambda: directory(rt), config=lambda: rt.config)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def step(rt: Runtime) -> Step:
    return journeys(rt.store, directory(rt))[(ORG, "carol")].step


def carol_events(rt: Runtime) -> list[str]:
    with rt.store.read() as session:
        events = session.exec(select(TraceEvent).where(col(TraceEvent.message_id).is_(None)).order_by(col(TraceEvent.id)))
        return [e.kind for e in events if e.detail.get("recipient") == "carol"]


def mails(smtp: RunningSmtp) -> list[email.message.EmailMessage]:
    out = []
    for raw, over_tls in smtp.handler.messages:
        assert over_tls
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        out.append(parsed)
    return out


def code_in(inner: email.message.Message) -> str:
    text = str(inner.get_body(("plain",)).get_content()) if isinstance(inner, email.message.EmailMessage) else str(inner)
    match = re.search(r"Din kode er:\s+([A-Z0-9]{4}-[A-Z0-9]{4})", text)
    assert match, text
    return match.group(1)


async def confirmed_link(rt: Runtime, http: httpx.AsyncClient) -> str:
    invitation = invite(rt.store, directory(rt), rt.config.delivery, ORG, "carol", CAROL, actor="admin")
    link = f"/recipients/confirm/{invitation.token}"
    assert step(rt) is Step.INVITED
    page = await http.post(link)
    assert page.status_code == 200 and "Bekræftet" in page.text and 'id="key"' in page.text
    assert step(rt) is Step.ADDRESS_CONFIRMED
    return link


async def test_uploaded_certificate_test_letter_code_approved_then_letters_go_to_that_key(
        rt: Runtime, smtp: RunningSmtp, openssl: str, tmp_path: Path) -> None:
    carol = make_smime_cert(tmp_path / "carol", name="carol", email=CAROL)
    der = x509.load_pem_x509_certificate(carol.cert_pem).public_bytes(serialization.Encoding.DER)
    async with client(rt) as http:
        link = await confirmed_link(rt, http)
        # WHEN a file that is not a key is uploaded THEN one line says why, nothing is sent
        bad = await http.post(link, data={"action": "upload"}, files={"key": ("key.pem", b"garbage", "text/plain")})
        assert bad.status_code == 400 and 'id="refusal"' in bad.text and not smtp.handler.messages
        # WHEN her certificate (DER) is uploaded THEN a test letter goes out, encrypted to it
        sent = await http.post(link, data={"action": "upload"}, files={"key": ("carol.cer", der, "application/pkix-cert")})
        assert sent.status_code == 200 and 'id="code"' in sent.text, sent.text
        assert step(rt) is Step.TEST_LETTER_SENT
        [letter] = smtp.handler.messages
        assert b"Din kode" not in letter[0] and b"application/pkcs7-mime" in letter[0]
        code = code_in(decrypt_smime(openssl, letter[0], carol, tmp_path))
        # a wrong code is refused; the right one approves and closes the link
        wrong = await http.post(link, data={"action": "code", "code": "AAAA-AAAA"})
        assert wrong.status_code == 400 and "Koden passer ikke" in wrong.text
        done = await http.post(link, data={"action": "code", "code": code.lower()})
        assert done.status_code == 200 and "Godkendt" in done.text
        assert (await http.get(link)).status_code == 404
    assert step(rt) is Step.APPROVED
    assert carol_events(rt) == ["recipient_invited", "recipient_confirmed", "recipient_key_provided",
                                "recipient_test_letter_sent", "recipient_test_confirmed", "recipient_approved"]
    [listed] = [i for i in listing(rt.store, directory(rt), rt.config) if i.id == "carol"]
    assert listed.step == "approved" and listed.key == "valid" and listed.approval == "approved"
    # `postbud status` counts the uploaded key: no warning that carol has none
    assert all(w.recipient != "carol" for w in service_status(rt.config, rt.store).key_warnings)
    # the administrator sees each recipient's step in the console
    user(rt.store, "admin", "administrator", (ORG,))
    console = Starlette(routes=[console_mount(rt.store, lambda: rt.config, lambda: directory(rt))])
    async with console_client(console) as c:
        await sign_in(c, "admin")
        page = (await c.get("/console/recipients")).text
    assert 'id="recipient-carol" data-step="approved"' in page
    assert 'id="recipient-reception" data-step="not_invited"' in page
    # AND a routed letter is delivered, encrypted to the uploaded key
    (mid,) = await collect_and_route(rt, 1)
    assert await deliver(rt) == 1 and state(rt, mid).message == "delivered"
    inner = decrypt_smime(openssl, smtp.handler.messages[-1][0], carol, tmp_path)
    assert "Momsangivelse 1" in str(inner["Subject"])


async def test_issued_certificate_pkcs12_by_mail_passphrase_on_the_page_decrypts_the_test_letter(
        rt: Runtime, smtp: RunningSmtp, openssl: str, tmp_path: Path) -> None:
    async with client(rt) as http:
        link = await confirmed_link(rt, http)
        page = await http.post(link, data={"action": "issue"})
        assert page.status_code == 200, page.text
        passphrase = re.search(r'id="passphrase">([a-z0-9-]+)<', page.text)
        assert passphrase is not None
        p12_mail, test_mail = mails(smtp)
        # the file travels by mail, the passphrase only on the page
        assert passphrase.group(1) not in p12_mail.as_string()
        [part] = [p for p in p12_mail.iter_attachments() if p.get_filename() == "postbud-certifikat.p12"]
        bundle = tmp_path / "carol.p12"
        bundle.write_bytes(part.get_content())
        pem = tmp_path / "carol-from-p12.pem"
        opened = subprocess.run([openssl, "pkcs12", "-in", str(bundle), "-passin", f"pass:{passphrase.group(1)}",
                                 "-nodes", "-out", str(pem)], capture_output=True, timeout=60, check=False)
        assert opened.returncode == 0, opened.stderr
        letter = tmp_path / "test-letter.eml"
        letter.write_bytes(smtp.handler.messages[1][0])
        decrypted = subprocess.run([openssl, "cms", "-decrypt", "-in", str(letter), "-inkey", str(pem)],
                                   capture_output=True, timeout=60, check=False)
        assert decrypted.returncode == 0, decrypted.stderr
        code = code_in(email.message_from_bytes(decrypted.stdout, policy=email.policy.default))
        # a reload shows no passphrase: it was shown once
        assert "passphrase" not in (await http.get(link)).text
        assert "Godkendt" in (await http.post(link, data={"action": "code", "code": code})).text
        assert test_mail["To"] == CAROL
    assert step(rt) is Step.APPROVED
    with rt.store.read() as session:
        event = session.exec(select(TraceEvent).where(TraceEvent.kind == "recipient_key_provided")).one()
    assert event.detail["source"] == "issued" and event.detail["kind"] == "smime"


def listed_steps(config_path: Path) -> dict[str, str]:
    """`postbud recipients list --json`: each recipient's step."""
    root = typer.Typer()

    @root.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = CliContext(config_path)

    root.add_typer(recipients_app, name="recipients")
    result = CliRunner().invoke(root, ["recipients", "list", "--json"])
    assert result.exit_code == 0, result.output
    return {item["id"]: item["step"] for item in json.loads(result.stdout)}


async def test_reminders_after_n_days_renew_the_link_once_per_period(rt: Runtime, smtp: RunningSmtp,
                                                                    tmp_path: Path) -> None:
    t0 = utcnow()
    assert listed_steps(tmp_path / "postbud.toml") == {"carol": "not_invited", "reception": "not_invited"}
    invitation = invite(rt.store, directory(rt), rt.config.delivery, ORG, "carol", CAROL, actor="admin", now=t0)
    assert listed_steps(tmp_path / "postbud.toml")["carol"] == "invited"
    days = rt.config.delivery.onboarding_reminder_days

    async def run(after: dt.timedelta) -> int:
        return (await onboarding_pass(rt.store, rt.config, directory(rt), now=t0 + after)).reminders

    assert await run(dt.timedelta(days=days) - dt.timedelta(minutes=1)) == 0
    assert await run(dt.timedelta(days=days, minutes=1)) == 1
    [reminder] = mails(smtp)
    assert reminder["To"] == CAROL and "bekræfte din adresse" in reminder.get_content()
    renewed = re.search(r"/recipients/confirm/([0-9a-f]+)", reminder.get_content())
    assert renewed is not None and renewed.group(1) != invitation.token
    # not again within the period; again after it
    assert await run(dt.timedelta(days=days * 1.5)) == 0
    assert await run(dt.timedelta(days=days * 2, minutes=2)) == 1
    assert carol_events(rt).count("recipient_reminded") == 2
    with rt.store.read() as session:
        row = session.exec(select(RecipientApproval).where(RecipientApproval.recipient == "carol")).one()
    assert row.status == "invited" and row.expires_at is not None and row.expires_at > t0 + dt.timedelta(days=days * 2)
