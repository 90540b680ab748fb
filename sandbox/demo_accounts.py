"""The demo's console accounts for `make run`: an administrator and a receptionist, with fresh random
passwords at every start, printed once to the terminal and stored only as argon2 hashes. When the sandbox
plays the console's identity provider, they are linked to two of its people (a third has no account)."""

from __future__ import annotations

import secrets
import sys
from typing import TextIO

from sqlmodel import select

from core.config import Config
from core.storage.accounts import ConsoleUser, ConsoleSession
from core.storage.db import Store
from postbud.console.accounts import add_user, hash_password, identity_key
from sandbox.identity import DEMO_PEOPLE, serves_identity_provider

DEMO_ACCOUNTS = (("demo-admin", "administrator"), ("demo-reception", "processing"))
# Who each demo account is at the sandbox's identity provider (sandbox/identity.py).
DEMO_IDENTITIES = {"demo-admin": "anna", "demo-reception": "rasmus"}


def _identity(config: Config, username: str) -> str | None:
    if serves_identity_provider(config) is None or config.console.oidc is None:
        return None
    value = DEMO_PEOPLE[DEMO_IDENTITIES[username]].get(config.console.oidc.claim)
    return identity_key(value) if isinstance(value, str) else None


def ensure_demo_accounts(store: Store, config: Config, *, out: TextIO | None = None) -> dict[str, str]:
    """Create the demo accounts (or give them new passwords) for every configured organisation; print
    where to sign in and the passwords. Returns {user: password} for tests; nothing is written to a file."""
    if not config.console.enabled:
        return {}
    cvrs = [o.cvr for o in config.organisations]
    chosen: dict[str, str] = {}
    for username, profile in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12)
        with store.transaction() as session:
            row = session.exec(select(ConsoleUser).where(ConsoleUser.username == username)).first()
            if row is not None:
                row.password_hash = hash_password(password)
                row.organisations = cvrs
                row.disabled = False
                row.oidc_identity = _identity(config, username)
                session.add(row)
                for old in session.exec(select(ConsoleSession).where(ConsoleSession.user_id == row.id)):
                    session.delete(old)
        if row is None:
            add_user(store, username, password, profile=profile, organisations=cvrs, actor="sandbox",
                     oidc_identity=_identity(config, username))
        chosen[username] = password
    host, port = config.http.host_port
    stream = out or sys.stderr
    stream.write(f"\nconsole: http://{host}:{port}/console/ — demo accounts (new passwords at every start):\n")
    for username, profile in DEMO_ACCOUNTS:
        stream.write(f"  {username:<15} {chosen[username]:<18} ({profile})\n")
    if config.console.oidc is not None and serves_identity_provider(config):
        people = ", ".join(f"{DEMO_IDENTITIES.get(u, '?')} as {u}" for u, _ in DEMO_ACCOUNTS)
        stream.write(f"  or \"{config.console.oidc.display_name}\" (the sandbox's identity provider): {people}; "
                     "ukendt has no account and is refused\n")
    stream.flush()
    return chosen
