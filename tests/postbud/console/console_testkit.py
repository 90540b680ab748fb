"""Helpers for the console tests: a console on a test store, accounts per profile, signing in."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette

from core.config import Config
from core.storage.db import Store
from core.storage.models import RoutingDecision
from postbud.console.accounts import add_user
from postbud.console.app import console_mount
from tests.postbud.ops_testkit import ORG_A, ORG_B

PASSWORD = "correct horse battery"


@dataclass
class FakeDirectory:
    """Approved recipients per organisation: reception and bogholderi in A, one in B, a group in A."""

    people: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {
        ORG_A: {"reception": ["Alice Jensen", "Reception"], "bogholderi": ["Bo Holm", "Bogholderiet"]},
        ORG_B: {"b-reception": ["Birte Berg"]},
    })
    group_table: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {ORG_A: {"alle": ["reception", "bogholderi"]}})

    def ids(self, organisation: str, /) -> set[str]:
        return set(self.people.get(organisation, {})) | set(self.group_table.get(organisation, {}))

    def groups(self, organisation: str, /) -> Mapping[str, Sequence[str]]:
        return self.group_table.get(organisation, {})

    def names(self, organisation: str, /) -> Mapping[str, Sequence[str]]:
        return self.people.get(organisation, {})

    def organisations(self) -> Collection[str]:
        return set(self.people)

    def members(self, organisation: str, target: str, /) -> tuple[str, ...]:
        if target in self.group_table.get(organisation, {}):
            return tuple(self.group_table[organisation][target])
        if target in self.people.get(organisation, {}):
            return (target,)
        raise KeyError(target)

    def channel(self, organisation: str, recipient: str, /, *, enabled: Collection[str]) -> str:
        return "email"


def console_app(store: Store, config: Config, directory: FakeDirectory | None = None) -> Starlette:
    chosen = directory or FakeDirectory()
    return Starlette(routes=[console_mount(store, lambda: config, lambda: chosen)])


def client(app: Starlette, *, https: bool = False) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.7", 5000)),
                             base_url="https://postbud" if https else "http://postbud")


def user(store: Store, name: str, profile: str, orgs: Sequence[str] = (ORG_A,), recipient: str | None = None) -> str:
    add_user(store, name, PASSWORD, profile=profile, organisations=list(orgs), recipient=recipient,
             language="en")
    return name


async def sign_in(c: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await c.post("/console/signin", data={"username": name, "password": password})


async def through_provider(c: httpx.AsyncClient, person: str = "anna") -> tuple[str, str]:
    """The browser's trip: the console sends it to the provider, the person signs in there (login_hint
    skips the page), and the provider sends it back. Returns the authorization URL and the way back."""
    start = await c.get("/console/signin/oidc")
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    async with httpx.AsyncClient(verify=False) as browser:  # plain http to the fake: no trust store to load
        back = await browser.get(f"{authorize}&login_hint={person}")
    assert back.status_code == 302, back.text
    return authorize, back.headers["location"]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def suggest(store: Store, message_id: str, suggestions: list[dict[str, object]]) -> None:
    """Record the model's suggestions as the router's last decision for a held letter."""
    with store.transaction() as session:
        session.add(RoutingDecision(message_id=message_id, action="hold", decided_by="model",
                                    recipients=[], explanation={"suggestions": suggestions}))


__all__ = ["ORG_A", "ORG_B"]
