"""Issue 14 finding 5: e-Boks as the protocol has it: no invented endpoints, the sender's id kept."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sandbox.providers.eboks import FakeEboks
from sandbox.providers.eboks_model import FakeMessage
from tests.connectors.eboks.conftest import CVR

ROOT = Path(__file__).resolve().parents[3]


def _letter(message_id: str) -> FakeMessage:
    return FakeMessage(message_id=message_id, subject="Årsopgørelse", sender="Nordisk Erhvervsbank A/S",
                       received=datetime(2025, 3, 4, 9, 30, tzinfo=timezone.utc), format="plain",
                       body="Kære kunde".encode("latin-1"), sender_id="1234567")


async def test_acknowledging_sends_nothing_the_protocol_does_not_have(fake: FakeEboks, make_connector: Any) -> None:
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000011"))
    connector = make_connector()
    calls: list[tuple[str, str]] = []
    original = connector._session.request

    async def recording(method: str, path: str, **kwargs: Any) -> Any:
        calls.append((method, path))
        return await original(method, path, **kwargs)

    connector._session.request = recording
    try:
        ref = (await connector.list_new(None)).refs[0]
        await connector.fetch(ref)
        before = list(calls)
        await connector.acknowledge(ref)
        await connector.acknowledge(ref)
        assert calls == before  # the /content download already marked it read; nothing else exists
        assert (await connector.list_new(None)).refs == ()
    finally:
        await connector.aclose()
    assert all(method == "GET" for method, _ in calls)
    assert not any(path.endswith("/read") for _, path in calls)
    assert fake.acknowledged() == {ref.key}


async def test_the_sender_id_is_kept(fake: FakeEboks, make_connector: Any) -> None:
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000012"))
    connector = make_connector()
    try:
        fetched = await connector.fetch((await connector.list_new(None)).refs[0])
    finally:
        await connector.aclose()
    assert (fetched.message.sender.id, fetched.message.sender.id_type) == ("1234567", "EBOKS")
    assert fetched.message.sender.name == "Nordisk Erhvervsbank A/S"


def test_the_acknowledgement_promise_names_the_e_boks_exception() -> None:
    readme = (ROOT / "README.md").read_text()
    promise = readme[readme.index("acknowledged at the provider"):][:1200]
    assert "e-Boks" in promise and "fetch" in promise
