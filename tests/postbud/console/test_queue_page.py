"""The manual queue page: oldest first with age and reason, a letter's text and the model's top three,
placing by dropdown or typed name through router.queue.assign, and never placing one letter twice."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlmodel import select

from core.storage.accounts import AuditEvent
from core.storage.db import Store
from core.storage.models import Delivery, Message, RoutingDecision
from tests.conftest import MakeConfig
from tests.postbud.console.console_testkit import (
    ORG_B, client, console_app, csrf_of, sign_in, suggest, user,
)
from tests.postbud.ops_testkit import Spec, add, days_ago, store_for
from datetime import datetime, timezone

NOW = datetime.now(timezone.utc)


@pytest.fixture
def setup(make_config: MakeConfig) -> tuple[object, Store, list[str]]:
    config = make_config(extra="[console]\nenabled = true")
    store = store_for(config)
    user(store, "ib", "processing")
    ids = [
        add(store, Spec(days_ago(1, NOW), title="Nyere brev", status="held", text="Kære modtager, nyere.")),
        add(store, Spec(days_ago(3, NOW), title="Ældste brev", status="held", text="Kære bogholderi, moms.")),
        add(store, Spec(days_ago(2, NOW), org=ORG_B, title="B's brev", status="held")),
    ]
    with store.transaction() as session:
        for mid in ids:
            row = session.get(Message, mid)
            assert row is not None
            row.status_reason = "no rule matched"
    suggest(store, ids[1], [{"label": "bogholderi", "probability": 0.71}, {"label": "reception", "probability": 0.2},
                            {"label": "alle", "probability": 0.05}, {"label": "x", "probability": 0.04}])
    return config, store, ids


async def test_the_queue_lists_only_the_organisations_held_letters_oldest_first(setup: tuple) -> None:
    config, store, (newer, oldest, theirs) = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        page = (await c.get("/console/queue")).text
    assert page.index("Ældste brev") < page.index("Nyere brev")
    assert "B&#39;s brev" not in page and "B's brev" not in page
    assert "3.0 d" in page and "no rule matched" in page and "(2 held)" in page


async def test_a_letter_shows_its_text_top_three_and_approved_recipients(setup: tuple) -> None:
    config, store, (_, oldest, _) = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        page = (await c.get(f"/console/queue/{oldest}")).text
    assert "Kære bogholderi, moms." in page
    assert "bogholderi — 71 %" in page and "reception — 20 %" in page and "alle — 5 %" in page
    assert "x — 4 %" not in page  # only the top three
    assert '<option value="bogholderi" selected>' in page and '<option value="alle"' in page
    assert "b-reception" not in page  # another organisation's recipients are not offered


async def test_placing_routes_the_letter_audits_it_and_opens_the_next(setup: tuple) -> None:
    config, store, (newer, oldest, _) = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        page = (await c.get(f"/console/queue/{oldest}")).text
        response = await c.post(f"/console/queue/{oldest}/place",
                                data={"csrf": csrf_of(page), "recipient": "bogholderi"})
        assert response.status_code == 303
        assert response.headers["location"] == f"/console/queue/{newer}?placed=bogholderi"
        # a typed name is matched as `queue assign` matches it
        page = (await c.get(f"/console/queue/{newer}")).text
        assert '<datalist id="names">' in page
        response = await c.post(f"/console/queue/{newer}/place",
                                data={"csrf": csrf_of(page), "recipient": "bogholderi", "typed": "alice jensen"})
        assert response.headers["location"] == "/console/queue?placed=reception"
    with store.read() as session:
        placed = session.get(Message, oldest)
        assert placed is not None and placed.status == "routed"
        decision = session.exec(select(RoutingDecision).where(RoutingDecision.message_id == oldest,
                                                              RoutingDecision.decided_by == "hand")).one()
        assert decision.recipients == ["bogholderi"] and decision.actor == "console:ib"
        assert [d.recipient for d in session.exec(select(Delivery).where(Delivery.message_id == oldest))] == ["bogholderi"]
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "placed")).all()
        assert {(a.username, a.message_id, a.address) for a in audit} == {("ib", oldest, "10.0.0.7"), ("ib", newer, "10.0.0.7")}


async def test_an_unapproved_or_other_organisations_recipient_is_refused(setup: tuple) -> None:
    config, store, (_, oldest, theirs) = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        csrf = csrf_of((await c.get(f"/console/queue/{oldest}")).text)
        for name in ("Birte Berg", "mallory@evil.example", ""):
            response = await c.post(f"/console/queue/{oldest}/place", data={"csrf": csrf, "recipient": name})
            assert response.status_code == 400
        # another organisation's letter cannot be placed by guessing its id
        response = await c.post(f"/console/queue/{theirs}/place", data={"csrf": csrf, "recipient": "reception"})
        assert response.status_code == 409
    with store.read() as session:
        assert {m.status for m in session.exec(select(Message))} == {"held"}


async def test_two_people_placing_one_letter_at_once_place_it_once(setup: tuple) -> None:
    config, store, (_, oldest, _) = setup
    user(store, "bo", "processing")
    app = console_app(store, config)
    async with client(app) as ib, client(app) as bo:
        await sign_in(ib, "ib")
        await sign_in(bo, "bo")
        forms = [csrf_of((await who.get(f"/console/queue/{oldest}")).text) for who in (ib, bo)]
        results = await asyncio.gather(
            ib.post(f"/console/queue/{oldest}/place", data={"csrf": forms[0], "recipient": "bogholderi"}),
            bo.post(f"/console/queue/{oldest}/place", data={"csrf": forms[1], "recipient": "reception"}),
        )
    assert sorted(r.status_code for r in results) == [303, 409]
    with store.read() as session:
        assert len(session.exec(select(RoutingDecision).where(RoutingDecision.message_id == oldest,
                                                              RoutingDecision.decided_by == "hand")).all()) == 1
        assert len(session.exec(select(Delivery).where(Delivery.message_id == oldest)).all()) == 1


async def test_the_queue_pages_by_seeking_after_the_last_row(make_config: MakeConfig) -> None:
    config = make_config(extra="[console]\nenabled = true\npage_size = 2")
    store = store_for(config)
    user(store, "ib", "processing")
    titles = [f"Brev {i}" for i in range(5)]
    for i, title in enumerate(titles):
        add(store, Spec(days_ago(10 - i, NOW), title=title, status="held"))
    seen: list[str] = []
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        url = "/console/queue"
        while url:
            page = (await c.get(url)).text
            assert "(5 held)" in page
            seen += [t for t in titles if f">{t}<" in page]
            more = re.search(r'id="more" href="\?after=([^"]+)"', page)
            url = f"/console/queue?after={more.group(1)}" if more else ""
    assert seen == titles
