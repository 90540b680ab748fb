"""GIVEN a memo that allows replies WHEN a reply MeMo is sent through the connector THEN NgDP accepts it."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from ngdp_env import CVR, Ngdp

from connectors.base import Capability, PermanentError
from connectors.ngdp.connector import NgdpConnector
from sandbox.generator import generate
from core.domain import Flags, ReplyData


async def test_reply_is_validated_and_receipted(ngdp: Ngdp) -> None:
    from connectors.memo import build_memo, parse_memo

    original = next(m for m in generate(CVR, 40, seed=8) if m.flags.reply_allowed)
    reply = dataclasses.replace(
        original,
        message_id=str(uuid.uuid4()),
        title=f"Svar: {original.title}"[:256],
        sender=original.recipient,
        recipient=original.sender,
        attention=None,
        forward=None,
        flags=Flags(),
        replies=(ReplyData(message_uuid=original.message_id, comment="Svar vedlagt"),),
    )
    raw = build_memo(reply)
    assert NgdpConnector.capabilities == frozenset({Capability.REPLY})
    connector = ngdp.connector()
    try:
        receipt = await connector.send_memo(raw, message_uuid=reply.message_id)
    finally:
        await connector.aclose()
    assert receipt["messageUUID"] == reply.message_id
    assert parse_memo(ngdp.fake.sent[reply.message_id]).replies[0].message_uuid == original.message_id


async def test_a_refused_memo_is_permanent(ngdp: Ngdp) -> None:
    connector = ngdp.connector()
    try:
        with pytest.raises(PermanentError, match="400"):
            await connector.send_memo(b"<not-memo/>", message_uuid=str(uuid.uuid4()))
        with pytest.raises(PermanentError, match="UUID"):
            await connector.send_memo(b"<not-memo/>", message_uuid="nope")
    finally:
        await connector.aclose()
