"""mit.dk messages: mapping into the normalized model, mark-read with If-Match, mailbox choice, failure shapes."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import ConfigurationError, AuthError, PermanentError, TransientError
from sandbox.providers.mitdk import FakeMitdk
from sandbox.faults import Fault
from sandbox.generator import generate
from core.domain import DocumentKind, MessageType

CVR = "12345674"


@pytest.fixture
def letters(fake: FakeMitdk) -> list[Any]:
    messages = generate(CVR, 30, seed=6)
    fake.add_messages(messages)
    return messages


async def _all_refs(connector: Any) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    cursor = None
    while True:
        page = await connector.list_new(cursor)
        refs.update({r.key: r for r in page.refs})
        if not page.more:
            return refs
        cursor = page.cursor


async def test_messages_map_with_sender_attention_documents_and_text(
        fake: FakeMitdk, make_connector: Any, letters: list[Any]) -> None:
    connector = make_connector()
    try:
        refs = await _all_refs(connector)
        fetched = {key: (await connector.fetch(ref)).message for key, ref in refs.items()}
    finally:
        await connector.aclose()
    assert set(fetched) == {m.message_id for m in letters}
    for original in letters:
        got = fetched[original.message_id]
        assert got.format == "mitdk" and got.message_type is MessageType.DIGITALPOST
        assert got.title == original.title
        assert (got.sender.id, got.sender.id_type, got.sender.name) == (
            original.sender.id, original.sender.id_type, original.sender.name)
        assert got.recipient.id == CVR
        assert got.sent_at == original.sent_at
        assert got.flags.mandatory == original.flags.mandatory
        assert got.flags.reply_allowed == original.flags.reply_allowed
        assert got.post_type == original.post_type
        if original.attention is not None:
            assert got.attention is not None
            assert got.attention.labels() == original.attention.labels()
        if original.forward is not None:
            assert got.forward is not None and got.forward.message_uuid == original.forward.message_uuid
        if original.main_document is not None:
            main = got.main_document
            assert main is not None and main.files[0].content == original.main_document.files[0].content
            assert main.files[0].media_type == "application/pdf"
            assert [d.kind for d in got.documents] == [d.kind for d in original.documents]
            assert original.sender.name and original.sender.name in got.text
        else:  # a notification-only message arrives as a text document carrying the notification
            assert got.documents[0].kind is DocumentKind.MAIN
            assert original.notification and original.notification in got.text


async def test_mark_read_retries_after_a_stale_version(fake: FakeMitdk, make_connector: Any,
                                                       letters: list[Any]) -> None:
    connector = make_connector()
    try:
        ref = next(iter((await _all_refs(connector)).values()))
        fake.touch(ref.key)  # someone changed the message after we listed it
        fake.touch(ref.key)
        await connector.acknowledge(ref)
        await connector.acknowledge(ref)  # twice is harmless: the re-read sees it read already
    finally:
        await connector.aclose()
    assert fake.acknowledged() == {ref.key}
    assert fake.mailbox_for(CVR).messages[ref.key].read


async def test_mark_read_gives_up_transiently_when_the_version_keeps_moving(
        fake: FakeMitdk, make_connector: Any, letters: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    connector = make_connector(mark_read_attempts=2)
    ref = next(iter((await _all_refs(connector)).values()))
    real_request = connector._client.request

    async def racing(method: str, path: str, **kwargs: Any) -> Any:
        if method == "PATCH":
            fake.touch(ref.key)  # another client wins every race
        return await real_request(method, path, **kwargs)

    monkeypatch.setattr(connector._client, "request", racing)
    try:
        with pytest.raises(TransientError, match="kept changing"):
            await connector.acknowledge(ref)
    finally:
        await connector.aclose()
    assert fake.acknowledged() == set()


async def test_read_messages_are_not_listed_unless_asked(fake: FakeMitdk, make_connector: Any,
                                                         letters: list[Any]) -> None:
    one = letters[0].message_id
    fake.mailbox_for(CVR).messages[one].read = True
    unread_only, everything = make_connector(), make_connector(include_read=True)
    try:
        assert one not in await _all_refs(unread_only)
        assert one in await _all_refs(everything)
    finally:
        await unread_only.aclose()
        await everything.aclose()


@pytest.mark.parametrize("shape", ["error_messages", "rest_exception", "non_json", "truncated"])
async def test_mitdk_failure_shapes_are_transient(fake: FakeMitdk, make_connector: Any, letters: list[Any],
                                                  shape: str) -> None:
    connector = make_connector()
    try:
        await connector.list_new(None)
        if shape == "error_messages":
            fake.error_messages_pending = 1
        elif shape == "rest_exception":
            fake.rest_exceptions_pending = 1
        else:
            fake.faults.inject(Fault.non_json() if shape == "non_json" else Fault.truncated(),
                               path="/messages/query")
        with pytest.raises(TransientError):
            await connector.list_new(None)
        assert (await connector.list_new(None)).refs
    finally:
        await connector.aclose()


async def test_a_poisoned_message_is_permanent_and_keeps_its_json(fake: FakeMitdk, make_connector: Any,
                                                                  letters: list[Any]) -> None:
    poison = letters[3].message_id
    fake.set_poison(poison)
    connector = make_connector()
    try:
        refs = await _all_refs(connector)
        with pytest.raises(PermanentError, match="documents") as caught:
            await connector.fetch(refs[poison])
        assert caught.value.raw is not None and poison.encode() in caught.value.raw
        await connector.fetch(refs[letters[4].message_id])
    finally:
        await connector.aclose()


async def test_an_html_page_in_place_of_a_file_is_never_delivered(fake: FakeMitdk, make_connector: Any,
                                                                  letters: list[Any]) -> None:
    connector = make_connector()
    try:
        ref = next(iter((await _all_refs(connector)).values()))
        fake.faults.inject(Fault.non_json(), path="/content")
        with pytest.raises(TransientError, match="HTML page"):
            await connector.fetch(ref)
    finally:
        await connector.aclose()


async def test_the_mailbox_is_found_by_owner_name(fake: FakeMitdk, make_connector: Any, letters: list[Any]) -> None:
    connector = make_connector(mailbox_id=None, owner_name="testfirma aps")
    try:
        assert await _all_refs(connector)
    finally:
        await connector.aclose()


async def test_the_mailbox_is_found_by_the_organisations_name_by_default(
        fake: FakeMitdk, make_connector: Any, letters: list[Any]) -> None:
    # The listing offers id, dataSource and ownerName only (§2.3): no owner id to match the CVR against.
    connector = make_connector(mailbox_id=None, organisation_name="TESTFIRMA ApS")
    try:
        assert set(await _all_refs(connector)) == {m.message_id for m in letters}
    finally:
        await connector.aclose()


async def test_an_ambiguous_mailbox_is_a_configuration_error_naming_the_choices(
        fake: FakeMitdk, make_connector: Any, letters: list[Any]) -> None:
    connector = make_connector(mailbox_id=None, cvr="11111111", organisation_name="Ukendt ApS")
    try:
        with pytest.raises(ConfigurationError, match="Testfirma ApS") as caught:
            await connector.list_new(None)
        listed = await connector.probe()  # what `postbud connectors probe` prints
    finally:
        await connector.aclose()
    assert not isinstance(caught.value, AuthError)
    assert "Andet Firma A/S" in str(caught.value) and "Delegeret Person" in str(caught.value)
    assert {b["ownerName"] for b in listed} == {"Delegeret Person", "Testfirma ApS", "Andet Firma A/S"}
    assert all(b["dataSource"] == "DP_PUBLIC" and b["id"] and not b["chosen"] for b in listed)


async def test_a_wrong_mailbox_id_is_a_configuration_error(fake: FakeMitdk, make_connector: Any) -> None:
    connector = make_connector(mailbox_id="no-such-box")
    try:
        with pytest.raises(ConfigurationError, match="Testfirma ApS"):
            await connector.list_new(None)
    finally:
        await connector.aclose()


def test_a_type_field_picks_the_company_mailbox_when_the_listing_has_one() -> None:
    from connectors.mitdk.mailboxes import choose_mailbox

    boxes = [{"id": "p", "dataSource": "DP_PUBLIC", "ownerName": "Jens Hansen", "type": "PERSON"},
             {"id": "c", "dataSource": "DP_PUBLIC", "ownerName": "Et Andet Navn A/S", "type": "COMPANY"}]
    chosen, _ = choose_mailbox(boxes, mailbox_id=None, owner_name=None, cvr="12345678", organisation_name="X")
    assert [b["id"] for b in chosen] == ["c"]
    untyped = [{k: v for k, v in b.items() if k != "type"} for b in boxes]
    chosen, _ = choose_mailbox(untyped, mailbox_id=None, owner_name=None, cvr="12345678",
                               organisation_name="Et andet navn")  # legal form and case do not matter
    assert [b["id"] for b in chosen] == ["c"]
