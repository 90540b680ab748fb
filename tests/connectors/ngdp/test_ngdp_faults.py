"""GIVEN an injected fault WHEN the connector calls NgDP THEN it raises the typed error, and a retry works."""

from __future__ import annotations

import pytest
from ngdp_env import CVR, OTHER_CVR, Ngdp

from connectors.base import AuthError, MessageRef, PermanentError, TransientError
from sandbox.faults import Fault
from sandbox.generator import generate

TRANSIENT = [
    pytest.param(Fault.rate_limited(retry_after=9), 9.0, id="429"),
    pytest.param(Fault.unavailable(retry_after=4), 4.0, id="503"),
    pytest.param(Fault.server_error(500), None, id="500"),
    pytest.param(Fault.server_error(502), None, id="502"),
    pytest.param(Fault.non_json(), None, id="html-200"),
    pytest.param(Fault.non_json(status=503), None, id="html-503"),
    pytest.param(Fault.truncated(), None, id="truncated"),
]


async def _first_ref(ngdp: Ngdp) -> MessageRef:
    connector = ngdp.connector()
    try:
        return (await connector.list_new(None)).refs[0]
    finally:
        await connector.aclose()


@pytest.mark.parametrize(("fault", "retry_after"), TRANSIENT)
async def test_listing_fault_is_transient_and_the_retry_succeeds(ngdp: Ngdp, fault: Fault,
                                                                 retry_after: float | None) -> None:
    ngdp.fake.add_messages(generate(CVR, 3, seed=1))
    ngdp.fake.inject(fault)
    connector = ngdp.connector()
    try:
        with pytest.raises(TransientError) as caught:
            await connector.list_new(None)
        assert caught.value.retry_after == retry_after
        page = await connector.list_new(None)
    finally:
        await connector.aclose()
    assert len(page.refs) == 3


@pytest.mark.parametrize(("fault", "retry_after"), [p for p in TRANSIENT if p.id != "truncated"])
async def test_fetch_fault_is_transient_and_the_retry_succeeds(ngdp: Ngdp, fault: Fault,
                                                               retry_after: float | None) -> None:
    [message] = generate(CVR, 1, seed=2)
    ngdp.fake.add_messages([message])
    ref = await _first_ref(ngdp)
    ngdp.fake.inject(fault)
    connector = ngdp.connector()
    try:
        with pytest.raises(TransientError) as caught:
            await connector.fetch(ref)
        assert caught.value.retry_after == retry_after
        fetched = await connector.fetch(ref)
    finally:
        await connector.aclose()
    assert fetched.message.message_id == message.message_id


async def test_truncated_download_resumes_with_range(ngdp: Ngdp) -> None:
    # GIVEN a memo whose first download is cut off half-way
    [message] = generate(CVR, 1, seed=3)
    ngdp.fake.add_messages([message])
    ref = await _first_ref(ngdp)
    ngdp.fake.inject(Fault.truncated())
    connector = ngdp.connector()
    try:
        # WHEN it is fetched THEN the connector resumes from the last byte (206) and gets it whole
        fetched = await connector.fetch(ref)
    finally:
        await connector.aclose()
    assert fetched.raw == ngdp.fake.memo_bytes(message.message_id)
    assert fetched.message.message_id == message.message_id


async def test_truncated_every_time_gives_up_as_transient(ngdp: Ngdp) -> None:
    ngdp.fake.add_messages(generate(CVR, 1, seed=3))
    ref = await _first_ref(ngdp)
    ngdp.fake.inject(Fault.truncated(), times=10)
    connector = ngdp.connector()
    try:
        with pytest.raises(TransientError):
            await connector.fetch(ref)
    finally:
        await connector.aclose()


