"""The sandbox's print-and-mail fake starts with the sandbox, on the port and credentials config.example.toml names."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from core.domain import Document, DocumentKind, File, MessageType, NormalizedMessage, Party
from delivery.outbound import Outbound
from delivery.post import PostChannel, post_client
from delivery.recipients import PostalAddress, Recipient
from sandbox.demo import start_sandbox
from tests.postbud.test_sandbox_run import example_config


async def test_the_example_config_posts_through_the_sandbox_fake(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = example_config(tmp_path)
    config = config.model_copy(update={"sandbox": config.sandbox.model_copy(update={"messages_per_cvr": 0})})
    handle = await start_sandbox(config)
    try:
        settings = config.delivery.post
        assert settings is not None and "post" in config.delivery.channels
        assert any(line.startswith("post ") for line in handle.describe())
        channel = PostChannel(post_client(settings), settings)
        recipient = Recipient(id="arkiv", name="Arkiv", channel="post", postal_address=PostalAddress(
            name="Eksempel Holding ApS", street="Vestergade 1", postcode="8000", city="Aarhus C"))
        message = NormalizedMessage(
            message_id="m1", message_type=MessageType.DIGITALPOST, title="Brev",
            sender=Party(id="skat", name="Skattestyrelsen"), recipient=Party(id="12345678"), format="eml",
            documents=(Document(DocumentKind.MAIN, (File("brev.pdf", "application/pdf", b"%PDF-1.4 brev"),)),))
        sent = await channel.send(Outbound("tok1", message, recipient, b"", "trace1", dt.datetime.now(dt.UTC)))
        await channel.aclose()
    finally:
        await handle.aclose()
    assert sent.detail["cost"] == 12.5
    [pdf] = (config.sandbox.folder / "post").glob("*.pdf")
    assert pdf.read_bytes() == b"%PDF-1.4 brev"
    assert json.loads(pdf.with_suffix(".json").read_text())["address"]["city"] == "Aarhus C"
