"""Console tests hash with cheap argon2 parameters: the defaults cost ~50 ms and 64 MiB per hash."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from postbud.console import accounts

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CHEAP_DUMMY = CHEAP.hash("no such account, no such password")


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_hasher", CHEAP)
    monkeypatch.setattr(accounts, "_DUMMY", CHEAP_DUMMY)