async def test_latency_beyond_the_read_timeout_is_transient(ngdp: Ngdp) -> None:
    ngdp.fake.add_messages(generate(CVR, 2, seed=4))
    ngdp.fake.inject(Fault.latency(1.0))
    connector = ngdp.connector(read_timeout=0.2)
    try:
        with pytest.raises(TransientError, match="timed out"):
            await connector.list_new(None)
        assert len((await connector.list_new(None)).refs) == 2
    finally:
        await connector.aclose()


@pytest.mark.parametrize("fault", [Fault.unavailable(2), Fault.server_error(500)], ids=["503", "500"])
async def test_acknowledge_fault_is_transient_and_the_retry_deletes(ngdp: Ngdp, fault: Fault) -> None:
    [message] = generate(CVR, 1, seed=5)
    ngdp.fake.add_messages([message])
    ref = await _first_ref(ngdp)
    ngdp.fake.inject(fault)
    connector = ngdp.connector(business_receipt=True)
    try:
        with pytest.raises(TransientError):
            await connector.acknowledge(ref)
        assert ngdp.fake.acknowledged() == set()
        await connector.acknowledge(ref)
    finally:
        await connector.aclose()
    assert ngdp.fake.acknowledged() == {message.message_id}


async def test_poison_memo_is_permanent_with_its_raw_bytes(ngdp: Ngdp) -> None:
    [message] = generate(CVR, 1, seed=6)
    [key] = ngdp.fake.add_messages([message])
    ngdp.fake.set_poison(key)
    ref = await _first_ref(ngdp)
    connector = ngdp.connector()
    try:
        with pytest.raises(PermanentError) as caught:
            await connector.fetch(ref)
    finally:
        await connector.aclose()
    assert caught.value.raw == ngdp.fake.memo_bytes(key)


async def test_memo_deleted_after_listing_is_permanent(ngdp: Ngdp) -> None:
    [message] = generate(CVR, 1, seed=7)
    ngdp.fake.add_messages([message])
    ref = await _first_ref(ngdp)
    ngdp.fake.record_ack(message.message_id)  # gone at NgDP (deleted elsewhere)
    connector = ngdp.connector()
    try:
        with pytest.raises(PermanentError, match="404"):
            await connector.fetch(ref)
    finally:
        await connector.aclose()


async def test_memo_larger_than_the_limit_is_permanent(ngdp: Ngdp) -> None:
    ngdp.fake.add_messages(generate(CVR, 1, seed=8))
    ref = await _first_ref(ngdp)
    connector = ngdp.connector(max_memo_bytes=1024)
    try:
        with pytest.raises(PermanentError, match="max_memo_bytes"):
            await connector.fetch(ref)
    finally:
        await connector.aclose()


async def test_broken_auth_is_an_auth_error_on_every_call(ngdp: Ngdp) -> None:
    ngdp.fake.add_messages(generate(CVR, 1, seed=9))
    ref = await _first_ref(ngdp)
    ngdp.fake.break_auth()
    connector = ngdp.connector(business_receipt=True)
    try:
        for call in (lambda: connector.list_new(None), lambda: connector.fetch(ref),
                     lambda: connector.acknowledge(ref)):
            with pytest.raises(AuthError):
                await call()
    finally:
        await connector.aclose()


@pytest.mark.parametrize(("fault", "retry_after"), TRANSIENT)
async def test_fault_on_a_header_peek_is_transient_and_not_remembered(ngdp: Ngdp, fault: Fault,
                                                                      retry_after: float | None) -> None:
    # GIVEN a mailbox filtered to one CVR, and a memo to another company
    [other] = generate(OTHER_CVR, 1, seed=10)
    ngdp.fake.add_messages([other])
    connector = ngdp.connector(cvrs=(CVR,))
    try:
        # WHEN the header peek (the second request of the listing) fails
        ngdp.fake.faults.inject(fault, path=f"/memos/{other.message_id}")
        with pytest.raises(TransientError):
            await connector.list_new(None)
        # THEN the retry reads the header properly and leaves the other company's memo alone
        assert (await connector.list_new(None)).refs == ()
    finally:
        await connector.aclose()
