"""`make run`'s demo console accounts: printed once at start, stored only as argon2 hashes, never in a file."""

from __future__ import annotations

import io

from postbud.console import accounts
from sandbox.demo_accounts import ensure_demo_accounts
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import store_for


def test_demo_accounts_are_printed_once_and_never_written_in_clear(make_config: MakeConfig) -> None:
    config = make_config(extra="[console]\nenabled = true")
    store = store_for(config)
    out = io.StringIO()
    first = ensure_demo_accounts(store, config, out=out)
    assert set(first) == {"demo-admin", "demo-reception"}
    assert all(password in out.getvalue() for password in first.values())
    assert {(u.username, u.profile) for u in accounts.users(store)} == {("demo-admin", "administrator"),
                                                                     ("demo-reception", "processing")}
    for password in first.values():
        for path in config.base_dir.rglob("*"):
            if path.is_file():
                assert password.encode() not in path.read_bytes(), path
        signed = accounts.authenticate(store, "demo-admin", first["demo-admin"], address=None,
                                       max_failures=5, window_minutes=15)
        assert signed.user is not None
    # a restart gives new passwords; the old ones stop working
    second = ensure_demo_accounts(store, config, out=io.StringIO())
    assert second["demo-admin"] != first["demo-admin"]
    assert accounts.authenticate(store, "demo-admin", first["demo-admin"], address=None, max_failures=5,
                                 window_minutes=15).user is None


def test_no_demo_accounts_without_the_console(make_config: MakeConfig) -> None:
    config = make_config()
    store = store_for(config)
    assert ensure_demo_accounts(store, config, out=io.StringIO()) == {}
    assert accounts.users(store) == []
