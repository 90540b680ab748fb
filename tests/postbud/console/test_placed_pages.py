"""The placed letters for people who work the queue: resend from the list (processing has no trace),
and the correction page that re-places a wrongly routed letter, teaches the model and is audited."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlmodel import select

from core.config import Config
from core.storage.accounts import AuditEvent
from core.storage.db import Store
from core.storage.models import Delivery, RoutingDecision
from router.learning import confirmed_examples
from tests.conftest import MakeConfig
from tests.postbud.console.console_testkit import ORG_A, ORG_B, client, console_app, csrf_of, sign_in, user
from tests.postbud.ops_testkit import Out, Spec, add, days_ago, store_for

NOW = datetime.now(timezone.utc)


@pytest.fixture
def setup(make_config: MakeConfig) -> tuple[Config, Store, dict[str, str]]:
    config = make_config(extra="[console]\nenabled = true")
    store = store_for(config)
    user(store, "ib", "processing")
    user(store, "fb", "feedback")
    ids = {
        "wrong": add(store, Spec(days_ago(1, NOW), title="Momsangivelse Q2", status="delivered", decided_by="model",
                                 text="Momsangivelsen for andet kvartal.", outbox=[Out("reception")])),
        "older": add(store, Spec(days_ago(2, NOW), title="Rykker", status="delivered", decided_by="rule",
                                 outbox=[Out("bogholderi")])),
        "held": add(store, Spec(days_ago(1, NOW), title="Venter", status="held")),
        "theirs": add(store, Spec(days_ago(1, NOW), org=ORG_B, title="B's brev", status="delivered",
                                  decided_by="rule", outbox=[Out("b-reception")])),
    }
    return config, store, ids


async def test_processing_lists_placed_letters_newest_first_and_resends_from_the_list(setup: tuple[Config, Store, dict[str, str]]) -> None:
    config, store, ids = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        queue = (await c.get("/console/queue")).text
        assert 'href="/console/placed"' in queue  # the way in from the queue
        page = (await c.get("/console/placed")).text
        assert page.index("Momsangivelse Q2") < page.index("Rykker")
        assert "Venter" not in page and "B&#39;s brev" not in page and ids["theirs"] not in page
        assert f'action="/console/trace/{ids["older"]}/resend"' in page
        assert f'href="/console/correct/{ids["wrong"]}"' in page
        done = await c.post(f"/console/trace/{ids['older']}/resend", data={"csrf": csrf_of(page), "to": ""})
        assert done.status_code == 303 and done.headers["location"] == "/console/placed?done=resent"
        assert "The letter is queued to be sent again." in (await c.get(done.headers["location"])).text
    with store.read() as session:
        row = session.exec(select(Delivery).where(Delivery.message_id == ids["older"])).one()
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "resent")).one()
    assert row.status == "pending" and audit.username == "ib" and audit.message_id == ids["older"]


async def test_a_wrong_placement_is_corrected_taught_and_audited(setup: tuple[Config, Store, dict[str, str]]) -> None:
    config, store, ids = setup
    assert "Momsangivelse Q2" not in {e.title for e in confirmed_examples(store, ORG_A)}  # a model's guess
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        page = (await c.get(f"/console/correct/{ids['wrong']}")).text
        assert "Momsangivelse Q2" in page and "reception" in page and 'id="recipient"' in page
        refused = await c.post(f"/console/correct/{ids['wrong']}", data={"csrf": csrf_of(page), "typed": "nobody"})
        assert refused.status_code == 400
        done = await c.post(f"/console/correct/{ids['wrong']}", data={"csrf": csrf_of(page), "typed": "Bo Holm"})
        assert done.status_code == 303 and done.headers["location"] == "/console/placed?done=corrected"
        # another organisation's letter: as if it did not exist
        assert (await c.get(f"/console/correct/{ids['theirs']}")).status_code == 404
        assert (await c.get(f"/console/correct/{ids['held']}")).status_code == 404  # held: placed from the queue
    with store.read() as session:
        decision = session.exec(select(RoutingDecision).where(RoutingDecision.message_id == ids["wrong"])
                                .order_by(RoutingDecision.id.desc())).first()  # type: ignore[union-attr]
        rows = {d.recipient: d.status for d in session.exec(select(Delivery).where(Delivery.message_id == ids["wrong"]))}
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "corrected")).one()
    assert decision is not None and decision.decided_by == "hand" and decision.recipients == ["bogholderi"]
    assert decision.explanation["corrected"]["decided_by"] == "model"
    assert rows == {"reception": "delivered", "bogholderi": "pending"}
    assert audit.username == "ib" and audit.detail["recipient"] == "bogholderi"
    assert audit.detail["overruled"] == "model" and audit.address == "10.0.0.7"
    # the model learns the right recipient from it: a confirmed example for the next training
    assert {e.title: e.label for e in confirmed_examples(store, ORG_A)}["Momsangivelse Q2"] == "bogholderi"


async def test_the_trace_offers_the_correction_to_those_who_may_place(setup: tuple[Config, Store, dict[str, str]]) -> None:
    config, store, ids = setup
    user(store, "arkiv", "processing+archive")
    async with client(console_app(store, config)) as c:
        await sign_in(c, "arkiv")
        assert f'href="/console/correct/{ids["wrong"]}"' in (await c.get(f"/console/trace/{ids['wrong']}")).text
    async with client(console_app(store, config)) as c:
        await sign_in(c, "fb")
        page = (await c.get(f"/console/trace/{ids['wrong']}")).text
        assert "/console/correct/" not in page
        assert (await c.get(f"/console/correct/{ids['wrong']}")).status_code == 404
