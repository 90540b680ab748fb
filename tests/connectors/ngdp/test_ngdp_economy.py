"""Issue 14 finding 7 (NgDP): other CVRs' memos are filtered cheaply; a small memo is downloaded once."""

from __future__ import annotations

from pathlib import Path

from connectors.base import ConnectorContext
from connectors.ngdp.connector import NgdpConnector
from sandbox.generator import generate
from sandbox.state import MemoryState
from tests.connectors.ngdp.ngdp_env import CVR, OTHER_CVR, Ngdp


async def _list_all(connector: NgdpConnector) -> list[str]:
    keys, cursor = [], None
    while True:
        page = await connector.list_new(cursor)
        keys += [r.key for r in page.refs]
        if not page.more:
            return keys
        cursor = page.cursor


async def test_other_cvrs_memos_are_peeked_once_across_polls_and_restarts(ngdp: Ngdp, tmp_path: Path) -> None:
    ngdp.fake.add_messages(generate(CVR, 3, seed=8) + generate(OTHER_CVR, 20, seed=8))
    state = MemoryState()

    def connector() -> NgdpConnector:
        return NgdpConnector(ngdp.settings(cvrs=(CVR,)),
                             ConnectorContext("dp", CVR, tmp_path, state))

    first = connector()
    try:
        assert len(await _list_all(first)) == 3
        peeks = ngdp.fake.peeks
        assert peeks <= 23
        await _list_all(first)  # the next poll
    finally:
        await first.aclose()
    restarted = connector()
    try:
        await _list_all(restarted)
    finally:
        await restarted.aclose()
    # Only our three memos are peeked again after the restart (they are not remembered as foreign).
    assert ngdp.fake.peeks - peeks <= 3


async def test_a_memo_the_header_peek_read_whole_is_not_downloaded_again(ngdp: Ngdp, tmp_path: Path) -> None:
    mine = generate(CVR, 4, seed=9)
    ngdp.fake.add_messages(mine + generate(OTHER_CVR, 4, seed=9))
    size = max(len(ngdp.fake.memo_bytes(k)) for k in ngdp.fake.messages)
    connector = NgdpConnector(ngdp.settings(cvrs=(CVR,), header_peek_bytes=size + 10),
                              ConnectorContext("dp", CVR, tmp_path, MemoryState()))
    try:
        page = await connector.list_new(None)
        for ref in page.refs:
            fetched = await connector.fetch(ref)
            assert fetched.message.recipient.id == CVR
    finally:
        await connector.aclose()
    # The peek was the download: one GET per memo, no second full download of ours.
    counts = ngdp.fake.fetch_counts()
    assert [counts.get(m.message_id) for m in mine] == [1] * 4 and ngdp.fake.peeks == 8
