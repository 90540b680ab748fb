"""Fixtures shared by every test folder: configs on disk, databases (SQLite, and PostgreSQL when asked)."""

from __future__ import annotations

import logging
import os
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy

from core.config import Config
from core.configfile import load_config
from sandbox.mailserver import SandboxMailServer

SHARED = Path(os.environ.get("POSTBUD_SHARED") or Path(__file__).resolve().parents[2] / "shared")  # a worktree sets it
PG_URL = os.environ.get("POSTBUD_TEST_PG")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger's handlers and level, and the quieted loggers' levels, as they were before the test:
    for tests that let postbud set up logging in-process (`postbud run`)."""
    root = logging.getLogger()
    names = ("alembic", "apscheduler", "httpx", "uvicorn.access", "aiosmtpd", "mail.log")
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names}
    yield
    root.handlers[:], level, levels = saved
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


def _pg_schema_url(base: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite and, when POSTBUD_TEST_PG is set, on PostgreSQL too."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'postbud.db'}"
        return
    if not PG_URL:
        pytest.skip("POSTBUD_TEST_PG is not set")
    yield from _pg_schema_url(PG_URL)


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("POSTBUD_TEST_PG is not set")
    yield from _pg_schema_url(PG_URL)


MakeConfig = Callable[..., Config]


@pytest.fixture
def make_config(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> MakeConfig:
    """Writes a config with one organisation and a drop folder (settle 0) and loads it."""
    monkeypatch.delenv("POSTBUD_DATABASE_URL", raising=False)
    monkeypatch.delenv("POSTBUD_KEYRING", raising=False)

    def make(
        extra_org: str = 'default_route = ["reception"]', extra: str = "", listen: str = "127.0.0.1:0"
    ) -> Config:
        path = tmp_path / "postbud.toml"
        path.write_text(
            textwrap.dedent(
                f"""
                [database]
                url = "{database_url}"
                [http]
                listen = "{listen}"
                {extra}
                [[organisations]]
                cvr = "12345678"
                name = "Test ApS"
                {extra_org}
                  [[organisations.mailboxes]]
                  name = "drop"
                  type = "folder"
                  path = "drop"
                  settle_seconds = 0
                """
            ),
            encoding="utf-8",
        )
        return load_config(path)

    return make


@pytest.fixture
async def mail_server(tmp_path: Path) -> AsyncIterator[SandboxMailServer]:
    """The sandbox's TLS mail server on 127.0.0.1, keeping what it receives under tmp_path/mail."""
    server = SandboxMailServer(tmp_path / "mail", tmp_path / "ca")
    await server.start()
    yield server
    await server.stop()
