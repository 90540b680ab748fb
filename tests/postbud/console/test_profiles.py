"""Access profiles (seed 002) on the server: for every profile and every console route, what it reaches
and what it does not — another organisation's letters included, by guessing their URLs."""

from __future__ import annotations

from datetime import datetime, timezone

import shutil
from collections.abc import Iterator

import pytest
from fpdf import FPDF
from starlette.routing import Mount, Route

from core.configfile import load_config
from core.storage.db import Store
from postbud.console import accounts
from postbud.console.profiles import Profile
from tests.conftest import MakeConfig
from tests.postbud.console.conftest import CHEAP
from tests.postbud.console.console_testkit import ORG_A, ORG_B, client, console_app, csrf_of, sign_in, user
from tests.postbud.ops_testkit import Out, Spec, add, days_ago, store_for

NOW = datetime.now(timezone.utc)

# What the issue grants each profile, written out here independently of postbud/console/profiles.py.
GRANTS: dict[str, set[str]] = {
    "administrator": {"queue", "place", "trace", "documents", "resend", "stats", "health", "audit", "users",
                      "recipients"},
    "full": {"queue", "place", "trace", "documents", "resend", "stats", "health", "audit"},
    "processing": {"queue", "place", "resend"},
    "processing+archive": {"queue", "place", "resend", "trace", "documents"},
    "feedback": {"stats", "trace"},
    "delivery": {"mine"},
}

# Every console route: method, path (ids filled in below) and the grants any one of which opens it.
ROUTES: list[tuple[str, str, set[str]]] = [
    ("GET", "/queue", {"queue"}),
    ("GET", "/queue/{held}", {"queue"}),
    ("GET", "/queue/{held}/preview.png", {"queue"}),
    ("POST", "/queue/{held}/place", {"place"}),
    ("GET", "/placed", {"queue"}),
    ("GET", "/correct/{delivered}", {"place"}),
    ("POST", "/correct/{delivered}", {"place"}),
    ("GET", "/trace", {"trace", "mine"}),
    ("GET", "/mine", {"mine"}),
    ("GET", "/trace/{delivered}", {"trace", "mine"}),
    ("GET", "/trace/{delivered}/download", {"documents", "mine"}),
    ("POST", "/trace/{delivered}/resend", {"resend"}),
    ("GET", "/stats", {"stats"}),
    ("GET", "/health", {"health"}),
    ("GET", "/users", {"users"}),
    ("POST", "/users/add", {"users"}),
    ("POST", "/users/disable", {"users"}),
    ("GET", "/audit", {"audit"}),
    ("GET", "/recipients", {"recipients"}),
    ("POST", "/recipients/save", {"recipients"}),
    ("POST", "/recipients/remove", {"recipients"}),
    ("POST", "/recipients/group", {"recipients"}),
    ("POST", "/recipients/group/remove", {"recipients"}),
    ("GET", "/locations", {"users"}),
    ("POST", "/locations/add", {"users"}),
    ("POST", "/locations/remove", {"users"}),
]
ANYONE = {"/signin", "/signin/oidc", "/signin/oidc/callback", "/signout", "/signout/everywhere", "/language", "/",
          "/static", "/location/{token}"}


def _paths(routes: list[Route | Mount], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for r in routes:
        if isinstance(r, Mount) and r.path != "/console/static":
            found |= _paths(list(r.routes), prefix + r.path)  # type: ignore[arg-type]
        elif isinstance(r, Mount):
            found.add("/static")
        else:
            found.add((prefix + r.path).removeprefix("/console") or "/")
    return found


def test_every_console_route_is_in_the_table(make_config: MakeConfig) -> None:
    store = store_for(make_config())
    app = console_app(store, make_config())
    listed = {path.replace("{held}", "{message_id}").replace("{delivered}", "{message_id}")
              for _, path, _ in ROUTES}
    assert _paths(list(app.routes)) - ANYONE - {p.replace("{held}", "{message_id}") for p in listed} == set()


def pdf() -> bytes:
    doc = FPDF()
    doc.add_page()
    doc.set_font("helvetica", size=14)
    doc.cell(text="Momsangivelse for 2. kvartal")
    return bytes(doc.output())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Store, dict[str, str]]]:
    # One world for the whole table (SQLite): the rights are checked in code, not by the database.
    patch = pytest.MonkeyPatch()
    patch.setattr(accounts, "_hasher", CHEAP)
    folder = tmp_path_factory.mktemp("profiles")
    path = folder / "postbud.toml"
    path.write_text(f"""
[database]
url = "sqlite:///{folder / 'postbud.db'}"
[encryption]
keyring = "{folder / 'keyring.json'}"
[console]
enabled = true
[[organisations]]
cvr = "{ORG_A}"
name = "Test ApS"
[[organisations]]
cvr = "{ORG_B}"
name = "Other ApS"
""", encoding="utf-8")
    config = load_config(path)
    store = store_for(config)
    ids = {
        "held": add(store, Spec(days_ago(1, NOW), status="held", files=(("brev.pdf", pdf()),))),
        "delivered": add(store, Spec(days_ago(1, NOW), status="delivered", decided_by="rule",
                                     outbox=[Out("reception")])),
        "other_held": add(store, Spec(days_ago(1, NOW), org=ORG_B, status="held")),
        "other_delivered": add(store, Spec(days_ago(1, NOW), org=ORG_B, status="delivered", decided_by="rule",
                                           outbox=[Out("reception")])),
    }
    for profile in Profile:
        user(store, profile.value.replace("+", "-"), profile.value, (ORG_A,),
             recipient="reception" if profile is Profile.DELIVERY else None)
    yield config, store, ids
    store.dispose()
    patch.undo()


@pytest.mark.parametrize("profile", [p.value for p in Profile])
@pytest.mark.parametrize("method,path,needs", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_a_profile_reaches_its_routes_and_nothing_else(world: tuple, profile: str, method: str, path: str,
                                                             needs: set[str]) -> None:
    config, store, ids = world
    async with client(console_app(store, config)) as c:
        await sign_in(c, profile.replace("+", "-"))
        csrf = csrf_of(await _any_page(c))
        own = path.format(held=ids["held"], delivered=ids["delivered"])
        theirs = path.format(held=ids["other_held"], delivered=ids["other_delivered"])
        # Unknown names: a POST that is reached answers 200/400 and changes nothing in the shared world.
        data = {"csrf": csrf, "recipient": "nobody-at-all", "to": "nobody-at-all", "username": "nobody-at-all"}
        mine = await c.request(method, f"/console{own}", data=data if method == "POST" else None)
        other = await c.request(method, f"/console{theirs}", data=data if method == "POST" else None)
    allowed = bool(GRANTS[profile] & needs)
    if path.endswith(".png") and allowed and shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is not installed: no preview to reach")
    if allowed:
        assert mine.status_code in (200, 303, 400), mine.text[:300]  # 400: reached, the form incomplete
    else:
        assert mine.status_code == 404
    if theirs != own:
        # another organisation's letter: not found, or already gone from the queue; never its content
        assert other.status_code in (404, 409)
        assert ids["other_held"] not in other.text and ids["other_delivered"] not in other.text


async def _any_page(c: object) -> str:
    # Every signed-in page carries the session's CSRF token in the header's forms.
    response = await c.get("/console/", follow_redirects=True)  # type: ignore[attr-defined]
    return str(response.text)
