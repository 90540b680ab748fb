"""GIVEN a fake NgDP mailbox WHEN the connector collects it THEN every memo arrives exactly once.

The 1,000-memo run takes 13 s on an idle 2-core machine and up to 27 s under load: marked slow.
"""

from __future__ import annotations

import time

import pytest
from ngdp_env import CVR, OTHER_CVR, Ngdp

from connectors.base import Connector, Fetched
from sandbox.generator import generate


async def collect(connector: Connector, *, max_polls: int = 2) -> list[Fetched]:
    """Plays the collector: poll from the start until a poll finds nothing new; ack after 'commit'.

    Two polls suffice: the first takes everything (even though each page's deletes shift the
    pages after it), the second finds nothing new.
    """
    seen: set[str] = set()
    out: list[Fetched] = []
    for _ in range(max_polls):
        new = 0
        cursor: str | None = None
        while True:
            page = await connector.list_new(cursor)
            for ref in page.refs:
                if ref.key in seen:
                    continue
                fetched = await connector.fetch(ref)
                seen.add(ref.key)
                out.append(fetched)  # the commit
                await connector.acknowledge(ref)
                new += 1
            if not page.more:
                break
            cursor = page.cursor
        if new == 0:
            return out
    raise AssertionError("collection did not settle")


@pytest.mark.slow
async def test_collects_1000_messages_completely_and_exactly_once(ngdp: Ngdp) -> None:
    # GIVEN 1,000 generated memos in the system's mailbox
    messages = generate(CVR, 1000, seed=11)
    ngdp.fake.add_messages(messages)
    connector = ngdp.connector(page_size=100)
    # WHEN the connector collects
    started = time.monotonic()
    try:
        fetched = await collect(connector)
    finally:
        await connector.aclose()
    elapsed = time.monotonic() - started
    # THEN every memo arrived once, parsed to the generated message, and was deleted at NgDP
    assert sorted(f.message.message_id for f in fetched) == sorted(m.message_id for m in messages)
    assert set(ngdp.fake.fetch_counts().values()) == {1}
    assert ngdp.fake.acknowledged() == {m.message_id for m in messages}
    assert ngdp.fake.pending() == []
    by_id = {m.message_id: m for m in messages}
    for f in fetched:
        assert f.message.title == by_id[f.message.message_id].title
        assert f.message.attention == by_id[f.message.message_id].attention
    print(f"collected 1000 memos in {elapsed:.1f} s")


async def test_collects_a_small_mailbox_over_several_pages(ngdp: Ngdp) -> None:
    messages = generate(CVR, 35, seed=2)
    ngdp.fake.add_messages(messages)
    connector = ngdp.connector(page_size=10)
    try:
        fetched = await collect(connector)
    finally:
        await connector.aclose()
    assert len(fetched) == 35
    assert {f.message.message_id for f in fetched} == {m.message_id for m in messages}
    assert all(f.raw_media_type == "application/xml" and f.raw.startswith(b"<?xml") for f in fetched)


async def test_one_system_serving_two_cvrs_lists_only_the_configured_one(ngdp: Ngdp) -> None:
    # GIVEN one system receiving mail for two companies
    mine = generate(CVR, 12, seed=4)
    theirs = generate(OTHER_CVR, 9, seed=4)
    ngdp.fake.add_messages(mine + theirs)
    # WHEN a mailbox configured for CVR collects
    connector = ngdp.connector(cvrs=(CVR,))
    try:
        fetched = await collect(connector)
    finally:
        await connector.aclose()
    # THEN it takes only its own mail, and the other company's stays on the server untouched
    assert {f.message.message_id for f in fetched} == {m.message_id for m in mine}
    assert {f.message.recipient.id for f in fetched} == {CVR}
    assert {s.key for s in ngdp.fake.pending()} == {m.message_id for m in theirs}
    # (a memo smaller than the header peek comes whole with it, once; never a download of its own)
    assert all(ngdp.fake.fetch_counts().get(m.message_id, 0) <= 1 for m in theirs)
    # AND a mailbox configured for "all" takes the rest
    everything = ngdp.connector()
    try:
        rest = await collect(everything)
    finally:
        await everything.aclose()
    assert {f.message.message_id for f in rest} == {m.message_id for m in theirs}


async def test_business_receipt_is_posted_before_the_delete(ngdp: Ngdp) -> None:
    [message] = generate(CVR, 1, seed=5)
    ngdp.fake.add_messages([message])
    connector = ngdp.connector(business_receipt=True)
    try:
        page = await connector.list_new(None)
        await connector.fetch(page.refs[0])
        assert ngdp.fake.receipts == {}
        await connector.acknowledge(page.refs[0])
        await connector.acknowledge(page.refs[0])  # twice is harmless (409 receipt, 404 delete)
    finally:
        await connector.aclose()
    receipt = ngdp.fake.receipts[message.message_id]
    assert receipt["receiptStatus"] == "COMPLETED" and receipt["messageUUID"] == message.message_id
    assert ngdp.fake.acknowledged() == {message.message_id}


async def test_memo_1_2_systems_are_parsed_as_1_2(ngdp: Ngdp) -> None:
    ngdp.fake.memo_version = "1.2"
    ngdp.fake.add_messages(generate(CVR, 3, seed=6))
    connector = ngdp.connector()
    try:
        fetched = await collect(connector)
    finally:
        await connector.aclose()
    assert {f.message.format for f in fetched} == {"memo-1.2"}
    assert all(b'memoVersion="1.2"' in f.raw for f in fetched)
