"""Signing in to the console: argon2 accounts, cookie flags, throttling, timeouts, CSRF, sign-out, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from core.storage.accounts import AuditEvent, ConsoleSession, ConsoleUser
from core.storage.db import Store
from postbud.console import accounts
from tests.conftest import MakeConfig
from tests.postbud.console.console_testkit import PASSWORD, client, console_app, csrf_of, sign_in, user
from tests.postbud.ops_testkit import store_for

CONSOLE = "[console]\nenabled = true\nmax_failed_signins = 3\nidle_timeout_minutes = 30\nabsolute_timeout_hours = 8"


@pytest.fixture
def setup(make_config: MakeConfig) -> tuple[object, Store]:
    config = make_config(extra=CONSOLE)
    store = store_for(config)
    user(store, "ib", "processing")
    return config, store


def actions(store: Store) -> list[str]:
    with store.read() as session:
        return [e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.at)))]


async def test_password_is_stored_as_argon2_and_a_sign_in_sets_a_strict_httponly_cookie(setup: tuple) -> None:
    config, store = setup
    with store.read() as session:
        row = session.exec(select(ConsoleUser)).one()
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    async with client(console_app(store, config), https=True) as c:
        response = await sign_in(c, "ib")
        assert response.status_code == 303 and response.headers["location"] == "/console/queue"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie and "path=/console" in cookie
        assert (await c.get("/console/queue")).status_code == 200
    # server-side: the table holds the token's digest, never the token itself
    token = response.cookies["postbud_console"]
    with store.read() as session:
        assert [s.id for s in session.exec(select(ConsoleSession))] != [token]
    assert actions(store) == ["user_added", "signin"]


async def test_plain_http_cookie_is_not_secure_unless_configured(setup: tuple) -> None:
    config, store = setup
    async with client(console_app(store, config)) as c:
        cookie = (await sign_in(c, "ib")).headers["set-cookie"].lower()
    assert "secure" not in cookie and "httponly" in cookie


async def test_wrong_password_and_unknown_user_are_refused_alike_and_audited(setup: tuple) -> None:
    config, store = setup
    async with client(console_app(store, config)) as c:
        wrong = await sign_in(c, "ib", "not the password")
        nobody = await sign_in(c, "nobody", "not the password")
        assert wrong.status_code == nobody.status_code == 401
        assert "Forkert brugernavn eller adgangskode" in wrong.text
        assert "set-cookie" not in wrong.headers
        assert (await c.get("/console/queue")).status_code == 303
    with store.read() as session:
        failed = list(session.exec(select(AuditEvent).where(AuditEvent.action == "signin_failed")))
    assert {(e.username, e.address) for e in failed} == {("ib", "10.0.0.7"), ("nobody", "10.0.0.7")}


async def test_throttled_per_account_even_with_the_right_password(setup: tuple) -> None:
    config, store = setup
    async with client(console_app(store, config)) as c:
        for _ in range(3):
            assert (await sign_in(c, "ib", "guess guess guess")).status_code == 401
        locked = await sign_in(c, "ib")
        assert locked.status_code == 429 and "set-cookie" not in locked.headers
    assert actions(store)[-1] == "signin_throttled"


async def test_throttled_per_address_across_accounts(setup: tuple) -> None:
    config, store = setup
    user(store, "bo", "processing")
    async with client(console_app(store, config)) as c:
        for name in ("x1", "x2", "x3"):
            await sign_in(c, name, "guess guess guess")
        assert (await sign_in(c, "bo")).status_code == 429


async def test_idle_and_absolute_timeouts_end_a_session(setup: tuple) -> None:
    config, store = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        # GIVEN the session was last used 31 minutes ago
        with store.transaction() as session:
            row = session.exec(select(ConsoleSession)).one()
            row.last_seen_at -= timedelta(minutes=31)
        response = await c.get("/console/queue")
        assert response.status_code == 303 and response.headers["location"] == "/console/signin?expired=1"
        assert "udløbet" in (await c.get("/console/signin?expired=1")).text
        # AND one signed in 9 hours ago, though used a minute ago, is over too
        await sign_in(c, "ib")
        with store.transaction() as session:
            row = session.exec(select(ConsoleSession)).one()
            row.created_at -= timedelta(hours=9)
        assert (await c.get("/console/queue")).status_code == 303
    with store.read() as session:
        assert session.exec(select(ConsoleSession)).all() == []


async def test_a_post_without_the_csrf_token_is_refused(setup: tuple) -> None:
    config, store = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        page = (await c.get("/console/queue")).text
        assert (await c.post("/console/signout", data={})).status_code == 403
        assert (await c.post("/console/signout", data={"csrf": "forged"})).status_code == 403
        assert (await c.get("/console/queue")).status_code == 200  # still signed in
        assert (await c.post("/console/signout", data={"csrf": csrf_of(page)})).status_code == 303
        assert (await c.get("/console/queue")).status_code == 303


async def test_sign_out_everywhere_ends_every_session_of_the_account(setup: tuple) -> None:
    config, store = setup
    app = console_app(store, config)
    async with client(app) as phone, client(app) as desk:
        await sign_in(phone, "ib")
        await sign_in(desk, "ib")
        page = (await desk.get("/console/queue")).text
        await desk.post("/console/signout/everywhere", data={"csrf": csrf_of(page)})
        assert (await phone.get("/console/queue")).status_code == 303


async def test_a_disabled_account_is_signed_out_and_cannot_sign_in(setup: tuple) -> None:
    config, store = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        accounts.disable(store, "ib", actor="admin")
        assert (await c.get("/console/queue")).status_code == 303
        assert (await sign_in(c, "ib")).status_code == 401
    assert "signin_disabled" in actions(store) and "user_disabled" in actions(store)


async def test_language_is_per_user(setup: tuple) -> None:
    config, store = setup
    async with client(console_app(store, config)) as c:
        await sign_in(c, "ib")
        page = await c.get("/console/queue")
        assert 'lang="en"' in page.text and "Manual queue" in page.text
        await c.post("/console/language", data={"csrf": csrf_of(page.text), "language": "da"})
        assert "Manuel kø" in (await c.get("/console/queue")).text
    assert actions(store)[-1] == "language_set"
