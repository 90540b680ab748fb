"""`make run`'s letter by post: dropped once, routed by the example rules to the demo recipient who chose
post, by the post channel (the print itself: tests/postbud/test_sandbox_run.py and tests/delivery/test_post_channel.py)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from core.storage.models import Delivery
from postbud.daemon import Daemon
from postbud.runtime import Runtime
from sandbox.demo import write_demo_recipients
from sandbox.demo_post import drop_post_letter
from sandbox.mailserver import ensure_demo_recipient
from tests.conftest import MakeConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'postbud.db'}"


def test_the_demo_letter_by_post_is_routed_to_the_post_recipient(make_config: MakeConfig, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTBUD_TEST_POST", "not used: nothing is sent here")
    write_demo_recipients(tmp_path / "recipients.toml", ["12345678"], ensure_demo_recipient(tmp_path / "keys"))
    shutil.copytree(ROOT / "rules" / "examples", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    config = make_config(extra=f'[rules]\ndirectory = "{tmp_path / "rules"}"\n[recipients]\n'
                               f'file = "{tmp_path / "recipients.toml"}"\n[delivery]\nchannels = ["email", "post"]\n'
                               '[delivery.post]\napi_url = "https://127.0.0.1:1"\nclient_id = "c"\n'
                               'client_secret = { env = "POSTBUD_TEST_POST" }\norganisation = "o"')
    assert drop_post_letter(config, tmp_path / "sandbox") == 1
    assert drop_post_letter(config, tmp_path / "sandbox") == 0  # once per sandbox folder
    runtime = Runtime.create(config)

    async def collect_and_route() -> None:
        await runtime.dispatcher.run_all_once()
        await Daemon(runtime).route()
        await runtime.aclose()

    asyncio.run(collect_and_route())
    with runtime.store.read() as session:
        rows = [(d.recipient, d.channel) for d in session.exec(select(Delivery))]
    assert rows == [("archive", "post")]
