"""The demo's console accounts for `make run`: an administrator and a receptionist, with fresh random
passwords at every start, printed once to the terminal and stored only as argon2 hashes."""

from __future__ import annotations

import secrets
import sys
from typing import TextIO

from sqlmodel import select

from core.config import Config
from core.storage.accounts import ConsoleUser, ConsoleSession
from core.storage.db import Store
from postbud.console.accounts import add_user, hash_password

DEMO_ACCOUNTS = (("demo-admin", "administrator"), ("demo-reception", "processing"))


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
                session.add(row)
                for old in session.exec(select(ConsoleSession).where(ConsoleSession.user_id == row.id)):
                    session.delete(old)
        if row is None:
            add_user(store, username, password, profile=profile, organisations=cvrs, actor="sandbox")
        chosen[username] = password
    host, port = config.http.host_port
    stream = out or sys.stderr
    stream.write(f"\nconsole: http://{host}:{port}/console/ — demo accounts (new passwords at every start):\n")
    for username, profile in DEMO_ACCOUNTS:
        stream.write(f"  {username:<15} {chosen[username]:<18} ({profile})\n")
    stream.flush()
    return chosen
