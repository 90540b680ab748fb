"""The read-only HTTP API: no token no data, one organisation's token never sees another's messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from postbud import locations
from postbud.api import TokenError, TokenTable, api_mount
from core.settings import SecretRef
from core.metrics import Metrics
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import ORG_A, ORG_B, Out, Spec, add, days_ago, store_for

TOKEN_A = "a-token-for-organisation-a-0001"
TOKEN_B = "b-token-for-organisation-b-0002"


@dataclass
class Api:
    client: httpx.AsyncClient
    metrics: Metrics
    a: list[str]
    b: list[str]


@pytest.fixture
async def api(make_config: MakeConfig) -> AsyncIterator[Api]:
    store = store_for(make_config())
    a = [
        add(store, Spec(days_ago(1), title="Momsangivelse", decided_by="rule", status="delivered",
                        outbox=[Out("bogholderi@a.dk")])),
        add(store, Spec(days_ago(2), title="Årsopgørelse", decided_by="rule", status="delivered",
                        outbox=[Out("https://intranet.a.dk/hook", channel="webhook")])),
    ]
    b = [add(store, Spec(days_ago(1), org=ORG_B, title="Momsangivelse B", decided_by="rule",
                         outbox=[Out("bogholderi@b.dk")]))]
    metrics = Metrics()
    tokens = TokenTable.from_tokens({ORG_A: [TOKEN_A], ORG_B: [TOKEN_B]})
    transport = httpx.ASGITransport(app=Starlette(routes=[api_mount(store, tokens, metrics)]))
    async with httpx.AsyncClient(transport=transport, base_url="http://postbud") as client:
        yield Api(client, metrics, a, b)
    store.dispose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [{}, auth("wrong-token-wrong-token"), {"Authorization": f"Basic {TOKEN_A}"},
                                     {"Authorization": "Bearer"}])
async def test_no_valid_token_no_data(api: Api, headers: dict[str, str]) -> None:
    for path in ("/api/v1/messages", f"/api/v1/messages/{api.a[0]}"):
        response = await api.client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Momsangivelse" not in response.text


async def test_each_token_sees_only_its_own_organisation(api: Api) -> None:
    mine = (await api.client.get("/api/v1/messages", headers=auth(TOKEN_A))).json()
    assert sorted(m["id"] for m in mine) == sorted(api.a)
    assert {m["organisation"] for m in mine} == {ORG_A}
    theirs = (await api.client.get("/api/v1/messages", headers=auth(TOKEN_B), params={"text": "moms"})).json()
    assert [m["id"] for m in theirs] == api.b
    # asking for the other organisation explicitly is an unknown parameter, not a way in
    assert (await api.client.get("/api/v1/messages", headers=auth(TOKEN_B), params={"organisation": ORG_A})).status_code == 400

    shown = await api.client.get(f"/api/v1/messages/{api.a[0]}", headers=auth(TOKEN_A))
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert [e["kind"] for e in shown.json()["events"]][:2] == ["collected", "routed"]
    assert shown.json()["deliveries"][0]["recipient"] == "bogholderi@a.dk"
    for other in (api.a[0], api.a[0][:10]):
        assert (await api.client.get(f"/api/v1/messages/{other}", headers=auth(TOKEN_B))).status_code == 404
    assert (await api.client.get(f"/api/v1/messages/{api.b[0]}", headers=auth(TOKEN_A))).status_code == 404
    assert api.metrics.registry.get_sample_value("postbud_api_requests_total",
                                                 {"endpoint": "show", "outcome": "not_found"}) == 3


async def test_search_filters_over_http(api: Api) -> None:
    async def ids(**params: str) -> list[str]:
        response = await api.client.get("/api/v1/messages", headers=auth(TOKEN_A), params=params)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()]

    assert await ids(channel="webhook") == [api.a[1]]
    assert await ids(recipient="bogholderi") == [api.a[0]]
    assert await ids(text="skattestyrelsen") == api.a  # text matches the sender too; newest first
    assert await ids(since=days_ago(1.5).isoformat()) == [api.a[0]]
    assert await ids(until=days_ago(1.5).isoformat()) == [api.a[1]]
    assert await ids(limit="1") == [api.a[0]]
    for bad in ({"limit": "0"}, {"limit": "x"}, {"since": "yesterday"}):
        response = await api.client.get("/api/v1/messages", headers=auth(TOKEN_A), params=bad)
        assert response.status_code == 400 and "error" in response.json()


def test_token_table_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TokenError, match="same API token"):
        TokenTable.from_tokens({ORG_A: [TOKEN_A], ORG_B: [TOKEN_A]})
    with pytest.raises(TokenError, match="too short"):
        TokenTable.from_tokens({ORG_A: ["short"]})
    monkeypatch.setenv("POSTBUD_TEST_API_TOKEN", TOKEN_B)
    table = TokenTable.from_refs({ORG_B: [SecretRef(env="POSTBUD_TEST_API_TOKEN")], ORG_A: []})
    assert table.organisation(TOKEN_B) == ORG_B and table.organisation(TOKEN_A) is None


async def test_trusted_locations_admit_a_token_only_from_its_organisations_networks(make_config: MakeConfig) -> None:
    # GIVEN organisation A admits only 192.0.2.0/24 (and a proxy at 10.9.0.1 is trusted); B has no rule
    config = make_config(extra_org='trusted_locations = true\ntrusted_networks = ["192.0.2.0/24"]\n'
                                   f'[[organisations]]\ncvr = "{ORG_B}"\nname = "B ApS"',
                         extra='trusted_proxies = ["10.9.0.1"]')
    store = store_for(config)
    add(store, Spec(days_ago(1), title="Momsangivelse", decided_by="rule", outbox=[Out("bogholderi@a.dk")]))
    metrics = Metrics()
    app = Starlette(routes=[api_mount(store, TokenTable.from_tokens({ORG_A: [TOKEN_A], ORG_B: [TOKEN_B]}), metrics,
                                      config=lambda: config)])

    async def get(peer: str, token: str, forwarded: str | None = None) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        headers = auth(token) | ({"X-Forwarded-For": forwarded} if forwarded else {})
        async with httpx.AsyncClient(transport=transport, base_url="http://postbud") as c:
            return await c.get("/api/v1/messages", headers=headers)

    assert (await get("192.0.2.44", TOKEN_A)).status_code == 200
    outside = await get("198.51.100.7", TOKEN_A)
    assert outside.status_code == 403 and "Momsangivelse" not in outside.text
    assert (await get("198.51.100.7", TOKEN_A, forwarded="192.0.2.44")).status_code == 403  # forged: ignored
    assert (await get("10.9.0.1", TOKEN_A, forwarded="192.0.2.44")).status_code == 200  # the trusted proxy's
    assert (await get("198.51.100.7", TOKEN_B)).status_code == 200  # B has no rule
    assert (await get("198.51.100.7", "wrong-token-wrong-token")).status_code == 401  # no token: still 401
    # a network authorised at run time admits at once
    locations.authorise(store, config, ORG_A, "198.51.100.0/24", actor="admin", address=None, via="cli")
    assert (await get("198.51.100.7", TOKEN_A)).status_code == 200
    assert metrics.registry.get_sample_value("postbud_api_requests_total",
                                             {"endpoint": "search", "outcome": "location_refused"}) == 2
