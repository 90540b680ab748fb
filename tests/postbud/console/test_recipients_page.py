"""The recipients page: an organisation's administrators add, change and remove recipients and groups in
the recipients file (same checks as the CLI), each change audited; other profiles and other
organisations reach nothing, and a change based on a version that is gone is refused with 409."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from core.config import Config
from core.storage.accounts import AuditEvent
from core.storage.db import Store
from core.storage.models import TraceEvent
from delivery.recipients import Channel, load_recipients
from tests.conftest import MakeConfig
from tests.postbud.console.console_testkit import ORG_B, client, console_app, csrf_of, sign_in, user
from tests.postbud.ops_testkit import ORG_A, store_for

RECIPIENTS = f"""# kept by hand until today
[org.{ORG_A}]
default_channel = "email"

[org.{ORG_A}.recipients.reception]
name = "Reception"
email = "reception@example.dk"

[org.{ORG_A}.recipients.bogholderi]
name = "Bo Holm"
aliases = ["Bogholderiet"]
email = "bo@example.dk"

[org.{ORG_A}.groups]
alle = ["reception", "bogholderi"]

[org.{ORG_B}.recipients.b-reception]
name = "Birte Berg"
email = "birte@example.dk"
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'postbud.db'}"


@pytest.fixture
def setup(make_config: MakeConfig, tmp_path: Path) -> tuple[Config, Store, Path]:
    path = tmp_path / "recipients.toml"
    path.write_text(RECIPIENTS, encoding="utf-8")
    config = make_config(extra=f'[console]\nenabled = true\n[recipients]\nfile = "{path}"')
    store = store_for(config)
    user(store, "ada", "administrator")
    user(store, "fuld", "full")
    return config, store, path


def version_of(page: str) -> str:
    found = re.search(r'name="version" value="([0-9a-f]{64})"', page)
    assert found, "no version on the page"
    return found.group(1)


async def signed_in(c: httpx.AsyncClient, name: str) -> tuple[str, str]:
    await sign_in(c, name)
    page = (await c.get("/console/recipients")).text
    return csrf_of(page), version_of(page)


async def test_an_administrator_adds_changes_and_removes_through_the_page(setup: tuple[Config, Store, Path]) -> None:
    config, store, path = setup
    async with client(console_app(store, config)) as c:
        csrf, version = await signed_in(c, "ada")
        page = (await c.get("/console/recipients")).text
        assert "Bo Holm" in page and "Birte Berg" not in page and ">Recipients<" in page
        # WHEN the administrator adds a recipient by post
        added = await c.post("/console/recipients/save", data={
            "csrf": csrf, "version": version, "org": ORG_A, "mode": "add", "id": "arkiv", "name": "Arkivet",
            "aliases": "Arkiv, Dokumenter", "channel": "post", "postal_name": "Test ApS, Arkivet",
            "postal_street": "Vestergade 1", "postal_postcode": "8000", "postal_city": "Aarhus C",
            "route_alone": "on"})
        assert added.status_code == 303, added.text
        shown = (await c.get(added.headers["location"])).text
        assert "Recipient added: arkiv" in shown
        # AND changes another one (the model must not route to them alone any more) and a group
        edit = (await c.get("/console/recipients?edit=bogholderi")).text
        assert 'value="Bogholderiet"' in edit
        changed = await c.post("/console/recipients/save", data={
            "csrf": csrf, "version": version_of(edit), "org": ORG_A, "mode": "change", "id": "bogholderi",
            "name": "Bo Holm", "aliases": "Bogholderiet", "email": "bogholderi@example.dk"})
        assert changed.status_code == 303, changed.text
        grouped = await c.post("/console/recipients/group", data={
            "csrf": csrf, "version": version_of((await c.get("/console/recipients")).text), "org": ORG_A,
            "group": "papir", "member.arkiv": "on", "member.reception": "on"})
        assert grouped.status_code == 303, grouped.text
    # THEN the file holds every change, and what was written by hand
    directory = load_recipients(path)
    assert directory.get(ORG_A, "arkiv").channel is Channel.POST
    assert directory.get(ORG_A, "arkiv").aliases == ("Arkiv", "Dokumenter")
    assert directory.get(ORG_A, "bogholderi").email == "bogholderi@example.dk"
    assert directory.get(ORG_A, "bogholderi").route_alone is False
    assert directory.groups(ORG_A)["papir"] == ("arkiv", "reception")
    assert path.read_text(encoding="utf-8").startswith("# kept by hand until today")
    # AND the audit trail and the trace say who did what
    with store.read() as session:
        audited = [(e.username, e.action, e.organisation_cvr) for e in session.exec(
            select(AuditEvent).where(AuditEvent.username == "ada", AuditEvent.action != "signin").order_by(col(AuditEvent.at)))]
        traced = [e.actor for e in session.exec(select(TraceEvent).where(TraceEvent.kind == "recipients_changed"))]
    assert audited == [("ada", "recipient_added", ORG_A), ("ada", "recipient_changed", ORG_A),
                       ("ada", "group_set", ORG_A)]
    assert traced == ["console:ada"] * 3


async def test_refusals_say_why_and_write_nothing(setup: tuple[Config, Store, Path]) -> None:
    config, store, path = setup
    before = path.read_bytes()
    async with client(console_app(store, config)) as c:
        csrf, version = await signed_in(c, "ada")
        # a member of a group
        removed = await c.post("/console/recipients/remove", data={"csrf": csrf, "version": version, "org": ORG_A,
                                                                  "id": "bogholderi"})
        assert removed.status_code == 400 and "member of group alle" in removed.text
        # post without an address
        bad = await c.post("/console/recipients/save", data={"csrf": csrf, "version": version, "org": ORG_A,
                                                            "mode": "add", "id": "x", "name": "X", "channel": "post"})
        assert bad.status_code == 400 and "postal_address" in bad.text and str(path) not in bad.text
        assert 'value="X"' in bad.text  # what was typed is kept
        # GIVEN a colleague changed the file since this page was shown
        path.write_text(RECIPIENTS.replace("Bo Holm", "Bo Holm Jensen"), encoding="utf-8")
        stale = await c.post("/console/recipients/group/remove", data={"csrf": csrf, "version": version,
                                                                       "org": ORG_A, "group": "alle"})
        assert stale.status_code == 409 and "changed since you read it" in stale.text
    assert path.read_text(encoding="utf-8") == RECIPIENTS.replace("Bo Holm", "Bo Holm Jensen")
    assert before != path.read_bytes()


async def test_only_administrators_of_the_organisation_reach_it(setup: tuple[Config, Store, Path]) -> None:
    config, store, path = setup
    async with client(console_app(store, config)) as c:
        csrf, version = await signed_in(c, "ada")
        assert (await c.get(f"/console/recipients?org={ORG_B}")).status_code == 404
        theirs = await c.post("/console/recipients/remove", data={"csrf": csrf, "version": version, "org": ORG_B,
                                                                 "id": "b-reception"})
        assert theirs.status_code == 404
        no_csrf = await c.post("/console/recipients/group/remove", data={"version": version, "org": ORG_A,
                                                                        "group": "alle"})
        assert no_csrf.status_code == 403
    async with client(console_app(store, config)) as c:
        await sign_in(c, "fuld")
        assert (await c.get("/console/recipients")).status_code == 404
        assert "/console/recipients" not in (await c.get("/console/trace")).text
    assert path.read_text(encoding="utf-8") == RECIPIENTS
